"""The resync and control loops list objects themselves: they must serve the same namespaces as
kopf's watches (`thrifty operator --namespace`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from thrifty import handlers


@pytest.fixture(autouse=True)
def reset() -> Iterator[None]:
    yield
    handlers.watch_namespaces([])


def test_no_pattern_serves_every_namespace() -> None:
    handlers.watch_namespaces([])
    assert handlers.watched("models")
    assert handlers.watched("kube-system")


def test_globs_include_and_bang_patterns_exclude() -> None:
    handlers.watch_namespaces(["models-*", "team-a", "!models-private"])
    assert handlers.watched("models-1")
    assert handlers.watched("team-a")
    assert not handlers.watched("team-b")
    assert not handlers.watched("models-private")


def test_only_exclusions_serve_everything_else() -> None:
    handlers.watch_namespaces(["!kube-*"])
    assert handlers.watched("models")
    assert not handlers.watched("kube-system")
