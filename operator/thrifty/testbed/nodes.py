"""The node profile: a declarative list of simulated GPU node pools, and the Node objects it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

# kwok manages only the nodes that carry this annotation (its --manage-nodes-with-annotation-selector).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GpuSpec(_Strict):
    product: str = Field(description="Value of nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3.")
    family: str = Field(description="Value of nvidia.com/gpu.family, e.g. hopper.")
    count: int = Field(ge=1, description="GPUs per node: the nvidia.com/gpu capacity.")
    memory_mib: int = Field(alias="memoryMiB", ge=1, description="Memory of one GPU in MiB.")


class NodePool(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    count: int = Field(ge=1)
    cpu: str
    memory: str
    gpu: GpuSpec
    hourly_usd: float = Field(alias="hourlyUSD", ge=0)


class NodeProfile(_Strict):
    pools: list[NodePool] = Field(min_length=1)


def load_node_profile(path: Path) -> NodeProfile:
    """Read and validate a node-profile YAML file; errors name the offending field."""
    return NodeProfile.model_validate(yaml.safe_load(path.read_text()))


def desired_nodes(profile: NodeProfile) -> list[dict[str, Any]]:
    """The Node objects for a profile, with status.capacity set (nodes accept status on create)."""
    nodes = []
    for pool in profile.pools:
        for index in range(pool.count):
            resources = {
                "cpu": pool.cpu,
                "memory": pool.memory,
                "pods": "110",
                GPU_RESOURCE: str(pool.gpu.count),
            }
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"{pool.name}-{index}",
                        "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                        "labels": {
                            "kubernetes.io/hostname": f"{pool.name}-{index}",
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                            "thrifty.dev/node-pool": pool.name,
                            "nvidia.com/gpu.present": "true",
                            GPU_PRODUCT_LABEL: pool.gpu.product,
                            "nvidia.com/gpu.family": pool.gpu.family,
                            "nvidia.com/gpu.count": str(pool.gpu.count),
                            "nvidia.com/gpu.memory": str(pool.gpu.memory_mib),
                        },
                    },
                    "spec": {
                        "taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}],
                    },
                    "status": {
                        "capacity": resources,
                        "allocatable": resources,
                    },
                }
            )
    return nodes
