"""The Helm chart: lint, generated files current, and what it renders (with the real helm binary
that the testbed builds; no cluster)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from support import chart_tool
from thrifty.api import InferenceModel, crd_files
from thrifty.chart_values import PLACEHOLDER_DIGEST, ChartValues, chart_values_files
from thrifty.k8s import objects
from thrifty.render import desired_children

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "thrifty"


validate = chart_tool("validate")


def render(*set_values: str) -> list[dict[str, Any]]:
    try:
        text = validate.render(set_values)
    except FileNotFoundError as error:
        pytest.fail(str(error))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def only(docs: Sequence[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def operator_pod(default_docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = only(default_docs, "Deployment")["spec"]["template"]["spec"]
    return spec


# --- lint and generated files ---------------------------------------------------------------


@pytest.mark.parametrize("values", [(), validate.ALL_TOGGLES_ON], ids=["defaults", "every-toggle-on"])
def test_helm_lint_passes_strictly(values: tuple[str, ...]) -> None:
    lint = validate.helm_lint(set_values=values)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 chart(s) failed" in lint.stdout


def test_values_schema_refuses_a_misspelt_key_with_its_path() -> None:
    lint = validate.helm_lint(set_values=["operator.resyncSecond=30"])
    assert lint.returncode == 1
    assert "at '/operator': additional properties 'resyncSecond' not allowed" in lint.stdout


def test_values_schema_refuses_an_image_without_a_real_digest() -> None:
    lint = validate.helm_lint(set_values=["image.digest=latest"])
    assert lint.returncode == 1
    assert "/image/digest" in lint.stdout


@pytest.mark.parametrize("name", ["values.yaml", "values.schema.json"])
def test_committed_values_files_match_the_values_model(name: str) -> None:
    expected = chart_values_files()[name]
    assert (CHART / name).read_text() == expected, (
        f"charts/thrifty/{name} is stale: run `.venv/bin/python tools/chart/generate.py`"
    )


def test_values_yaml_parses_back_to_the_model_defaults() -> None:
    values = yaml.safe_load(chart_values_files()["values.yaml"])
    assert ChartValues.model_validate(values) == ChartValues()
    assert values == ChartValues().model_dump(by_alias=True, mode="json")


def test_every_value_is_documented_in_values_yaml() -> None:
    undocumented = []

    def walk(model: type[BaseModel], path: str) -> None:
        for name, field in model.model_fields.items():
            if not field.description:
                undocumented.append(f"{path}{field.alias or name}")
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, f"{path}{field.alias or name}.")

    walk(ChartValues, "")
    assert undocumented == []
    assert "# How often every object is reconciled again" in chart_values_files()["values.yaml"]


def test_values_schema_forbids_unknown_keys_in_every_section() -> None:
    schema = json.loads(chart_values_files()["values.schema.json"])
    open_sections = []

    def walk(node: dict[str, Any], path: str) -> None:
        if "properties" in node:
            if node.get("additionalProperties") is not False:
                open_sections.append(path or "/")
            for name, child in node["properties"].items():
                walk(child, f"{path}/{name}")

    walk(schema, "")
    assert open_sections == []


def test_chart_crds_are_current_copies_of_crds_dir() -> None:
    chart_crds = chart_tool("chart_crds")
    expected = chart_crds.chart_crd_files()
    committed = {p.name: p.read_text() for p in (CHART / "templates" / "crds").glob("*.yaml")}
    assert committed == expected, "charts/thrifty/templates/crds is stale: run tools/chart/generate.py"
    assert set(expected) == set(crd_files()), "crds/ is stale itself: run `thrifty crds` first"


def test_chart_crd_template_keeps_the_crd_body_byte_for_byte() -> None:
    chart_crds = chart_tool("chart_crds")
    source = (REPO / "crds" / "thrifty.dev_inferencemodels.yaml").read_text()
    template = chart_crds.chart_crd_template("thrifty.dev_inferencemodels.yaml", source)
    assert source.split("\nspec:\n", 1)[1] in template
    assert "helm.sh/resource-policy: keep" in template


def test_braces_in_a_crd_description_stay_literal() -> None:
    chart_crds = chart_tool("chart_crds")
    source = "apiVersion: v1\nkind: X\nmetadata:\n  name: x\nspec:\n  description: a {{ brace }}\n"
    template = chart_crds.chart_crd_template("x.yaml", source)
    assert '{{ "{{" }} brace }}' in template


# --- the operator Deployment ----------------------------------------------------------------


def test_operator_runs_one_replica_recreated_never_two_at_once(default_docs: list[dict[str, Any]]) -> None:
    deployment = only(default_docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_operator_pod_meets_the_restricted_pod_security_standard(operator_pod: dict[str, Any]) -> None:
    pod_context = operator_pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in operator_pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
    assert "hostNetwork" not in operator_pod
    assert all("hostPath" not in volume for volume in operator_pod["volumes"])


def test_operator_runs_thrifty_operator_with_its_liveness_endpoint(operator_pod: dict[str, Any]) -> None:
    (container,) = operator_pod["containers"]
    assert container["command"] == ["thrifty"]
    assert container["args"] == ["operator", "--liveness=http://0.0.0.0:8080/healthz"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 8081}


def test_operator_settings_reach_the_process(operator_pod: dict[str, Any]) -> None:
    (container,) = operator_pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["THRIFTY_RESYNC_SECONDS"] == "60"
    assert env["THRIFTY_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert env["THRIFTY_METRICS_PORT"] == "8081"
    assert env["THRIFTY_ROUTER_CLUSTER_ROLE"] == "thrifty-router"
    assert env["THRIFTY_ROUTER_IMAGE"] == container["image"], (
        "the router runs the operator's image by default"
    )


def test_every_image_is_pinned_by_digest() -> None:
    docs = render(*validate.ALL_TOGGLES_ON)
    images = [
        c["image"]
        for doc in docs
        if doc["kind"] in ("Deployment", "Pod")
        for c in (doc["spec"].get("template", {}).get("spec") or doc["spec"])["containers"]
    ]
    assert len(images) == 2
    assert all(re.search(r"@sha256:[a-f0-9]{64}$", image) for image in images), images


def test_router_image_override_keeps_the_digest_pin() -> None:
    deployment = only(
        render("router.image.repository=mirror.example/thrifty", f"router.image.digest=sha256:{'a' * 64}"),
        "Deployment",
    )
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["THRIFTY_ROUTER_IMAGE"] == f"mirror.example/thrifty@sha256:{'a' * 64}"


def test_operator_needs_no_gpu_and_tolerates_no_gpu_taint(operator_pod: dict[str, Any]) -> None:
    text = json.dumps(operator_pod)
    assert "nvidia.com/gpu" not in text
    assert "tolerations" not in operator_pod
    assert "nodeSelector" not in operator_pod


def test_watch_namespaces_become_flags_and_the_namespace_rule_appears() -> None:
    docs = render("operator.watchNamespaces={models,team-*}")
    args = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--namespace=models", "--namespace=team-*"]
    rules = only(docs, "ClusterRole", "thrifty")["rules"]
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in rules


# --- RBAC -----------------------------------------------------------------------------------


def operator_rules(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = only(docs, "ClusterRole", "thrifty")["rules"]
    return rules


def allowed(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_has_no_wildcards_and_no_secrets() -> None:
    docs = render(*validate.ALL_TOGGLES_ON)
    for role in (d for d in docs if d["kind"] == "ClusterRole"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{role['metadata']['name']}: wildcard in {key}"
            assert "secrets" not in rule["resources"], f"{role['metadata']['name']}: Secrets"


def test_every_rbac_rule_is_justified_by_a_comment() -> None:
    lines = [line.strip() for line in (CHART / "templates" / "clusterrole.yaml").read_text().splitlines()]
    rules = [index for index, line in enumerate(lines) if line.startswith("- apiGroups:")]
    assert len(rules) >= 15
    assert [lines[index] for index in rules if not lines[index - 1].startswith("#")] == []


def test_operator_role_covers_every_kind_the_k8s_layer_addresses(default_docs: list[dict[str, Any]]) -> None:
    rules = operator_rules(default_docs)
    missing = [
        f"{api_version} {plural}"
        for (api_version, _kind), plural in objects._PLURALS.items()
        if not allowed(rules, api_version.rpartition("/")[0], plural)
    ]
    assert missing == []


def test_operator_writes_status_but_never_spec_of_user_objects(default_docs: list[dict[str, Any]]) -> None:
    rules = operator_rules(default_docs)
    for resource in ("inferencemodels", "inferencerouters"):
        assert allowed(rules, "thrifty.dev", resource) == {"get", "list", "watch"}
        assert allowed(rules, "thrifty.dev", f"{resource}/status") == {"patch"}


def test_operator_applies_children_server_side_and_deletes_nothing(
    default_docs: list[dict[str, Any]],
) -> None:
    rules = operator_rules(default_docs)
    for group, resource in (
        ("apps", "deployments"),
        ("", "services"),
        ("", "configmaps"),
        ("policy", "poddisruptionbudgets"),
    ):
        verbs = allowed(rules, group, resource)
        assert {"create", "patch"} <= verbs
        assert not verbs & {"delete", "deletecollection", "update"}, f"{resource}: {verbs}"
    assert allowed(rules, "", "nodes") == {"list"}


def test_operator_may_bind_only_the_router_role(default_docs: list[dict[str, Any]]) -> None:
    binds = [rule for rule in operator_rules(default_docs) if "bind" in rule["verbs"]]
    assert binds == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": ["thrifty-router"],
        }
    ]


def test_router_role_reads_endpointslices_and_may_only_stamp_models(
    default_docs: list[dict[str, Any]],
) -> None:
    router = only(default_docs, "ClusterRole", "thrifty-router")
    assert router["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        # The wake annotation on a model scaled to zero: no create, update or delete, no status.
        {"apiGroups": ["thrifty.dev"], "resources": ["inferencemodels"], "verbs": ["get", "patch"]},
    ]


def test_binding_grants_the_operator_role_to_its_service_account(default_docs: list[dict[str, Any]]) -> None:
    binding = only(default_docs, "ClusterRoleBinding")
    account = only(default_docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == "thrifty"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "thrifty-system"}
    ]
    assert only(default_docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "thrifty"


# --- CRDs, monitors, dashboards, tests, notes -------------------------------------------------


def test_crds_are_templates_kept_on_uninstall(default_docs: list[dict[str, Any]]) -> None:
    crds = [d for d in default_docs if d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "inferencemodels.thrifty.dev",
        "inferencerouters.thrifty.dev",
    ]
    for crd in crds:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert not (CHART / "crds").exists(), "Helm never upgrades the crds/ directory: keep CRDs in templates/"


def test_crds_keep_and_install_toggles() -> None:
    released = [d for d in render("crds.keep=false") if d["kind"] == "CustomResourceDefinition"]
    assert released
    assert all("helm.sh/resource-policy" not in d["metadata"]["annotations"] for d in released)
    assert [d for d in render("crds.install=false") if d["kind"] == "CustomResourceDefinition"] == []


def test_rendered_crd_spec_equals_the_generated_crd(default_docs: list[dict[str, Any]]) -> None:
    for name, text in crd_files().items():
        generated = yaml.safe_load(text)
        rendered = only(default_docs, "CustomResourceDefinition", generated["metadata"]["name"])
        assert rendered["spec"] == generated["spec"], name


def test_monitors_are_off_by_default_and_prometheus_annotations_on(
    default_docs: list[dict[str, Any]], operator_pod: dict[str, Any]
) -> None:
    assert {d["kind"] for d in default_docs} & {"PodMonitor", "ServiceMonitor"} == set()
    annotations = only(default_docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8081",
        "prometheus.io/path": "/metrics",
    }


def test_monitors_select_the_operator_and_thrifty_pods_when_enabled() -> None:
    docs = render("monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true")
    service = only(docs, "Service")
    monitor = only(docs, "ServiceMonitor")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ((endpoint),) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["honorLabels"] is True
    engines = only(docs, "PodMonitor", "thrifty-engines")["spec"]
    assert engines["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "thrifty",
        "thrifty.dev/role": "engine",
    }
    assert engines["namespaceSelector"] == {"any": True}
    assert engines["podMetricsEndpoints"][0]["port"] == "http"
    routers = only(docs, "PodMonitor", "thrifty-routers")["spec"]
    assert routers["selector"]["matchLabels"]["thrifty.dev/role"] == "router"


def test_engine_pod_monitor_selects_the_pods_the_renderer_creates() -> None:
    monitor = only(render("monitoring.podMonitor.enabled=true"), "PodMonitor", "thrifty-engines")["spec"]
    body = yaml.safe_load((REPO / "examples" / "llama-3.1-8b-fp8-h100.yaml").read_text())
    deployment = only(desired_children(InferenceModel.model_validate(body)), "Deployment")
    pod = deployment["spec"]["template"]
    assert monitor["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["podTargetLabels"] == ["thrifty.dev/model"]
    assert monitor["podTargetLabels"][0] in pod["metadata"]["labels"]
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert monitor["podMetricsEndpoints"][0]["port"] in ports
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == monitor["podMetricsEndpoints"][0]["path"]


def test_dashboards_ship_as_labelled_configmaps(default_docs: list[dict[str, Any]]) -> None:
    maps = [d for d in default_docs if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]
    assert sorted(m["metadata"]["name"] for m in maps) == [
        "thrifty-dashboard-cost",
        "thrifty-dashboard-models",
        "thrifty-dashboard-operator",
        "thrifty-dashboard-router",
    ]
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = config_map["data"].items()
        assert json.loads(text)["uid"] == key.removesuffix(".json")
    assert [d for d in render("dashboards.enabled=false") if "-dashboard-" in d["metadata"]["name"]] == []


def test_helm_test_pod_checks_the_operator_from_inside_the_cluster() -> None:
    docs = render()
    pod = only(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    script = container["args"][0]
    assert "http://thrifty.thrifty-system.svc" in script
    assert ":8080/healthz" in script
    assert ":8081/metrics" in script
    assert "thrifty_reconcile_total" in script
    compile(script, "helm-test", "exec")
    assert [d for d in render("tests.enabled=false") if d["kind"] == "Pod"] == []


def test_notes_warn_while_the_image_digest_is_a_placeholder() -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert PLACEHOLDER_DIGEST in notes, "NOTES.txt must recognise the placeholder digest"
    assert ChartValues().image.digest == PLACEHOLDER_DIGEST
