"""The Helm chart on a cluster, used like a user: install, the operator's own RBAC, the examples,
`helm test`, an upgrade that changes a CRD, uninstall, and installing again.

The module brings up a testbed of its own, where nobody has applied the CRDs with kubectl: the
chart must install them itself. Pods on the testbed are simulated by kwok; the testbed runs the
real operator for the chart's operator pod (operator/thrifty/testbed/operator_pod.py), at the
pod's IP, with the pod's args and env and a token of the chart's ServiceAccount: every permission
it uses is the chart's RBAC, and any 403 in its log fails the test. The `helm test` pod's command
runs here as a stand-in (tests/pod_stand_in.py).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_cli import Helm
from pod_stand_in import run_to_completion
from support import eventually, kubectl, own_network, own_testbed
from thrifty.testbed.cluster import Testbed

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "thrifty"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml")) + sorted((REPO / "examples").glob("routers/*.yaml"))
RELEASE = "thrifty"
RELEASE_NAMESPACE = "thrifty-system"
MODELS_NAMESPACE = "models"  # the examples' own namespace
RELEASE_SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
CRDS = ("inferencemodels.thrifty.dev", "inferencerouters.thrifty.dev")

NETWORK = own_network(1)

# A refused or unauthenticated API call, as urllib3's debug log, the kubernetes client's ApiException
# or kopf reports it.
REFUSED = re.compile(r'" 40[13] |\(40[13]\)|forbidden|unauthorized', re.IGNORECASE)


@pytest.fixture(scope="module")
def fresh_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    """A testbed for this module alone: no CRD applied, no operator running."""
    with own_testbed(tmp_path_factory.mktemp("helm-testbed"), NETWORK) as bed:
        yield bed


@dataclass
class Session:
    """What the scenario shares between its steps."""

    testbed: Testbed
    helm: Helm
    work: Path
    values: Path
    timings: dict[str, float] = field(default_factory=dict)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return kubectl(self.testbed, *args, stdin=stdin)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))


@pytest.fixture
def session(fresh_testbed: Testbed, tmp_path: Path) -> Iterator[Session]:
    values = tmp_path / "testbed-values.yaml"
    values.write_text(yaml.safe_dump(values_for_testbed(fresh_testbed)))
    running = Session(
        testbed=fresh_testbed, helm=Helm(fresh_testbed, home=tmp_path / "helm"), work=tmp_path, values=values
    )
    yield running
    print("helm timings: " + ", ".join(f"{step} {seconds:.1f}s" for step, seconds in running.timings.items()))


def values_for_testbed(testbed: Testbed) -> dict[str, Any]:
    """Values a testbed user would choose: the testbed's own Prometheus (the control loop is on),
    the fastest resync the chart allows (drift repaired within seconds), and handler logs."""
    return {
        "operator": {
            "prometheusUrl": testbed.network.prometheus_url,
            "resyncSeconds": 5,
            "verbose": True,
        }
    }


@pytest.mark.timeout(300)
def test_helm_install_runs_examples_upgrades_a_crd_and_uninstalls_without_leftovers(session: Session) -> None:
    install(session, "install")
    operator = operator_as_its_service_account(session)
    apply_examples_and_wait_ready(session, operator)
    run_helm_test(session)
    upgrade_with_a_new_printer_column(session, operator)
    workloads = model_workloads(session)
    crd_uids = {name: session.get("crd", name)["metadata"]["uid"] for name in CRDS}
    uninstall(session, operator)
    assert model_workloads(session) == workloads, "uninstalling the operator touched a user's model"

    # Installing again adopts the kept CRDs (they carry this release's ownership annotations)
    # and the running models, replacing neither.
    install(session, "second install")
    assert {name: session.get("crd", name)["metadata"]["uid"] for name in CRDS} == crd_uids
    operator = operator_as_its_service_account(session)
    wait_examples_ready(session, operator)
    assert model_workloads(session) == workloads, "a second install replaced a user's model"
    edit_a_model_and_see_it_rolled(session, operator)


# -- steps ---------------------------------------------------------------------------------------


def install(session: Session, step: str) -> None:
    """`helm install --create-namespace --wait`: the CRDs come Established, the operator Deployment
    becomes available (kwok runs its pod on a CPU node)."""
    result = session.helm(
        "install",
        RELEASE,
        str(CHART),
        f"--namespace={RELEASE_NAMESPACE}",
        "--create-namespace",
        f"--values={session.values}",
        "--wait",
        "--timeout=120s",
    )
    session.timings[step] = result.seconds
    for name in CRDS:
        crd = session.get("crd", name)
        assert condition(crd, "Established") == "True", f"{name} is not Established"
        assert crd["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep"
    deployment = session.get("deployment", RELEASE, "-n", RELEASE_NAMESPACE)
    assert condition(deployment, "Available") == "True"
    assert deployment["status"].get("availableReplicas") == 1
    # Established comes a moment before the new resource's storage serves lists and watches.
    eventually(
        lambda: "storage is (re)initializing" not in kubectl(session.testbed, "get", "im", "-A", check=False),
        what="the InferenceModel storage to serve",
    )


@dataclass(frozen=True)
class OperatorLog:
    """The log of the real operator the testbed runs for the chart's operator pod."""

    path: Path

    def logs(self) -> str:
        return self.path.read_text(errors="replace") if self.path.exists() else ""


