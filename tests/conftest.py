"""Fixtures shared by integration and e2e tests: one real testbed per test session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from thrifty.testbed.cluster import Testbed, binary_dir
from thrifty.testbed.processes import TestbedError


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    """The control plane, up once for the whole session and torn down at its end.

    Fails (never skips) outside the namespace that `make test` creates, so a run that cannot
    reach a real apiserver is never mistaken for a passing one.
    """
    bed = Testbed(state_dir=tmp_path_factory.mktemp("testbed"), bin_dir=binary_dir())
    try:
        bed.start()
    except TestbedError as error:
        pytest.fail(f"testbed did not come up: {error}")
    yield bed
    bed.stop()


@pytest.fixture(scope="session")
def api_client(testbed: Testbed) -> Any:
    return config.new_client_from_config(config_file=str(testbed.kubeconfig))


@pytest.fixture(scope="session")
def core(api_client: Any) -> Any:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client: Any) -> Any:
    return client.AppsV1Api(api_client)
