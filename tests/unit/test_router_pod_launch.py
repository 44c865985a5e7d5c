"""The process-pod launcher's pure parts, for router pods: reading a router pod, laying out its
configMap volumes, rewriting paths into the pod's root, and the readiness patch it writes."""

from __future__ import annotations

import base64
import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from thrifty.testbed.pod_container import HealthCheck
from thrifty.testbed.pod_files import (
    ConfigMapMount,
    MissingConfigMapError,
    PodSpecError,
    config_map_mounts,
    mounted_files,
    rehome,
    rehome_arguments,
    write_files,
)
from thrifty.testbed.pod_launch import PodPlace
from thrifty.testbed.pod_readiness import readiness_status
from thrifty.testbed.process_pods import restart_delay
from thrifty.testbed.router_access import EndpointAccessWatch
from thrifty.testbed.router_pod import (
    ROUTER_PODS,
    command_line,
    files_for_process,
    rehome_router_config,
    router_container,
)

ROOT = Path("/state/routers/models_assistant-abc")
CONFIG_DIR = PurePosixPath("/etc/thrifty/router")
CLASSIFIER_DIR = PurePosixPath("/etc/thrifty/classifier")


def router_pod(**container_changes: Any) -> dict[str, Any]:
    """A router pod as the operator renders it (the contract in thrifty.testbed.router_pod)."""
    container = {
        "name": "router",
        "image": "example.invalid/thrifty:1",
        "command": ["thrifty"],
        "args": ["router", "--config", "/etc/thrifty/router/router.json", "--port", "8000"],
        "ports": [{"containerPort": 8000, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/thrifty/router", "readOnly": True},
            {"name": "classifier", "mountPath": "/etc/thrifty/classifier", "readOnly": True},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        ],
        **container_changes,
    }
    return {
        "metadata": {"name": "assistant-abc", "namespace": "models", "uid": "u-1"},
        "spec": {
            "serviceAccountName": "assistant-router",
            "nodeName": "cpu-0",
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": "assistant-router"}},
                {"name": "classifier", "configMap": {"name": "my-classifier"}},
                {"name": "kube-api-access", "projected": {"sources": []}},
            ],
        },
        "status": {"podIP": "10.244.0.7"},
    }


def test_router_pod_of_the_contract_is_read_into_a_launch_plan() -> None:
    container = router_container(router_pod())
    assert container.port == 8000
    assert container.config_path == CONFIG_DIR / "router.json"
    assert container.service_account == "assistant-router"
    assert container.readiness == HealthCheck(path="/health", port=8000, period_s=5.0, failure_threshold=3)
    assert container.mounts == (
        ConfigMapMount(volume="config", config_map="assistant-router", mount_path=CONFIG_DIR),
        ConfigMapMount(volume="classifier", config_map="my-classifier", mount_path=CLASSIFIER_DIR),
    )  # the projected service-account volume is not a ConfigMap: left alone


def test_command_line_runs_thrifty_router_on_the_pod_ip_with_the_config_in_the_pod_root() -> None:
    container = router_container(router_pod())
    assert command_line(container, python="/venv/bin/python", root=ROOT, host="10.244.0.7") == [
        "/venv/bin/python",
        "-m",
        "thrifty",
        "router",
        "--config",
        "/state/routers/models_assistant-abc/etc/thrifty/router/router.json",
        "--port",
        "8000",
        "--host",
        "10.244.0.7",
    ]


def test_command_line_without_config_flag_points_at_the_default_config_in_the_pod_root() -> None:
    container = router_container(router_pod(args=["router", "--port=9000"]))
    assert container.port == 9000
    argv = command_line(container, python="py", root=ROOT, host="10.244.0.7")
    assert argv[argv.index("--config") + 1] == f"{ROOT}/etc/thrifty/router/router.json"


def test_fieldref_env_is_filled_from_the_pod_and_literal_env_kept() -> None:
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "LOG_FORMAT", "value": "json"},
    ]
    assert router_container(router_pod(env=env)).env == (("POD_IP", "10.244.0.7"), ("LOG_FORMAT", "json"))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"command": ["python", "-m", "thrifty"]}, r"spec\.containers\[router\]\.command"),
        ({"args": ["operator"]}, r"spec\.containers\[router\]\.args"),
        ({"args": ["router", "--port", "http"]}, r"--port 'http' is not a number"),
        (
            {"readinessProbe": {"httpGet": {"path": "/health", "port": "web"}}},
            r"readinessProbe\.httpGet\.port: no container port named 'web'",
        ),
        (
            {
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/x/router.json", "subPath": "router.json"}
                ]
            },
            r"volumeMounts\[0\]\.subPath",
        ),
        (
            {"volumeMounts": [{"name": "nope", "mountPath": "/x"}]},
            r"volumeMounts\[0\]\.name: no volume 'nope'",
        ),
        (
            {"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            r"env\[0\]\.valueFrom",
        ),
    ],
)
def test_what_the_testbed_cannot_run_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(PodSpecError, match=field):
        router_container(router_pod(**changes))


