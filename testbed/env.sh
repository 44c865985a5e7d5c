# Shared by the testbed scripts: where the binary cache lives.
# The key changes whenever a pinned module, the build script or the Go toolchain changes.
testbed_key() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  { cat "$here"/gomod/*/go.mod "$here"/gomod/*/go.sum "$here/build.sh"; go env GOVERSION; } | sha256sum | cut -c1-16
}
testbed_bin_dir() {
  echo "${THRIFTY_CACHE:-$HOME/.cache/thrifty}/testbed/$(testbed_key)/bin"
}
