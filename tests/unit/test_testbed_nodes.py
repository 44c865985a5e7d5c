from pathlib import Path

import pytest
from pydantic import ValidationError

from thrifty.testbed.cluster import TESTBED_DIR
from thrifty.testbed.nodes import desired_nodes, load_node_profile


def test_default_profile_is_four_h100_nodes_two_l4_nodes_and_two_cpu_nodes() -> None:
    nodes = desired_nodes(load_node_profile(TESTBED_DIR / "nodes.yaml"))
    products = [n["metadata"]["labels"].get("nvidia.com/gpu.product") for n in nodes]
    assert products == ["NVIDIA-H100-80GB-HBM3"] * 4 + ["NVIDIA-L4"] * 2 + [None] * 2
    gpus = [n["status"]["capacity"].get("nvidia.com/gpu") for n in nodes]
    assert gpus == ["8"] * 4 + ["1"] * 2 + [None] * 2
    assert [n["metadata"]["name"] for n in nodes] == [
        "h100-0",
        "h100-1",
        "h100-2",
        "h100-3",
        "l4-0",
        "l4-1",
        "cpu-0",
        "cpu-1",
    ]


def test_nodes_carry_gpu_operator_labels_taint_and_kwok_annotation() -> None:
    node = desired_nodes(load_node_profile(TESTBED_DIR / "nodes.yaml"))[0]
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.memory"] == "81559"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert node["status"]["allocatable"] == node["status"]["capacity"]


def test_bad_profile_names_the_field(tmp_path: Path) -> None:
    profile = tmp_path / "nodes.yaml"
    profile.write_text(
        "pools:\n- name: h100\n  count: 0\n  cpu: '8'\n  memory: 1Gi\n  hourlyUSD: 1\n"
        "  gpu: {product: X, family: y, count: 1, memoryMiB: 1}\n"
    )
    with pytest.raises(ValidationError, match=r"pools\.0\.count"):
        load_node_profile(profile)


def test_a_pool_without_gpu_makes_untainted_nodes_without_gpu_capacity_or_labels(tmp_path: Path) -> None:
    profile = tmp_path / "nodes.yaml"
    profile.write_text("pools:\n- name: cpu\n  count: 1\n  cpu: '32'\n  memory: 128Gi\n  hourlyUSD: 1.5\n")
    [node] = desired_nodes(load_node_profile(profile))
    assert node["metadata"]["name"] == "cpu-0"
    assert node["spec"] == {}  # no taint: pods without tolerations schedule here
    assert node["status"]["capacity"] == {"cpu": "32", "memory": "128Gi", "pods": "110"}
    assert not [label for label in node["metadata"]["labels"] if label.startswith("nvidia.com/")]
    assert node["metadata"]["labels"]["thrifty.dev/node-pool"] == "cpu"
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
