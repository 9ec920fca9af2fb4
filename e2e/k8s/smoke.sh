#!/usr/bin/env bash
# Smoke test of the e2e Kubernetes tooling: install (or reuse) the pinned
# binaries, start a control plane in a temp dir, exercise kubectl, RBAC, garbage
# collection (kube-controller-manager), namespace deletion and helm, stop it. Exits non-zero on any failure (and prints the process logs).
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
for k in K8S_APISERVER_URL K8S_APISERVER_PID K8S_ETCD_PID K8S_ADMIN_KUBECONFIG K8S_OPERATOR_KUBECONFIG K8S_DATAPLANE_KUBECONFIG K8S_CA_FILE \
         K8S_CONTROLLER_MANAGER_PID K8S_CONTROLLER_MANAGER_LOG K8S_CONTROLLER_MANAGER_KUBECONFIG; do
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

step "GC: deleting ConfigMap A removes B, whose ownerReference points at A"
kubectl -n x create configmap gc-owner --from-literal=role=owner
uid="$(kubectl -n x get configmap gc-owner -o jsonpath='{.metadata.uid}')"
[ -n "$uid" ] || fail "no uid for configmap gc-owner"
kubectl apply -f - <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: gc-dependent
  namespace: x
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: gc-owner
    uid: "$uid"
data:
  role: dependent
EOF
[ "$(kubectl -n x get configmap gc-dependent -o jsonpath='{.metadata.ownerReferences[0].uid}')" = "$uid" ] \
  || fail "gc-dependent does not carry the ownerReference"
t0=$SECONDS
kubectl -n x delete configmap gc-owner --wait=true
gone=0
while [ $((SECONDS - t0)) -lt 30 ]; do
  out="$(kubectl -n x get configmap gc-dependent -o name 2>&1)" && { sleep 0.25; continue; }
  echo "$out" | grep -q NotFound || fail "unexpected error while waiting for GC: $out"
  gone=1; break
done
[ $gone = 1 ] || fail "garbage collector did not delete gc-dependent within 30 s of deleting its owner"
echo "gc-dependent collected $((SECONDS - t0)) s after its owner was deleted"

step "namespace controller: a deleted namespace goes away"
kubectl create ns gc-ns
kubectl -n gc-ns create configmap leftover --from-literal=k=v
kubectl delete ns gc-ns --wait=true --timeout=30s || fail "namespace gc-ns not removed within 30 s"

step "helm version"
"$K8S_BIN/helm" version
"$K8S_BIN/helm" --kubeconfig "$K8S_ADMIN_KUBECONFIG" list -A >/dev/null

step "stop"
"$HERE/control-plane.sh" stop "$DIR"
for p in "$K8S_CONTROLLER_MANAGER_PID" "$K8S_APISERVER_PID" "$K8S_ETCD_PID"; do
  # An exited orphan may linger as a zombie until init reaps it: that counts as stopped.
  state="$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)"
  [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ] || fail "pid $p still running after stop (state $state)"
done
step "PASS"
