"""`spec.resources`: the GPUs, CPU and memory of one replica, and where it may run."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource NVIDIA's device plugin advertises; also the key of the usual GPU taint."""
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""The node label gpu-feature-discovery sets to the GPU model, e.g. NVIDIA-H100-80GB-HBM3."""

LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
PRODUCT_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
# A Kubernetes quantity in its common forms: "8", "500m", "64Gi", "1.5". Exponent forms are left out.
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE])?$"

LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN, max_length=317)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]
Quantity = int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]

TENSOR_PARALLEL_DIVIDES_GPUS = CelRule(
    rule="!has(self.tensorParallelSize) || self.gpu.count % self.tensorParallelSize == 0",
    message=(
        "spec.resources.tensorParallelSize must divide spec.resources.gpu.count (each group of "
        "tensorParallelSize GPUs runs one engine): e.g. 4 GPUs take tensorParallelSize 1, 2 or 4"
    ),
    field_path=".tensorParallelSize",
)
PRODUCT_NOT_IN_NODE_SELECTOR = CelRule(
    rule=f"!has(self.nodeSelector) || !('{GPU_PRODUCT_LABEL}' in self.nodeSelector)",
    message=(
        f"spec.resources.nodeSelector must not set {GPU_PRODUCT_LABEL}: Thrifty selects nodes by "
        "spec.resources.gpu.product; set the product there"
    ),
    field_path=".nodeSelector",
)
EXISTS_TAKES_NO_VALUE = CelRule(
    rule="!(has(self.operator) && self.operator == 'Exists' && has(self.value) && self.value != '')",
    message="spec.resources.tolerations[].value must be empty when operator is Exists: remove value or use Equal",
    field_path=".value",
)
EMPTY_KEY_NEEDS_EXISTS = CelRule(
    rule="has(self.key) || (has(self.operator) && self.operator == 'Exists')",
    message="spec.resources.tolerations[].key may only be empty with operator Exists (which tolerates every taint)",
    field_path=".key",
)
SECONDS_NEED_NO_EXECUTE = CelRule(
    rule="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
    message="spec.resources.tolerations[].tolerationSeconds is only allowed with effect NoExecute",
    field_path=".tolerationSeconds",
)


class GpuSpec(SpecModel):
    """The GPUs of one replica."""

    product: Annotated[str, StringConstraints(pattern=PRODUCT_PATTERN, max_length=63)]
    """GPU model to run on: the value of the node label `nvidia.com/gpu.product` that NVIDIA's
    gpu-feature-discovery sets. The pod gets a node selector on it. A product that no node offers
    marks the model Degraded. Examples: `NVIDIA-H100-80GB-HBM3`, `NVIDIA-L4`, `NVIDIA-A100-SXM4-80GB`."""

    count: Annotated[int, Field(ge=1, le=16)] = 1
    """GPUs per replica (the `nvidia.com/gpu` resource limit of the pod). All of them sit on one
    node. Default 1. Example: `4`."""


class Toleration(SpecModel):
    """A toleration added to the pod, as in a Pod's `spec.tolerations`. Thrifty always tolerates the
    `nvidia.com/gpu` taint; add others that your GPU nodes carry."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(EXISTS_TAKES_NO_VALUE, EMPTY_KEY_NEEDS_EXISTS, SECONDS_NEED_NO_EXECUTE)
    )

    key: LabelKey | None = None
    """Taint key to tolerate; empty with operator Exists tolerates every taint. Example: `dedicated`."""

    operator: Literal["Exists", "Equal"] = "Equal"
    """`Equal` matches key and value; `Exists` matches any value of the key. Default Equal."""

    value: LabelValue | None = None
    """Taint value to match with operator Equal. Example: `inference`."""

    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; unset matches every effect."""

    toleration_seconds: Annotated[int, Field(ge=0)] | None = None
    """With effect NoExecute: how long the pod stays after the taint appears, in seconds."""

    @model_validator(mode="after")
    def _consistent_with_core_rules(self) -> Self:
        if self.operator == "Exists" and self.value:
            raise EXISTS_TAKES_NO_VALUE.violation(f"value {self.value!r}")
        if self.key is None and self.operator != "Exists":
            raise EMPTY_KEY_NEEDS_EXISTS.violation(f"operator {self.operator} without key")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise SECONDS_NEED_NO_EXECUTE.violation(f"effect {self.effect}")
        return self


class ResourcesSpec(SpecModel):
    """What one replica needs and where it may be scheduled."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(TENSOR_PARALLEL_DIVIDES_GPUS, PRODUCT_NOT_IN_NODE_SELECTOR)
    )

    gpu: GpuSpec
    """GPU product and count per replica."""

    tensor_parallel_size: Annotated[int, Field(ge=1, le=16)] | None = None
    """GPUs that shard one copy of the model (vLLM `--tensor-parallel-size`). Must divide
    gpu.count; the remaining factor, gpu.count / tensorParallelSize, runs that many engine copies
    in the pod (vLLM `--data-parallel-size`). Defaults to gpu.count (one engine over all GPUs).
    Example: `4`."""

    cpu: Quantity | None = None
    """CPU request of the vLLM container, as a Kubernetes quantity. vLLM needs a few cores per GPU
    for tokenization, scheduling and the HTTP server. Example: `"8"`."""

    memory: Quantity | None = None
    """Memory request (and limit) of the vLLM container, as a Kubernetes quantity. Must hold the
    weights while they load and CPU-side buffers. Example: `64Gi`."""

    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Extra node labels the pod requires, merged with the selector on gpu.product (which must not
    be repeated here). Example: `{topology.kubernetes.io/zone: us-east-1a}`."""

    tolerations: Annotated[tuple[Toleration, ...], Field(max_length=16)] = ()
    """Extra tolerations, added to the one for the `nvidia.com/gpu` taint that Thrifty always sets."""

    @model_validator(mode="after")
    def _gpus_fit_the_layout(self) -> Self:
        tp = self.tensor_parallel_size
        if tp is not None and self.gpu.count % tp:
            raise TENSOR_PARALLEL_DIVIDES_GPUS.violation(
                f"tensorParallelSize {tp}, gpu.count {self.gpu.count}"
            )
        if GPU_PRODUCT_LABEL in self.node_selector:
            raise PRODUCT_NOT_IN_NODE_SELECTOR.violation(f"nodeSelector {GPU_PRODUCT_LABEL}")
        return self

    @property
    def effective_tensor_parallel_size(self) -> int:
        return self.tensor_parallel_size or self.gpu.count

    @property
    def data_parallel_size(self) -> int:
        """Engine copies inside one replica (vLLM `--data-parallel-size`)."""
        return self.gpu.count // self.effective_tensor_parallel_size
