"""Deployment, Service and PodDisruptionBudget of an InferenceModel, from the templates beside this file."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
import yaml

from thrifty.api import API_VERSION, GPU_PRODUCT_LABEL, GPU_RESOURCE, InferenceModel
from thrifty.api.base import ObjectModel
from thrifty.render.engine_args import ENGINE_PORT, PVC_MOUNT, engine_args
from thrifty.render.labels import model_labels, model_selector

CREDENTIALS_MOUNT = "/var/run/secrets/thrifty/credentials"
MODEL_CACHE = "/models/cache"
HOME = "/home/vllm"


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("thrifty.render", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def render_template(template: str, **values: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = yaml.safe_load(_templates().get_template(template).render(**values))
    return rendered


def owner_references(owner: ObjectModel) -> list[dict[str, Any]]:
    """Children are garbage-collected with their owner, so deletion needs no finalizer."""
    uid = owner.metadata.get("uid")
    if not uid:
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": owner.kind,
            "name": owner.name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _common(model: InferenceModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "namespace": model.namespace,
        "labels": model_labels(model),
        "selector": model_selector(model),
        "owner_references": owner_references(model),
        "port": ENGINE_PORT,
    }


def _volumes(
    model: InferenceModel,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts, env). The root filesystem is read-only, so every path vLLM writes to
    (model cache, compile caches under HOME, /tmp, shared memory for NCCL) is an emptyDir."""
    spec = model.spec
    # NCCL and the engine's worker processes exchange tensors through /dev/shm; the container
    # runtime's default of 64 MiB is far too small beyond one GPU.
    shm_limit = f"{max(1, model.gpu_count) * 8}Gi"
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_limit}},
        {"name": "model-cache", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "model-cache", "mountPath": MODEL_CACHE},
        {"name": "home", "mountPath": HOME},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": HOME},
        {"name": "HF_HOME", "value": MODEL_CACHE},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    parts = spec.model.parts
    if parts.scheme == "pvc":
        volumes.append(
            {"name": "weights", "persistentVolumeClaim": {"claimName": parts.name, "readOnly": True}}
        )
        mounts.append({"name": "weights", "mountPath": PVC_MOUNT, "readOnly": True})
    secret = spec.model.credentials_secret
    if secret is not None:
        # The token stays in the mounted file: only its path reaches the process environment.
        volumes.append({"name": "credentials", "secret": {"secretName": secret, "defaultMode": 0o440}})
        mounts.append({"name": "credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": True})
        if parts.scheme == "hf":
            env.append({"name": "HF_TOKEN_PATH", "value": f"{CREDENTIALS_MOUNT}/token"})
        else:
            env.append({"name": "AWS_SHARED_CREDENTIALS_FILE", "value": f"{CREDENTIALS_MOUNT}/credentials"})
    return volumes, mounts, env


def _resources(model: InferenceModel) -> dict[str, Any]:
    # Extended resources must have requests equal to limits; CPU stays unlimited (throttling the
    # engine's scheduler thread costs GPU time), memory is limited to what is requested.
    resources = model.spec.resources
    requests: dict[str, str] = {GPU_RESOURCE: str(model.gpu_count)}
    limits: dict[str, str] = {GPU_RESOURCE: str(model.gpu_count)}
    if resources.cpu is not None:
        requests["cpu"] = str(resources.cpu)
    if resources.memory is not None:
        requests["memory"] = limits["memory"] = str(resources.memory)
    return {"requests": requests, "limits": limits}


def desired_deployment(
    model: InferenceModel,
    *,
    replicas: int | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
) -> dict[str, Any]:
    """The vLLM Deployment. ``replicas`` and the engine flags are the control loop's current
    decisions when it runs; otherwise the spec's values are used."""
    spec = model.spec
    volumes, mounts, env = _volumes(model)
    tolerations = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    tolerations += [t.model_dump(by_alias=True, exclude_none=True) for t in spec.resources.tolerations]
    if replicas is None:
        replicas = spec.scaling.replicas.min if spec.scaling_enabled and spec.scaling else spec.fixed_replicas
    return render_template(
        "deployment.yaml.j2",
        **_common(model),
        replicas=replicas,
        image=spec.engine.effective_image,
        args=engine_args(model, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens),
        env=env,
        resources=_resources(model),
        node_selector={GPU_PRODUCT_LABEL: model.gpu_product, **spec.resources.node_selector},
        tolerations=tolerations,
        volumes=volumes,
        volume_mounts=mounts,
    )


def desired_service(model: InferenceModel) -> dict[str, Any]:
    return render_template("service.yaml.j2", **_common(model))


def desired_pod_disruption_budget(model: InferenceModel) -> dict[str, Any]:
    return render_template("pdb.yaml.j2", **_common(model))


def desired_children(
    model: InferenceModel,
    *,
    replicas: int | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
) -> list[dict[str, Any]]:
    """Everything one InferenceModel owns, in apply order."""
    return [
        desired_deployment(
            model, replicas=replicas, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens
        ),
        desired_service(model),
        desired_pod_disruption_budget(model),
    ]