def test_a_pod_without_a_router_container_is_refused_with_the_names_it_has() -> None:
    pod = router_pod(name="proxy")
    with pytest.raises(
        PodSpecError, match=r"spec\.containers: no container named 'router' \(found \['proxy'\]\)"
    ):
        router_container(pod)


def test_mounted_files_put_every_key_under_its_mount_path() -> None:
    mounts = config_map_mounts(router_pod()["spec"], router_pod()["spec"]["containers"][0])
    files = mounted_files(
        mounts,
        {
            "assistant-router": {"data": {"router.json": "{}"}},
            "my-classifier": {
                "data": {"classifier.json": '{"w": 1}'},
                "binaryData": {"blob.bin": base64.b64encode(b"\x00\x01").decode()},
            },
        },
    )
    assert files == {
        CONFIG_DIR / "router.json": b"{}",
        CLASSIFIER_DIR / "classifier.json": b'{"w": 1}',
        CLASSIFIER_DIR / "blob.bin": b"\x00\x01",
    }


def test_items_project_only_the_chosen_keys_at_their_paths() -> None:
    mount = ConfigMapMount(
        volume="config", config_map="cm", mount_path=CONFIG_DIR, items=(("a", "nested/renamed.json"),)
    )
    files = mounted_files([mount], {"cm": {"data": {"a": "A", "b": "B"}}})
    assert files == {CONFIG_DIR / "nested/renamed.json": b"A"}


def test_a_missing_configmap_blocks_the_pod_unless_its_volume_is_optional() -> None:
    mount = ConfigMapMount(volume="config", config_map="assistant-router", mount_path=CONFIG_DIR)
    with pytest.raises(
        MissingConfigMapError, match=r"ConfigMap 'assistant-router' \(volume 'config'\) not found"
    ):
        mounted_files([mount], {"assistant-router": None})
    optional = ConfigMapMount(
        volume="config", config_map="assistant-router", mount_path=CONFIG_DIR, optional=True
    )
    assert mounted_files([optional], {"assistant-router": None}) == {}


def test_a_missing_projected_key_blocks_the_pod() -> None:
    mount = ConfigMapMount(volume="config", config_map="cm", mount_path=CONFIG_DIR, items=(("gone", "x"),))
    with pytest.raises(MissingConfigMapError, match="has no key 'gone'"):
        mounted_files([mount], {"cm": {"data": {"a": "A"}}})


def test_rehome_moves_paths_under_a_mount_and_leaves_others_alone() -> None:
    mounts = [CONFIG_DIR]
    assert rehome("/etc/thrifty/router/router.json", mounts, ROOT) == f"{ROOT}/etc/thrifty/router/router.json"
    assert rehome("/etc/thrifty/router", mounts, ROOT) == f"{ROOT}/etc/thrifty/router"
    # A sibling whose name merely starts like the mount is not inside it.
    assert rehome("/etc/thrifty/router-extra/a.json", mounts, ROOT) == "/etc/thrifty/router-extra/a.json"
    assert rehome("relative/router.json", mounts, ROOT) == "relative/router.json"


def test_rehome_arguments_handles_separate_and_equals_values() -> None:
    args = [
        "router",
        "--config",
        "/etc/thrifty/router/r.json",
        "--other=/etc/thrifty/router/c",
        "--port",
        "8000",
    ]
    assert rehome_arguments(args, [CONFIG_DIR], ROOT) == [
        "router",
        "--config",
        f"{ROOT}/etc/thrifty/router/r.json",
        f"--other={ROOT}/etc/thrifty/router/c",
        "--port",
        "8000",
    ]


def test_router_json_classifier_path_is_rehomed_and_nothing_else_changes() -> None:
    document = {
        "name": "assistant",
        "namespace": "models",
        "classifierPath": "/etc/thrifty/classifier/c.json",
    }
    moved = json.loads(rehome_router_config(json.dumps(document).encode(), [CLASSIFIER_DIR], ROOT))
    assert moved == {**document, "classifierPath": f"{ROOT}/etc/thrifty/classifier/c.json"}


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b'{"name": "a"}', b'{"classifierPath": "/elsewhere/c.json"}'],
)
def test_router_json_without_a_mounted_classifier_path_is_passed_on_byte_for_byte(content: bytes) -> None:
    assert rehome_router_config(content, [CLASSIFIER_DIR], ROOT) == content


