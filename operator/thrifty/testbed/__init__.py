"""The local testbed: a real Kubernetes control plane with simulated GPU nodes and Prometheus.

It runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and Prometheus as
plain processes inside a network namespace created by ``testbed/netns.sh``; the binaries come
from ``testbed/build.sh``. This is development tooling: the operator never imports it.
"""
