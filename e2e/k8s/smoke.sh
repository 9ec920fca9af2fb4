#!/usr/bin/env bash
# Smoke test of the e2e Kubernetes tooling: install (or reuse) the pinned
# binaries, start a control plane in a temp dir, exercise kubectl, RBAC and helm,
# stop it. Exits non-zero on any failure (and prints the process logs).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

step() { printf '==> smoke: %s\n' "$*" >&2; }
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; exit 1; }

"$HERE/install.sh" >/dev/null

DIR="$(mktemp -d "${TMPDIR:-/tmp}/vr-k8s-smoke.XXXXXX")"
finish() {
  rc=$?
  "$HERE/control-plane.sh" stop "$DIR" || true
  if [ $rc -ne 0 ]; then
    for f in "$DIR"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
    echo "smoke: logs kept in $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit $rc
}
trap finish EXIT

step "start control plane in $DIR"
t0=$SECONDS
"$HERE/control-plane.sh" start "$DIR"
step "ready after $((SECONDS - t0)) s"
set -a; source "$DIR/env"; set +a
# The env file must carry exactly what the harness documentation promises.
for k in K8S_APISERVER_URL K8S_APISERVER_PID K8S_ETCD_PID K8S_ADMIN_KUBECONFIG K8S_OPERATOR_KUBECONFIG K8S_DATAPLANE_KUBECONFIG K8S_CA_FILE; do
  [ -n "${!k:-}" ] || fail "env lacks $k"
done
kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$K8S_ADMIN_KUBECONFIG" "$@"; }

step "kubectl get ns"
kubectl get ns
kubectl get ns default -o name | grep -qx 'namespace/default' || fail "no default namespace"

step "kubectl create ns x"
kubectl create ns x
kubectl get ns x -o jsonpath='{.status.phase}' | grep -qx Active || fail "namespace x not Active"

step "RBAC: operator may not list configmaps"
out="$(kubectl auth can-i list configmaps --as "$K8S_OPERATOR_USER" 2>&1)" && fail "can-i said yes: $out"
[ "$out" = no ] || fail "expected 'no', got: $out"
echo "can-i (impersonated operator): $out"
out="$("$K8S_BIN/kubectl" --kubeconfig "$K8S_OPERATOR_KUBECONFIG" get configmaps -n x 2>&1)" && fail "operator token listed configmaps: $out"
echo "$out" | grep -q Forbidden || fail "expected Forbidden with the operator's own token, got: $out"
who="$("$K8S_BIN/kubectl" --kubeconfig "$K8S_DATAPLANE_KUBECONFIG" auth whoami -o jsonpath='{.status.userInfo.username}')"
[ "$who" = "$K8S_DATAPLANE_USER" ] || fail "data-plane token authenticates as '$who'"

step "RBAC: a RoleBinding grants it"
kubectl -n x create role cm-reader --verb=list --resource=configmaps
kubectl -n x create rolebinding cm-reader --role=cm-reader --user="$K8S_OPERATOR_USER"
ok=""
for _ in $(seq 1 20); do  # the authorizer's cache catches up quickly
  ok="$("$K8S_BIN/kubectl" --kubeconfig "$K8S_OPERATOR_KUBECONFIG" auth can-i list configmaps -n x 2>/dev/null || true)"
  [ "$ok" = yes ] && break; sleep 0.25
done
[ "$ok" = yes ] || fail "RoleBinding did not take effect (got '$ok')"
"$K8S_BIN/kubectl" --kubeconfig "$K8S_OPERATOR_KUBECONFIG" get configmaps -n x >/dev/null

step "helm version"
"$K8S_BIN/helm" version
"$K8S_BIN/helm" --kubeconfig "$K8S_ADMIN_KUBECONFIG" list -A >/dev/null

step "stop"
"$HERE/control-plane.sh" stop "$DIR"
for p in "$K8S_APISERVER_PID" "$K8S_ETCD_PID"; do
  # An exited orphan may linger as a zombie until init reaps it: that counts as stopped.
  state="$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)"
  [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ] || fail "pid $p still running after stop (state $state)"
done
step "PASS"