def operator_as_its_service_account(session: Session) -> OperatorLog:
    """The operator pod runs the real operator as the pod's ServiceAccount (the testbed's launcher
    gives it that account's token). First show what the chart's ClusterRole withholds: Secrets,
    and any write to a user's spec."""
    pod = operator_pod(session)
    account = pod["spec"]["serviceAccountName"]
    assert account == RELEASE, "the chart names the operator's ServiceAccount after the release"
    subject = f"--as=system:serviceaccount:{RELEASE_NAMESPACE}:{account}"
    for verb, resource in [
        ("get", "secrets"),
        ("list", "secrets"),
        ("update", "inferencemodels.thrifty.dev"),
        ("patch", "inferencemodels.thrifty.dev"),
        ("delete", "deployments.apps"),
    ]:
        answer = kubectl(session.testbed, "auth", "can-i", verb, resource, "-A", subject, check=False)
        assert answer.strip().startswith("no"), f"the operator may {verb} {resource}: {answer}"

    name = pod["metadata"]["name"]
    log = OperatorLog(session.testbed.state_dir / "logs" / f"operator-{RELEASE_NAMESPACE}_{name}.log")
    eventually(log.path.exists, timeout=30, what=f"the operator process of pod {name}")
    return log


def apply_examples_and_wait_ready(session: Session, operator: OperatorLog) -> None:
    """The examples, applied as their comments tell a user to, each seen Ready."""
    session.kubectl("create", "namespace", MODELS_NAMESPACE)
    # The gated examples name this Secret; the operator only names it in the pod spec.
    session.kubectl(
        "create", "secret", "generic", "hf-token", "-n", MODELS_NAMESPACE, "--from-literal=token=hf_testbed"
    )
    # The InferenceRouter example (examples/routers/) is applied after the models it names, and
    # is expected Ready like them: its router pod is served by the testbed's router launcher.
    for path in EXAMPLES:
        session.kubectl("apply", "-f", str(path))
    wait_examples_ready(session, operator)


