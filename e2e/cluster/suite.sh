#!/usr/bin/env bash
# Suite `cluster` (e2e/run cluster): the chart on a real single-node Kubernetes.
# Builds what it needs (control plane, node programs, release binaries, images; all cached
# outside the clone), starts the node inside a private network namespace (node.sh), runs
# checks.sh there, tears everything down and checks that the host's interfaces, addresses,
# routes and iptables/ip6tables rules are what they were before. Needs root.
#   e2e/cluster/suite.sh LOGDIR
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
source "$REPO/scripts/lib.sh"
LOGS="${1:?usage: suite.sh LOGDIR}"
mkdir -p "$LOGS"
now() { date +%s; }
t_start=$(now)

# What the namespace must leave alone (packet counters stripped: they move on their own).
host_state() {
  ip -o link | sed 's/ qlen [0-9]*//' | awk '{print $2, $3}'
  ip -o addr
  ip route show table all
  ip -6 route show table all
  { iptables-save 2>/dev/null || true; } | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//'
  { ip6tables-save 2>/dev/null || true; } | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//'
  ls /run/netns 2>/dev/null || true
}

apt_install ffmpeg openssl python3 curl unzip iproute2 util-linux iptables
e2e/k8s/install.sh >"$LOGS/k8s-install.log" 2>&1 || { tail -20 "$LOGS/k8s-install.log"; exit 1; }
e2e/cluster/install.sh >"$LOGS/cluster-install.log" 2>&1 || { tail -20 "$LOGS/cluster-install.log"; exit 1; }
cargo build -q --release -p vr-dataplane -p vr-operator -p vr-cli
scripts/images.sh > "$LOGS/images.txt"
scripts/images.sh --binary localhost/vr/pause:1 .cache/cluster/bin/pause >> "$LOGS/images.txt"
scripts/images.sh --binary localhost/vr/metrics-server:1 .cache/cluster/bin/metrics-server >> "$LOGS/images.txt"
cat "$LOGS/images.txt"
cargo test -q -p vr-e2e --test images -- --ignored built_images_match_the_dockerfiles 2>&1 | grep -E '^test result|panicked|FAILED' 
echo "CLUSTER BUILD $(( $(now) - t_start )) s (programs, release binaries, images; cached after the first run)"

host_state > "$LOGS/host-before.txt"
D="$(mktemp -d /tmp/vr-cluster.XXXXXX)"
teardown() {
  local rc=$? t0; t0=$(now)
  [ -f "$D/origin.pid" ] && e2e/cluster/node.sh in "$D" kill "$(cat "$D/origin.pid")" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    for f in "$D"/log/*.log; do echo "---- $f"; tail -15 "$f"; done >"$LOGS/node-logs-tail.txt" 2>&1 || true
    cp -r "$D/log" "$LOGS/node-log" 2>/dev/null || true
    echo "node logs: $LOGS/node-log" >&2
  fi
  e2e/cluster/node.sh down "$D"
  host_state > "$LOGS/host-after.txt"
  if diff -u "$LOGS/host-before.txt" "$LOGS/host-after.txt" > "$LOGS/host-diff.txt"; then
    echo "CLUSTER HOST_UNCHANGED interfaces, addresses, routes, iptables, ip6tables, /run/netns identical before and after; teardown $(( $(now) - t0 )) s"
  else
    cat "$LOGS/host-diff.txt"; echo "CLUSTER FAIL the host's network state changed" >&2; rc=1
  fi
  rm -rf "$D" 2>/dev/null || echo "left: $D (busy mounts)" >&2
  echo "CLUSTER WALL $(( $(now) - t_start )) s (whole suite)"
  exit "$rc"
}
trap teardown EXIT
images=(); for f in .cache/images/*.tar; do images+=("$REPO/$f"); done
e2e/cluster/node.sh up "$D" "${images[@]}" | sed 's/^/CLUSTER /'
e2e/cluster/node.sh in "$D" "$HERE/checks.sh" "$D"
