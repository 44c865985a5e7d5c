#!/usr/bin/env bash
# Builds the testbed's control-plane binaries from the pinned Go modules in
# testbed/gomod/ into a per-version cache outside the repository:
#   ${THRIFTY_CACHE:-~/.cache/thrifty}/testbed/<key>/bin/
# where <key> hashes every go.mod/go.sum plus the Go version, so a second run
# with nothing changed is a no-op. Prints progress as "[component n/N] package".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testbed/env.sh
source "$here/env.sh"

bin_dir="$(testbed_bin_dir)"
mkdir -p "$bin_dir"

k8s_version="$(cd "$here/gomod/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
if [[ ! "$k8s_version" =~ ^v1\.[0-9]+\.[0-9]+$ ]]; then
  echo "cannot read the pinned k8s.io/kubernetes version (got '$k8s_version')" >&2
  exit 1
fi
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  # Without these /version reports v0.0.0-master, which confuses clients that sniff it.
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
  k8s_ldflags+=" -X $pkg.buildDate=$build_date"
done

# component  module-dir  package  build-tags
components=(
  "etcd etcd go.etcd.io/etcd/server/v3 -"
  "kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver -"
  "kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager -"
  "kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler -"
  "kubectl kubernetes k8s.io/kubernetes/cmd/kubectl -"
  "kwok kwok sigs.k8s.io/kwok/cmd/kwok -"
  # Only Kubernetes discovery: the other service-discovery plugins (cloud SDKs) would more than
  # double the build time for nothing the testbed uses.
  "prometheus prometheus github.com/prometheus/prometheus/cmd/prometheus remove_all_sd,enable_kubernetes_sd"
  # Tools for the Helm chart's checks: helm lint/template/install, and schema validation.
  "helm helm helm.sh/helm/v3/cmd/helm -"
  "kubeconform kubeconform github.com/yannh/kubeconform/cmd/kubeconform -"
)
only="${1:-}"

total=${#components[@]}
index=0
for entry in "${components[@]}"; do
  read -r name module package tags <<<"$entry"
  [ "$tags" = - ] && tags=""
  index=$((index + 1))
  if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
  if [ -x "$bin_dir/$name" ]; then
    echo "[$index/$total] $name: cached in $bin_dir"
    continue
  fi
  ldflags="-s -w"
  if [ "$module" = kubernetes ]; then ldflags+="$k8s_ldflags"; fi
  started=$(date +%s)
  pkgs=$(cd "$here/gomod/$module" && go list -tags "$tags" -deps "$package" | wc -l)
  echo "[$index/$total] $name: building $package ($pkgs packages)"
  # go build -v names each package as it compiles it: count them for progress.
  (cd "$here/gomod/$module" && CGO_ENABLED=0 go build -v -trimpath -tags "$tags" -ldflags "$ldflags" \
      -o "$bin_dir/$name.partial" "$package" 2>&1) |
    awk -v name="$name" -v total="$pkgs" '
      /^[a-zA-Z0-9._\/-]+$/ { n++; if (n % 50 == 0) printf "  %s: %d/%d packages compiled\n", name, n, total; fflush(); next }
      { print; fflush() }'
  if [ ! -f "$bin_dir/$name.partial" ]; then
    echo "[$index/$total] $name: build failed" >&2
    exit 1
  fi
  mv "$bin_dir/$name.partial" "$bin_dir/$name"
  echo "[$index/$total] $name: done in $(( $(date +%s) - started ))s"
done
echo "testbed binaries: $bin_dir"
