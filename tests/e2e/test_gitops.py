"""GitOps: the same manifest synced twice the way Argo CD syncs with server-side apply (field manager
`argocd-controller`), with the control loop scaling the model under real load in between.

Nothing needs an ignoreDifferences entry because the two sides never own the same field: Git owns
the InferenceModel's spec, the operator owns its status and the children's live knobs (replicas,
the engine's batch flag). So a sync after the loop has acted finds no diff and reverts nothing,
and the operator never reverts what Git says. Policy durations run 10x faster than production
(THRIFTY_CONTROL_TIME_SCALE=0.1) so a scale-out comes within a couple of minutes.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import fast_loop_env, start_operator, stop_operator
from engine_load import EngineLoad
from support import eventually, kubectl, scratch_namespace
from thrifty.k8s.objects import FIELD_MANAGER
from thrifty.testbed.cluster import Testbed

pytestmark = pytest.mark.testbed

ARGOCD = "argocd-controller"
"""The field manager Argo CD applies with when a sync uses ServerSideApply=true."""

LIVENESS_PORT = 18084

MANIFEST = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceModel
metadata: {name: chat}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: chat, maxModelLen: 4096}
  batching: {maxNumSeqs: 16, maxNumBatchedTokens: 4096}
  resources: {gpu: {product: NVIDIA-H100-80GB-HBM3, count: 1}}
  scaling:
    replicas: {min: 1, max: 4}
    targetBatchUtilization: 0.8
    slo: {ttftP95: 2s, itlP95: 50ms}
    tuneMaxNumSeqs: {min: 8, max: 64}
"""


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    with scratch_namespace(core, "gitops") as name:
        yield name


def manifest_in(namespace: str, **scaling: Any) -> str:
    """The manifest as it sits in Git, in ``namespace``; ``scaling`` edits spec.scaling (a commit)."""
    body = yaml.safe_load(MANIFEST)
    body["metadata"]["namespace"] = namespace
    body["spec"]["scaling"].update(scaling)
    return yaml.safe_dump(body)


def sync(testbed: Testbed, manifest: str) -> None:
    """An Argo CD sync with ServerSideApply=true: no --force-conflicts, so a field the operator had
    taken over would fail the sync with a conflict instead of being silently taken back."""
    kubectl(testbed, "apply", "--server-side", f"--field-manager={ARGOCD}", "-f", "-", stdin=manifest)