def test_files_for_process_rewrites_only_the_config_file() -> None:
    container = router_container(router_pod())
    config = json.dumps({"classifierPath": "/etc/thrifty/classifier/c.json"}).encode()
    other = json.dumps({"classifierPath": "/etc/thrifty/classifier/c.json"}).encode()
    files = files_for_process(
        {CONFIG_DIR / "router.json": config, CLASSIFIER_DIR / "c.json": other}, container, ROOT
    )
    assert (
        json.loads(files[CONFIG_DIR / "router.json"])["classifierPath"]
        == f"{ROOT}/etc/thrifty/classifier/c.json"
    )
    assert files[CLASSIFIER_DIR / "c.json"] == other


def test_write_files_lays_out_the_mounts_updates_in_place_and_removes_dropped_keys(tmp_path: Path) -> None:
    mounts = [
        ConfigMapMount(volume="config", config_map="a", mount_path=CONFIG_DIR),
        ConfigMapMount(volume="classifier", config_map="b", mount_path=CLASSIFIER_DIR, optional=True),
    ]
    first = {CONFIG_DIR / "router.json": b"v1", CONFIG_DIR / "extra": b"x"}
    assert write_files(tmp_path, first, mounts) is True
    assert (tmp_path / "etc/thrifty/router/router.json").read_bytes() == b"v1"
    assert (tmp_path / "etc/thrifty/classifier").is_dir()  # an empty optional volume is still mounted
    assert write_files(tmp_path, first, mounts) is False  # nothing to do: nothing rewritten

    assert write_files(tmp_path, {CONFIG_DIR / "router.json": b"v2"}, mounts) is True
    assert (tmp_path / "etc/thrifty/router/router.json").read_bytes() == b"v2"
    assert sorted(p.name for p in (tmp_path / "etc/thrifty/router").iterdir()) == ["router.json"]


def test_readiness_patch_turns_a_pod_ready_and_keeps_unchanged_transition_times() -> None:
    status = {
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
            {
                "type": "ContainersReady",
                "status": "False",
                "reason": "ContainersNotReady",
                "lastTransitionTime": "t0",
            },
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": "t0"},
        ],
        "containerStatuses": [{"name": "router", "ready": False, "restartCount": 0}],
    }
    patch = readiness_status(status, ready=True, now="t1")
    assert patch["conditions"] == [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": "t1"},
        {"type": "Ready", "status": "True", "lastTransitionTime": "t1"},
    ]
    assert patch["containerStatuses"] == [{"name": "router", "ready": True, "restartCount": 0}]
    assert status["conditions"][2]["status"] == "False"  # the input is not modified

    again = readiness_status({**status, **patch}, ready=True, now="t2")
    assert again["conditions"][2]["lastTransitionTime"] == "t1"


def test_readiness_patch_for_a_restarted_process_is_not_ready_with_its_restart_count() -> None:
    status = {
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}],
        "containerStatuses": [{"name": "router", "ready": True, "restartCount": 0}],
    }
    patch = readiness_status(status, ready=False, now="t1", restart_count=2)
    assert patch["conditions"] == [
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": "t1"}
    ]
    assert patch["containerStatuses"] == [{"name": "router", "ready": False, "restartCount": 2}]


def test_restart_backoff_doubles_from_one_second_up_to_five_minutes() -> None:
    assert [restart_delay(n) for n in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_router_launch_plans_the_process_in_the_pod_root_and_watches_its_endpoint_access() -> None:
    place = PodPlace(root=ROOT, ip="10.244.0.7", python="py")
    launch = ROUTER_PODS.launch(router_pod(), place)
    assert launch.argv == tuple(
        command_line(router_container(router_pod()), python="py", root=ROOT, host=place.ip)
    )
    assert launch.service_account == "assistant-router"
    assert [mount.config_map for mount in launch.mounts] == ["assistant-router", "my-classifier"]
    config = json.dumps({"classifierPath": "/etc/thrifty/classifier/c.json"}).encode()
    rehomed = launch.files_for_process({CONFIG_DIR / "router.json": config})
    assert (
        json.loads(rehomed[CONFIG_DIR / "router.json"])["classifierPath"]
        == f"{ROOT}/etc/thrifty/classifier/c.json"
    )
    watch = launch.while_running
    assert isinstance(watch, EndpointAccessWatch)
    assert watch.account == "system:serviceaccount:models:assistant-router"
    assert watch.kubeconfig == ROOT / "var/run/secrets/kubernetes.io/serviceaccount/kubeconfig"
    assert watch.config_path == ROOT / "etc/thrifty/router/router.json"
