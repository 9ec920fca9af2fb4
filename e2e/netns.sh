#!/usr/bin/env bash
# Runs a command in a new, private network namespace where 10.244.0.0/24 ("pod addresses") is
# local: the control plane, the operator, the data-plane processes, Prometheus and the load all
# live inside it, so the operator can reach the data planes at addresses the Kubernetes API
# accepts in EndpointSlices (it refuses loopback), and no traffic can leave the namespace (it has
# no route out). The namespace goes away with the command.
#
# Usage: e2e/netns.sh COMMAND [ARGS...]   (needs root, or CAP_SYS_ADMIN + CAP_NET_ADMIN)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
exec unshare --net -- bash -c '
  set -euo pipefail
  ip link set lo up
  # A /24 on lo makes every address of it local (binding 10.244.0.N works for any N).
  ip addr add 10.244.0.1/24 dev lo
  exec "$@"
' netns "$@"
