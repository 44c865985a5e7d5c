#!/usr/bin/env bash
# Run a command inside a new network namespace made for the testbed.
#
# Inside it, two "AnyIP" routes make the simulated pod range and the node/apiserver range local,
# so a process can serve at any pod's own IP. They exist only in this namespace: nothing here
# ever changes the machine's own network. The namespace lasts as long as the command.
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: testbed/netns.sh COMMAND [ARGS...]" >&2
  exit 2
fi
if [ "$(id -u)" -eq 0 ]; then
  unshare_flags=(-n)
else
  unshare_flags=(-Urn)   # an unprivileged user gets root inside a user namespace of its own
fi
exec unshare "${unshare_flags[@]}" -- bash -c '
  set -euo pipefail
  ip link set lo up
  ip route add local 10.244.0.0/16 dev lo
  ip route add local 10.245.0.0/24 dev lo
  export THRIFTY_NETNS=1
  exec "$@"
' testbed-netns "$@"
