#!/usr/bin/env bash
# The checks of suite `cluster` on the real node (run by e2e/cluster/suite.sh inside the node's
# network namespace through `node.sh in`, with KUBECONFIG and PATH set). Each result is one
# CLUSTER line; the first failing check exits non-zero.
#   checks.sh DIR      DIR: the node's folder (node.sh up DIR)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
D="$1"
NS=vr-system   # the chart's release namespace
APP=media      # the namespace of the config and its data plane
[ "$(readlink /proc/self/ns/net)" != "$(cat "$D/host.netns")" ] || { echo "checks.sh runs inside the node's namespace" >&2; exit 1; }

now_ms() { date +%s%3N; }
say() { echo "CLUSTER $*"; }
fail() { echo "CLUSTER FAIL $*" >&2; exit 1; }
# poll SECONDS CMD... : until CMD succeeds.
poll() { local s="$1" i; shift; for ((i = 0; i < s * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done; return 1; }
ctr_() { ctr --address "$D/containerd/containerd.sock" -n k8s.io "$@" 2>/dev/null; }
# container_pid POD CONTAINER NAMESPACE : the host pid of the container's first process.
container_pid() {
  local id
  id="$(kubectl -n "$3" get pod "$1" -o jsonpath="{.status.containerStatuses[?(@.name==\"$2\")].containerID}")"
  id="${id#containerd://}"
  ctr_ tasks ls | awk -v id="$id" '$1 == id {print $2}'
}
# confined POD CONTAINER NAMESPACE : the running process is uid 65532 with a read-only "/".
confined() {
  local pid uid root
  pid="$(container_pid "$@")"
  [ -n "$pid" ] || fail "no process for $3/$1 $2"
  uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
  root="$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | head -1)"
  [ "$uid" = 65532 ] || fail "$3/$1 $2 runs as uid $uid"
  case ",$root," in *,ro,*) ;; *) fail "$3/$1 $2: root file system mounted $root" ;; esac
  echo "uid=$uid root=${root%%,*}"
}

# ---- 1. helm install: the operator's two replicas, one leader, restricted, read-only ---------
t0=$(now_ms)
kubectl create namespace "$NS" >/dev/null
helm install vr "$REPO/charts/video-resizer" -n "$NS" --wait --timeout 180s \
  --set operator.image.pullPolicy=Never >"$D/log/helm-install.log" 2>&1 \
  || { cat "$D/log/helm-install.log"; kubectl -n "$NS" get pods,events; fail "helm install"; }
say "HELM_INSTALL_READY $(( $(now_ms) - t0 )) ms (helm install --wait: 2 operator pods Ready)"
pods=($(kubectl -n "$NS" get pods -l app.kubernetes.io/component=operator -o jsonpath='{.items[*].metadata.name}'))
[ ${#pods[@]} = 2 ] || fail "operator pods: ${pods[*]}"
for p in "${pods[@]}"; do
  say "OPERATOR_POD $p ready=$(kubectl -n "$NS" get pod "$p" -o jsonpath='{.status.containerStatuses[0].ready}') $(confined "$p" operator "$NS")"
done
lease="$(kubectl -n "$NS" get lease -o jsonpath='{.items[0].spec.holderIdentity}')"
case " ${pods[*]} " in *" $lease "*) say "OPERATOR_LEADER $lease (one Lease holder among the 2 pods)" ;; *) fail "Lease holder '$lease' is not an operator pod" ;; esac
# The API server enforces restricted: a pod without the chart's securityContext is refused.
if out="$(kubectl -n "$NS" run plain --image=localhost/vr/pause:1 --image-pull-policy=Never 2>&1)"; then
  fail "a pod without a restricted securityContext was admitted in $NS"
fi
echo "$out" | grep -q 'violates PodSecurity "restricted' || fail "privileged pod refused for another reason: $out"
say "PSS_RESTRICTED enforced (a plain pod is refused: violates PodSecurity restricted:latest; the chart's pods admitted)"

# ---- 2. a config and a derivative: the data plane answers through its ClusterIP -------------
mkdir -p "$D/media"
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=25:duration=2 \
  -f lavfi -i sine=frequency=440:duration=2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac \
  "$D/media/sample.mp4"
# The origin: a static file server on the node address (pods reach it through the bridge).
(cd "$D/media" && exec python3 -m http.server --bind 10.200.0.1 8088 >"$D/log/origin.log" 2>&1) &
echo $! > "$D/origin.pid"
token_a="$(openssl rand -hex 16)"
kubectl create namespace "$APP" >/dev/null
kubectl -n "$APP" create secret generic admin-token --save-config --from-literal=token="$token_a" >/dev/null
t0=$(now_ms)
kubectl apply -f - >/dev/null <<EOF
apiVersion: videoresizer.io/v1alpha1
kind: VideoResizerConfig
metadata: {name: web, namespace: $APP}
spec:
  origins:
    - name: videos
      matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.mp4$'
      sources:
        - name: origin
          kind: http
          http: {url: 'http://10.200.0.1:8088/\${name}.mp4'}
  admin:
    tokens:
      - {name: ops, secretRef: {name: admin-token, key: token}, scopes: [read]}
  rollout: {steps: []}
  workload: {minReplicas: 1, maxReplicas: 3}
---
apiVersion: videoresizer.io/v1alpha1
kind: Derivative
metadata: {name: mobile, namespace: $APP}
spec: {config: web, width: 320, height: 180}
EOF
has_deployment() { [ -n "$(kubectl -n "$APP" get deploy -o name)" ]; }
poll 240 has_deployment || fail "no data-plane Deployment (operator logs: kubectl -n $NS logs)"
dep="$(kubectl -n "$APP" get deploy -o jsonpath='{.items[0].metadata.name}')"
kubectl -n "$APP" rollout status "deploy/$dep" --timeout=240s >/dev/null || { kubectl -n "$APP" get pods,events; fail "data plane not Ready"; }
say "DATAPLANE_READY $(( $(now_ms) - t0 )) ms (kubectl apply to the Deployment Ready)"
svc="$(kubectl -n "$APP" get svc -o jsonpath='{.items[0].spec.clusterIP}')"
dp_pod="$(kubectl -n "$APP" get pods -o jsonpath='{.items[0].metadata.name}')"
say "DATAPLANE_POD $dp_pod $(confined "$dp_pod" "$(kubectl -n "$APP" get pod "$dp_pod" -o jsonpath='{.spec.containers[0].name}')" "$APP")"
url="http://$svc/videos/sample.mp4?derivative=mobile"
# A Service answers a little after the rollout completes (kube-proxy's rules): poll it.
poll 60 curl -sf -m 30 -o /dev/null "$url" || fail "no answer from $url"
t1=$(now_ms)
code="$(curl -s -m 60 -o "$D/out.mp4" -w '%{http_code}' "$url")"
[ "$code" = 200 ] || fail "transform through the ClusterIP: HTTP $code"
dims="$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$D/out.mp4")"
[ "$dims" = "320,180" ] || fail "transformed size $dims, want 320,180"
say "TRANSFORM_VIA_CLUSTERIP $svc HTTP 200 320x180 in $(( $(now_ms) - t1 )) ms"

# ---- 3. the admin token: a Secret mounted read-only, rotated by kubectl apply ----------------
pid="$(container_pid "$dp_pod" "$(kubectl -n "$APP" get pod "$dp_pod" -o jsonpath='{.spec.containers[0].name}')" "$APP")"
mounted="$(cat "/proc/$pid/root/etc/video-resizer/secrets/admin-token/token")"
[ "$mounted" = "$token_a" ] || fail "the admin-token Secret is not mounted where the data plane reads it"
admin() { curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "http://$svc:9090/admin/health"; }
poll 30 test "$(admin "$token_a")" = 200 || fail "admin token refused: $(admin "$token_a")"
say "SECRET_MOUNT admin-token mounted at /etc/video-resizer/secrets/admin-token/token; token accepted (200), wrong token $(admin "not-the-token-0123456789")"
rev0="$(kubectl -n "$APP" get deploy "$dep" -o jsonpath='{.metadata.generation}')"
token_b="$(openssl rand -hex 16)"
t0=$(now_ms)
kubectl -n "$APP" create secret generic admin-token --from-literal=token="$token_b" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
file_updated() { [ "$(cat "/proc/$pid/root/etc/video-resizer/secrets/admin-token/token")" = "$token_b" ]; }
poll 180 file_updated || fail "the kubelet did not update the mounted admin-token file within 180 s"
say "SECRET_FILE_UPDATED $(( $(now_ms) - t0 )) ms from kubectl apply to the new token in the pod's mounted file (same pod, Deployment generation $rev0 -> $(kubectl -n "$APP" get deploy "$dep" -o jsonpath='{.metadata.generation}'))"
# Known gap (reported, not asserted yet): the data plane reads admin token files when a config
# revision loads (vr_dataplane::guard::auth::Tokens::load), not when the file changes.
if poll 30 test "$(admin "$token_a")" != 200; then
  say "TOKEN_ROTATION old token refused $(( $(now_ms) - t0 )) ms after kubectl apply; new token $(admin "$token_b")"
else
  say "TOKEN_ROTATION_GAP old token still accepted ($(admin "$token_a")) and new one $(admin "$token_b") $(( $(now_ms) - t0 )) ms after kubectl apply: the data plane does not re-read token files"
fi

# ---- 4. HPA on CPU (metrics-server): bounded distinct misses scale up, then back down -------
hpa_cpu() { kubectl -n "$APP" get hpa -o jsonpath='{.items[0].status.currentMetrics[0].resource.current.averageUtilization}'; }
poll 120 test -n "$(hpa_cpu)" || fail "the HPA has no CPU metric after 120 s (metrics-server)"
ready_pods() { kubectl -n "$APP" get deploy "$dep" -o jsonpath='{.status.readyReplicas}'; }
min="$(kubectl -n "$APP" get hpa -o jsonpath='{.items[0].spec.minReplicas}')"
max="$(kubectl -n "$APP" get hpa -o jsonpath='{.items[0].spec.maxReplicas}')"
# load WORKER SECONDS : distinct misses (a new width each request) until SECONDS pass; counts.
load() {
  local w="$1" end=$(( $(date +%s) + $2 )) i=0 ok=0 bad=0 code
  while [ "$(date +%s)" -lt "$end" ] && [ ! -e "$D/load.stop" ]; do
    code="$(curl -s -m 60 -o /dev/null -w '%{http_code}' "http://$svc/videos/sample.mp4?width=$(( 100 + (w * 200 + i) * 2 % 500 ))&height=120")"
    i=$((i + 1)); [ "$code" = 200 ] && ok=$((ok + 1)) || bad=$((bad + 1))
  done
  echo "$ok $bad" > "$D/load.$w"
}
# Start from minReplicas (the first transforms may already have scaled it up).
at_min() { [ "$(kubectl -n "$APP" get deploy "$dep" -o jsonpath='{.status.replicas}')" = "$min" ]; }
poll 420 at_min || fail "the data plane is not back at $min replicas before the load"
rm -f "$D/load.stop"
t0=$(now_ms)
pids=(); for w in 1 2 3; do load "$w" 240 & pids+=($!); done
scaled() { [ "${1:-0}" -gt "$min" ] 2>/dev/null; }
up_ok=0
for _ in $(seq 240); do scaled "$(ready_pods)" && { up_ok=1; break; }; sleep 1; done
t_up=$(( $(now_ms) - t0 ))
peak_cpu="$(hpa_cpu)"
touch "$D/load.stop"; wait "${pids[@]}"
read -r ok1 bad1 < <(cat "$D"/load.[123] | awk '{o += $1; b += $2} END {print o, b}')
[ "$up_ok" = 1 ] || fail "no scale-up within 240 s of load (CPU $(hpa_cpu)%, replicas $(ready_pods))"
say "HPA_SCALE_UP $min -> $(ready_pods) ready pods ${t_up} ms after the load started (CPU ${peak_cpu}% of request, target $(kubectl -n "$APP" get hpa -o jsonpath='{.items[0].spec.metrics[0].resource.target.averageUtilization}')%); load: $ok1 ok, $bad1 failed"
# Scale-down under a light steady probe: every request must succeed.
rm -f "$D/load.stop"
probe() {
  local ok=0 bad=0 code
  while [ ! -e "$D/load.stop" ]; do
    code="$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$url")"
    [ "$code" = 200 ] && ok=$((ok + 1)) || bad=$((bad + 1))
    sleep 0.1
  done
  echo "$ok $bad" > "$D/probe"
}
probe &
probe_pid=$!
t0=$(now_ms)
down_ok=0
for _ in $(seq 360); do
  [ "$(kubectl -n "$APP" get deploy "$dep" -o jsonpath='{.status.replicas}')" = "$min" ] && { down_ok=1; break; }
  sleep 1
done
t_down=$(( $(now_ms) - t0 ))
sleep 50   # the removed pods' grace period: requests keep flowing while they terminate
touch "$D/load.stop"; wait "$probe_pid"
read -r ok2 bad2 < "$D/probe"
[ "$down_ok" = 1 ] || fail "no scale-down to $min within 360 s"
say "HPA_SCALE_DOWN to $min replicas ${t_down} ms after the load stopped (the HPA's scale-down stabilization window: $(kubectl -n "$APP" get hpa -o jsonpath='{.items[0].spec.behavior.scaleDown.stabilizationWindowSeconds}') s); probe during and 50 s after: $ok2 ok, $bad2 failed"
[ "$bad2" = 0 ] || fail "$bad2 requests failed during the scale-down"
