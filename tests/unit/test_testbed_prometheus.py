from pathlib import Path

from thrifty.testbed.prometheus import OPERATOR_METRICS_PORT, prometheus_config


def test_pods_are_discovered_through_the_apiserver_and_kept_by_annotation() -> None:
    config = prometheus_config(Path("/state/kubeconfig"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "kubernetes-pods")
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "kubeconfig_file": "/state/kubeconfig"}]
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep[0]["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    address = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
    assert address["source_labels"] == [
        "__meta_kubernetes_pod_ip",
        "__meta_kubernetes_pod_annotation_prometheus_io_port",
    ]


def test_the_operator_process_is_scraped_on_loopback_keeping_its_own_labels() -> None:
    config = prometheus_config(Path("/state/kubeconfig"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    operator = jobs["thrifty-operator"]
    assert operator["static_configs"] == [{"targets": [f"127.0.0.1:{OPERATOR_METRICS_PORT}"]}]
    # Its series carry the namespace and model they are about; Prometheus must not overwrite them.
    assert operator["honor_labels"] is True
    assert set(jobs) == {"kubernetes-pods", "thrifty-operator"}