def out_of_sync(testbed: Testbed, manifest: str) -> str:
    """What Argo CD's server-side diff would show: '' when the live object matches Git."""
    result = subprocess.run(
        [
            str(testbed.bin_dir / "kubectl"),
            f"--kubeconfig={testbed.kubeconfig}",
            "diff",
            "--server-side",
            f"--field-manager={ARGOCD}",
            "-f",
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode not in (0, 1):  # 1 means "differences found"; anything else is an error
        raise AssertionError(f"kubectl diff failed ({result.returncode}): {result.stderr}")
    return result.stdout


def live_model(testbed: Testbed, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        kubectl(testbed, "get", "im", "chat", "-n", namespace, "-o", "json", "--show-managed-fields")
    )
    return body


def condition(model: dict[str, Any], kind: str) -> str | None:
    conditions = (model.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == kind), None)


def engine_state(apps: Any, namespace: str) -> tuple[int, int]:
    """The live knobs the control loop owns: Deployment replicas and the engine's --max-num-seqs."""
    deployment = apps.read_namespaced_deployment("chat", namespace)
    args = list(deployment.spec.template.spec.containers[0].args)
    return int(deployment.spec.replicas), int(args[args.index("--max-num-seqs") + 1])


def spec_owners(model: dict[str, Any]) -> dict[str, list[str | None]]:
    """Field manager -> the subresources of its entries, for the managers that own anything in spec."""
    owners: dict[str, list[str | None]] = {}
    for entry in model["metadata"]["managedFields"]:
        if "f:spec" in (entry.get("fieldsV1") or {}):
            owners.setdefault(entry["manager"], []).append(entry.get("subresource"))
    return owners


@pytest.mark.timeout(480)
def test_syncing_twice_around_control_loop_decisions_reverts_nothing_on_either_side(
    testbed: Testbed, thrifty_crds: None, api_client: Any, apps: Any, namespace: str, tmp_path: Path
) -> None:
    env = fast_loop_env(testbed, period_s=2, time_scale=0.1)
    operator = start_operator(
        testbed, tmp_path / "operator.log", namespaces="gitops-*", port=LIVENESS_PORT, extra_env=env
    )
    try:
        git = manifest_in(namespace)
        sync(testbed, git)
        eventually(lambda: condition(live_model(testbed, namespace), "Ready") == "True", what="chat Ready")
        synced = live_model(testbed, namespace)

        with EngineLoad(client.DiscoveryV1Api(api_client), namespace, "chat", workers=48, seconds=300):
            eventually(
                lambda: engine_state(apps, namespace)[0] > 1,
                timeout=150,
                interval=1,
                what="the control loop to scale out under load",
            )
            decided_replicas, _ = engine_state(apps, namespace)

            # Git has not changed, the loop has acted: Argo CD sees the app in sync.
            assert out_of_sync(testbed, git) == ""
            sync(testbed, git)
            resynced = live_model(testbed, namespace)
            assert resynced["metadata"]["generation"] == synced["metadata"]["generation"]
            assert resynced["spec"] == synced["spec"]

            time.sleep(6)  # three resyncs of the operator (every 2 s) after the sync
            replicas, engine_flag = engine_state(apps, namespace)
            assert replicas >= decided_replicas, "a resync after the sync took back the loop's scale-out"
            status = live_model(testbed, namespace)["status"]
            assert engine_flag == status["maxNumSeqs"]["engine"], "the engine flag left the loop's value"
        actions = [decision["action"] for decision in status.get("decisions", [])]
        print(
            f"the loop's decisions (newest first): {actions}; replicas {replicas}, engine flag {engine_flag}"
        )
        assert "ScaleUp" in actions

        # The loop's decisions live in status and in the children, never in spec.
        model = live_model(testbed, namespace)
        assert model["spec"] == synced["spec"]
        assert model["spec"]["batching"]["maxNumSeqs"] == 16
        assert spec_owners(model) == {ARGOCD: [None]}
        entries = [
            (e["manager"], e["operation"], e.get("subresource")) for e in model["metadata"]["managedFields"]
        ]
        # Git's manager owns what it applied; the operator appears once, as the writer of status.
        expected = [(ARGOCD, "Apply", None), (FIELD_MANAGER, "Update", "status")]
        assert sorted(entries, key=str) == sorted(expected, key=str), f"managedFields of the model: {entries}"
        # The replica count the loop decides is the operator's own field on the child, which Git
        # never applies: the two cannot fight over it.
        deployment = json.loads(
            kubectl(
                testbed, "get", "deployment", "chat", "-n", namespace, "-o", "json", "--show-managed-fields"
            )
        )
        replica_owners = [
            e["manager"]
            for e in deployment["metadata"]["managedFields"]
            if "f:replicas" in ((e.get("fieldsV1") or {}).get("f:spec") or {})
        ]
        assert replica_owners == [FIELD_MANAGER]

        # A commit to Git: the operator carries it out and never writes it back.
        edited = manifest_in(namespace, targetBatchUtilization=0.7, replicas={"min": 1, "max": 3})
        sync(testbed, edited)
        generation = live_model(testbed, namespace)["metadata"]["generation"]
        assert generation == synced["metadata"]["generation"] + 1
        eventually(
            lambda: live_model(testbed, namespace)["status"].get("observedGeneration") == generation,
            what="the operator to observe the new generation",
        )
        time.sleep(6)
        model = live_model(testbed, namespace)
        assert model["metadata"]["generation"] == generation, "the operator edited the spec"
        assert model["spec"]["scaling"]["targetBatchUtilization"] == 0.7
        assert model["spec"]["scaling"]["replicas"] == {"min": 1, "max": 3, "idleDelay": "15m"}
        assert engine_state(apps, namespace)[0] <= 3, "replicas outside the bounds Git set"
        assert out_of_sync(testbed, edited) == ""
    finally:
        stop_operator(operator)