def wait_examples_ready(session: Session, operator: OperatorLog) -> None:
    started = time.monotonic()
    for path in EXAMPLES:
        body = yaml.safe_load(path.read_text())
        kind, name = body["kind"].lower(), body["metadata"]["name"]
        try:
            eventually(
                partial(is_ready, session, operator, kind, name),
                timeout=90,
                interval=0.5,
                what=f"{kind} {name} Ready",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; the operator's log ends:\n{operator.logs()[-3000:]}") from None
    session.timings.setdefault("examples Ready", time.monotonic() - started)
    assert_never_forbidden(operator)


def is_ready(session: Session, operator: OperatorLog, kind: str, name: str) -> bool:
    assert_never_forbidden(operator)  # a refusal would only show as a long wait otherwise
    return condition(session.get(kind, name, "-n", MODELS_NAMESPACE), "Ready") == "True"


def run_helm_test(session: Session) -> None:
    """`helm test`: its pod's check runs here, against the operator Service's ready endpoint, and
    its exit is reported on the pod as a kubelet would; helm reads the outcome from the pod."""
    log = session.work / "helm-test.log"
    started = time.monotonic()
    helm_test = session.helm.start(
        "test", RELEASE, f"--namespace={RELEASE_NAMESPACE}", "--timeout=90s", log=log
    )
    try:
        pod = eventually(
            lambda: running_pod(session, f"{RELEASE}-test"), timeout=60, what="the helm test pod Running"
        )
        check = run_to_completion(session.testbed, pod)
        assert check.returncode == 0, f"the helm test check failed:\n{check.stdout}{check.stderr}"
        assert helm_test.wait(timeout=60) == 0, log.read_text()
    finally:
        if helm_test.poll() is None:
            helm_test.kill()
            helm_test.wait(timeout=10)
    session.timings["helm test"] = time.monotonic() - started
    assert re.search(r"Phase:\s+Succeeded", log.read_text()), log.read_text()


def upgrade_with_a_new_printer_column(session: Session, operator: OperatorLog) -> None:
    """`helm upgrade` to a chart whose InferenceModel CRD has one more printer column: the apiserver
    serves it at once, and no model is torn down or rolled (same Deployments, same pods)."""
    chart = session.work / "thrifty-0.1.1"
    shutil.copytree(CHART, chart)
    bump_chart_version(chart / "Chart.yaml", "0.1.1")
    add_printer_column(chart / "templates" / "crds" / "thrifty.dev_inferencemodels.yaml")
    before = model_workloads(session)

    result = session.helm(
        "upgrade",
        RELEASE,
        str(chart),
        f"--namespace={RELEASE_NAMESPACE}",
        f"--values={session.values}",
        "--wait",
        "--timeout=120s",
    )
    session.timings["upgrade"] = result.seconds

    history = json.loads(
        session.helm("history", RELEASE, f"--namespace={RELEASE_NAMESPACE}", "-o", "json").output
    )
    assert (history[-1]["revision"], history[-1]["chart"], history[-1]["status"]) == (
        2,
        "thrifty-0.1.1",
        "deployed",
    )
    columns = session.get("crd", CRDS[0])["spec"]["versions"][0]["additionalPrinterColumns"]
    assert "MaxModelLen" in [column["name"] for column in columns]

    models = {
        body["metadata"]["name"]: body["spec"]["model"]["maxModelLen"]
        for body in (yaml.safe_load(path.read_text()) for path in EXAMPLES)
        if body["kind"] == "InferenceModel"
    }

    def wide_table_shows_the_column() -> dict[str, str] | None:
        table = session.kubectl("get", "im", "-n", MODELS_NAMESPACE, "-o", "wide").splitlines()
        header = table[0]
        if "MAXMODELLEN" not in header.split():
            return None
        # kubectl aligns every cell under its header; some cells (Batch before any load) are blank,
        # so read the column by position, not by counting words.
        start = header.index("MAXMODELLEN")
        return {row.split()[0]: row[start:].split()[0] for row in table[1:]}

    shown = eventually(
        wide_table_shows_the_column, timeout=30, what="the MAXMODELLEN column in `get im -o wide`"
    )
    assert shown == {name: str(length) for name, length in models.items()}
    wait_examples_ready(session, operator)
    assert model_workloads(session) == before, "the upgrade rolled or replaced a model's workload"


def uninstall(session: Session, operator: OperatorLog) -> None:
    """`helm uninstall`: nothing of the release is left but the CRDs it keeps on purpose, the
    users' objects stay, nothing is stuck Terminating, and the namespace can go too."""
    # The same query that must come back (nearly) empty afterwards finds the whole release now.
    installed = {entry.split("/")[0] for entry in labelled_objects(session, RELEASE_SELECTOR)}
    expected = {"CustomResourceDefinition", "Deployment", "Pod", "Service", "ServiceAccount", "ConfigMap"}
    expected |= {"ClusterRole", "ClusterRoleBinding"}
    assert expected <= installed, f"the release's inventory misses {expected - installed}"

    # Checked before: uninstall removes the ClusterRoleBinding a moment before the operator pod,
    # and a refusal in that moment is expected.
    assert_never_forbidden(operator)
    result = session.helm(
        "uninstall", RELEASE, f"--namespace={RELEASE_NAMESPACE}", "--wait", "--timeout=120s"
    )
    session.timings["uninstall"] = result.seconds
    eventually(lambda: not operator_pods(session), timeout=30, what="the operator pod to go")

    left = labelled_objects(session, RELEASE_SELECTOR)
    assert sorted(left) == sorted(f"CustomResourceDefinition/{name}" for name in CRDS), left
    for name in CRDS:
        assert condition(session.get("crd", name), "Established") == "True"
    assert session.get("secrets", "-n", RELEASE_NAMESPACE, "-l", f"owner=helm,name={RELEASE}")["items"] == []
    kinds = {yaml.safe_load(path.read_text())["kind"].lower() for path in EXAMPLES}
    for kind in kinds:
        assert session.get(kind, "-n", MODELS_NAMESPACE)["items"], f"uninstall deleted the users' {kind}s"

    eventually(lambda: not terminating_objects(session), timeout=30, what="no object left Terminating")
    # A user who also removes the namespace: nothing in it (no finalizer of ours) holds it.
    session.kubectl("delete", "namespace", RELEASE_NAMESPACE, "--wait=true", "--timeout=60s")
    assert terminating_objects(session) == []


def edit_a_model_and_see_it_rolled(session: Session, operator: OperatorLog) -> None:
    """The re-installed operator, with its new ServiceAccount's token, carries out an edit: its
    field manager still owns the children it applied before the uninstall."""
    name = "llama-8b"
    session.kubectl(
        "patch",
        "im",
        name,
        "-n",
        MODELS_NAMESPACE,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"batching": {"maxNumBatchedTokens": 12288}}}),
    )

    def rolled() -> bool:
        model = session.get("im", name, "-n", MODELS_NAMESPACE)
        deployment = session.get("deployment", name, "-n", MODELS_NAMESPACE)
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        observed = model["status"].get("observedGeneration") == model["metadata"]["generation"]
        return observed and args[args.index("--max-num-batched-tokens") + 1] == "12288"

    eventually(rolled, timeout=30, what=f"{name} rolled to --max-num-batched-tokens 12288")
    assert_never_forbidden(operator)


