"""The node profile: a declarative list of simulated node pools, and the Node objects it makes.

A pool with `gpu` stands for GPU nodes: nvidia.com/gpu capacity, the labels NVIDIA's GPU operator
sets and the usual GPU taint, so only pods that ask for GPUs land there. A pool without it is
plain CPU nodes, where everything else runs (routers, the operator, `helm test` pods)."""

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
    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Nodes are named `<name>-<index>`."
    )
    count: int = Field(ge=1, description="How many nodes of this pool.")
    cpu: str = Field(description='CPU capacity of one node, a Kubernetes quantity, e.g. "32".')
    memory: str = Field(description="Memory capacity of one node, a Kubernetes quantity, e.g. 128Gi.")
    gpu: GpuSpec | None = Field(
        default=None, description="The node's GPUs; leave it out for a CPU node (no GPU labels, no taint)."
    )
    hourly_usd: float = Field(
        alias="hourlyUSD",
        ge=0,
        description="Informative price for the cost view: per GPU on a GPU pool, per node on a CPU pool.",
    )


class NodeProfile(_Strict):
    pools: list[NodePool] = Field(min_length=1)


def load_node_profile(path: Path) -> NodeProfile:
    """Read and validate a node-profile YAML file; errors name the offending field."""
    return NodeProfile.model_validate(yaml.safe_load(path.read_text()))


def desired_nodes(profile: NodeProfile) -> list[dict[str, Any]]:
    """The Node objects for a profile, with status.capacity set (nodes accept status on create)."""
    return [node(pool, index) for pool in profile.pools for index in range(pool.count)]


def node(pool: NodePool, index: int) -> dict[str, Any]:
    """Node `<pool>-<index>`; GPU capacity, labels and taint only when the pool has GPUs."""
    name = f"{pool.name}-{index}"
    resources = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110"}
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "thrifty.dev/node-pool": pool.name,
    }
    spec: dict[str, Any] = {}
    if pool.gpu is not None:
        resources[GPU_RESOURCE] = str(pool.gpu.count)
        labels |= {
            "nvidia.com/gpu.present": "true",
            GPU_PRODUCT_LABEL: pool.gpu.product,
            "nvidia.com/gpu.family": pool.gpu.family,
            "nvidia.com/gpu.count": str(pool.gpu.count),
            "nvidia.com/gpu.memory": str(pool.gpu.memory_mib),
        }
        spec["taints"] = [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": {KWOK_NODE_ANNOTATION: "fake"}, "labels": labels},
        "spec": spec,
        "status": {"capacity": resources, "allocatable": dict(resources)},
    }
