from pathlib import Path

from thrifty.testbed.prometheus import prometheus_config


def test_pods_are_discovered_through_the_apiserver_and_kept_by_annotation() -> None:
    config = prometheus_config(Path("/state/kubeconfig"))
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "kubeconfig_file": "/state/kubeconfig"}]
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep[0]["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    address = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
    assert address["source_labels"] == [
        "__meta_kubernetes_pod_ip",
        "__meta_kubernetes_pod_annotation_prometheus_io_port",
    ]