# -- reading the cluster ---------------------------------------------------------------------------


def condition(body: dict[str, Any], kind: str) -> str | None:
    return next(
        (c.get("status") for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == kind),
        None,
    )


def operator_pods(session: Session) -> list[dict[str, Any]]:
    selector = f"{RELEASE_SELECTOR},app.kubernetes.io/component=operator"
    pods: list[dict[str, Any]] = session.get("pods", "-n", RELEASE_NAMESPACE, "-l", selector)["items"]
    return pods


def operator_pod(session: Session) -> dict[str, Any]:
    pods = operator_pods(session)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    assert pods[0]["status"].get("podIP"), "the operator pod has no IP"
    return pods[0]


def running_pod(session: Session, name: str) -> dict[str, Any] | None:
    found = session.get("pods", "-n", RELEASE_NAMESPACE, f"--field-selector=metadata.name={name}")["items"]
    if found and found[0]["status"].get("phase") == "Running" and found[0]["status"].get("podIP"):
        return dict(found[0])
    return None


def model_workloads(session: Session) -> dict[str, Any]:
    """What a teardown or a roll would change: each Deployment's uid and generation, each pod's uid."""
    deployments = session.get("deployments", "-n", MODELS_NAMESPACE)["items"]
    pods = session.get("pods", "-n", MODELS_NAMESPACE)["items"]
    return {
        "deployments": {
            d["metadata"]["name"]: (d["metadata"]["uid"], d["metadata"]["generation"]) for d in deployments
        },
        "pods": sorted(p["metadata"]["uid"] for p in pods),
    }


def listable_resources(session: Session) -> list[str]:
    return session.kubectl("api-resources", "--verbs=list", "-o", "name").split()


def labelled_objects(session: Session, selector: str) -> list[str]:
    """Every object of any listable kind, in any namespace, that carries the label ``selector``."""
    items = session.get(",".join(listable_resources(session)), "-A", "-l", selector)["items"]
    return [f"{item['kind']}/{item['metadata']['name']}" for item in items]


def terminating_objects(session: Session) -> list[str]:
    """Every object of any listable kind with a deletionTimestamp: deletion that did not finish."""
    items = session.get(",".join(listable_resources(session)), "-A")["items"]
    return [
        f"{item['kind']}/{item['metadata'].get('namespace', '')}/{item['metadata']['name']}"
        for item in items
        if item["metadata"].get("deletionTimestamp")
    ]


def assert_never_forbidden(operator: OperatorLog) -> None:
    denied = [line for line in operator.logs().splitlines() if REFUSED.search(line)]
    assert denied == [], "the operator was refused by its own RBAC:\n" + "\n".join(denied[:20])


# -- editing a copy of the chart -------------------------------------------------------------------


def bump_chart_version(chart_yaml: Path, version: str) -> None:
    text = chart_yaml.read_text()
    bumped = re.sub(r"(?m)^version: .*$", f"version: {version}", text)
    assert bumped != text, "Chart.yaml has no version line"
    chart_yaml.write_text(bumped)


def add_printer_column(crd_template: Path) -> None:
    """One more column in `kubectl get im -o wide`, inserted before Age (kept last, as kubectl does)."""
    text = crd_template.read_text()
    age = "    - name: Age\n"
    assert text.count(age) == 1, "the InferenceModel CRD template has no single Age column"
    column = (
        "    - name: MaxModelLen\n"
        "      type: integer\n"
        "      description: Longest context a request may use\n"
        "      jsonPath: .spec.model.maxModelLen\n"
        "      priority: 1\n"
    )
    crd_template.write_text(text.replace(age, column + age))
