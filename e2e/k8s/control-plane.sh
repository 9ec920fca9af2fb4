#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager)
# on 127.0.0.1, without a container engine or a kubelet: what controller-runtime's
# envtest does, by hand, plus the garbage collector and the namespace controller.
#
#   e2e/k8s/control-plane.sh start DIR   start, wait for /readyz, write DIR/env + kubeconfigs
#   e2e/k8s/control-plane.sh stop DIR    stop the processes recorded in DIR (by pid); keeps logs
#   e2e/k8s/control-plane.sh env DIR     print DIR/env (KEY=VALUE lines, sourceable by sh)
#   e2e/k8s/control-plane.sh restart-apiserver DIR SECONDS   outage: down SECONDS, then back
#
# DIR must be absent or empty (mktemp -d) and contain no whitespace. Everything of
# the run lives in it: etcd data, certs, tokens, service-account keys, logs.
# Binaries come from $K8S_BIN (default $REPO/.cache/k8s/bin, see install.sh).
# Optional: K8S_START_TIMEOUT (s, default 120); K8S_WATCH_PID=PID stops the control
# plane once PID exits (for harnesses that may die without cleaning up);
# K8S_CONTROLLER_MANAGER=0 skips kube-controller-manager (no GC, namespaces stay Terminating);
# K8S_CRDS=FILE|DIR is applied (server-side) and waited for before kube-controller-manager
# starts: its garbage collector learns resource types by discovery at start and then
# only every 30 s (hard-coded), so dependents of a custom resource whose CRD appears
# later are collected up to ~40 s late.
#
# Identities (token auth, RBAC authorization, nothing is pre-authorized but admin):
#   admin      user vr-admin, group system:masters            DIR/kubeconfig
#   operator   system:serviceaccount:vr-system:vr-operator    DIR/kubeconfig-operator
#   data plane system:serviceaccount:default:vr-dataplane     DIR/kubeconfig-dataplane
#   kube-controller-manager  user system:kube-controller-manager, group system:masters
#                                                             DIR/kubeconfig-controller-manager
# The two service-account identities carry the groups a real token would
# (system:serviceaccounts, system:serviceaccounts:NS); they get rights only via RBAC.
#
# kube-controller-manager runs only the controllers in KCM_CONTROLLERS: the garbage
# collector (ownerReferences), the namespace controller (empties and removes
# deleted namespaces) and the ClusterRole aggregation controller (the chart's rules join the
# default view/edit/admin roles). Not the deployment/replicaset/endpointslice controllers: no
# kubelet runs, and the harness publishes the data plane's EndpointSlices itself.
# With --use-service-account-credentials=false both use the manager's own identity;
# the GC and the namespace controller must delete any kind of object, which is
# what system:masters gives (the bootstrap system:kube-controller-manager role
# only lists/watches everything).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
K8S_BIN="${K8S_BIN:-$REPO/.cache/k8s/bin}"
START_TIMEOUT="${K8S_START_TIMEOUT:-120}"
SERVICE_CIDR=10.96.0.0/16   # virtual addresses: nothing ever routes there
KCM_CONTROLLERS=garbage-collector-controller,namespace-controller,clusterrole-aggregation-controller   # names as of 1.35
KCM_USER=system:kube-controller-manager
case "${K8S_CONTROLLER_MANAGER:-1}" in
  0|1) WITH_KCM="${K8S_CONTROLLER_MANAGER:-1}" ;;
  *) echo "control-plane: K8S_CONTROLLER_MANAGER must be 0 or 1" >&2; exit 2 ;;
esac

OPERATOR_NS=vr-system;  OPERATOR_SA=vr-operator
DATAPLANE_NS=default;   DATAPLANE_SA=vr-dataplane

say() { printf 'control-plane: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

abs_dir() { # abs_dir DIR : creates DIR if needed, prints its absolute path
  mkdir -p "$1" && (cd "$1" && pwd -P)
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# alive PID DIR : PID is running (not a zombie) and is one of ours (its command
# line names DIR, which guards against a recycled pid).
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

stop_pid() { # stop_pid NAME PID DIR
  local name="$1" pid="$2" dir="$3" i
  alive "$pid" "$dir" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" "$dir" || { say "stopped $name (pid $pid)"; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  say "killed $name (pid $pid) after 10 s"
}

log_tail() { say "--- last lines of $1"; tail -n 30 "$1" >&2 || true; }

kubeconfig() { # kubeconfig FILE USER TOKEN
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vr-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 < "$CA_FILE")
users:
- name: $2
  user:
    token: $3
contexts:
- name: vr-e2e
  context:
    cluster: vr-e2e
    user: $2
current-context: vr-e2e
EOF
  chmod 600 "$1"
}

cmd_start() {
  local dir; dir="$(abs_dir "$1")"
  case "$dir" in *[[:space:]]*) die "DIR must not contain whitespace: $dir" ;; esac
  [ -z "$(ls -A "$dir")" ] || die "DIR must be empty: $dir"
  local bins="etcd kube-apiserver"
  [ "$WITH_KCM" = 1 ] && bins="$bins kube-controller-manager"
  [ -n "${K8S_CRDS:-}" ] && bins="$bins kubectl"
  [ -z "${K8S_CRDS:-}" ] || [ -e "$K8S_CRDS" ] || die "K8S_CRDS=$K8S_CRDS does not exist"
  for b in $bins; do
    [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b missing: run e2e/k8s/install.sh"
  done
  command -v openssl >/dev/null || die "openssl is required"
  command -v curl >/dev/null || die "curl is required"

  # If anything below fails, stop what was started so nothing leaks.
  trap 'rc=$?; if [ $rc -ne 0 ]; then say "start failed, stopping"; cmd_stop "$dir" || true; fi' EXIT

  mkdir -p "$dir/certs" "$dir/pki"

  # Tokens and service-account keys, fresh for every run.
  local admin_token operator_token dataplane_token kcm_token=""
  admin_token="$(openssl rand -hex 24)"
  [ "$WITH_KCM" = 1 ] && kcm_token="$(openssl rand -hex 24)"
  operator_token="$(openssl rand -hex 24)"
  dataplane_token="$(openssl rand -hex 24)"
  local operator_user="system:serviceaccount:$OPERATOR_NS:$OPERATOR_SA"
  local dataplane_user="system:serviceaccount:$DATAPLANE_NS:$DATAPLANE_SA"
  # token,user,uid,"group,..."
  {
    echo "$admin_token,vr-admin,vr-admin,\"system:masters\""
    echo "$operator_token,$operator_user,$(cat /proc/sys/kernel/random/uuid),\"system:serviceaccounts,system:serviceaccounts:$OPERATOR_NS\""
    echo "$dataplane_token,$dataplane_user,$(cat /proc/sys/kernel/random/uuid),\"system:serviceaccounts,system:serviceaccounts:$DATAPLANE_NS\""
    [ -z "$kcm_token" ] || echo "$kcm_token,$KCM_USER,$KCM_USER,\"system:masters\""
  } > "$dir/pki/tokens.csv"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/pki/sa.key" 2>/dev/null
  openssl pkey -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub" 2>/dev/null
  chmod 600 "$dir/pki/tokens.csv" "$dir/pki/sa.key"
  local sa_issuer="https://kubernetes.default.svc.cluster.local"

  # etcd. A port can be taken between picking and binding: retry a few times.
  local attempt etcd_pid="" etcd_port peer_port ok
  for attempt in 1 2 3; do
    etcd_port="$(free_port)"; peer_port="$(free_port)"
    rm -rf "$dir/etcd"; mkdir -m 700 "$dir/etcd"
    nohup "$K8S_BIN/etcd" \
      --name=vr-e2e --data-dir="$dir/etcd" \
      --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
      --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
      --initial-cluster="vr-e2e=http://127.0.0.1:$peer_port" --initial-cluster-state=new \
      --unsafe-no-fsync --log-level=warn \
      </dev/null >"$dir/etcd.log" 2>&1 &
    etcd_pid=$!
    echo "$etcd_pid" > "$dir/etcd.pid"
    ok=0
    for _ in $(seq 1 $((START_TIMEOUT * 5))); do
      if curl -fsS -m 2 "http://127.0.0.1:$etcd_port/health" 2>/dev/null | grep -q '"health":"true"'; then ok=1; break; fi
      alive "$etcd_pid" "$dir" || break
      sleep 0.2
    done
    [ $ok = 1 ] && break
    log_tail "$dir/etcd.log"
    stop_pid etcd "$etcd_pid" "$dir"
    grep -q 'address already in use' "$dir/etcd.log" || die "etcd did not become healthy"
    say "etcd port clash, retrying"
  done
  [ $ok = 1 ] || die "etcd did not start"
  say "etcd up on 127.0.0.1:$etcd_port (pid $etcd_pid)"

  # kube-apiserver.
  local api_pid="" api_port
  for attempt in 1 2 3; do
    api_port="$(free_port)"
    rm -rf "$dir/certs"; mkdir -p "$dir/certs"
    local api_args=(
      --etcd-servers="http://127.0.0.1:$etcd_port" \
      --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
      --cert-dir="$dir/certs" \
      --service-cluster-ip-range="$SERVICE_CIDR" \
      --authorization-mode=RBAC \
      --token-auth-file="$dir/pki/tokens.csv" \
      --service-account-issuer="$sa_issuer" \
      --service-account-key-file="$dir/pki/sa.pub" \
      --service-account-signing-key-file="$dir/pki/sa.key" \
      --disable-admission-plugins=ServiceAccount \
      --endpoint-reconciler-type=none \
      --allow-privileged=false --profiling=false
    )
    # Kept so `restart-apiserver` brings it back with the same port, certs and keys.
    printf '%s\n' "${api_args[@]}" > "$dir/kube-apiserver.args"
    nohup "$K8S_BIN/kube-apiserver" "${api_args[@]}" </dev/null >"$dir/kube-apiserver.log" 2>&1 &
    api_pid=$!
    echo "$api_pid" > "$dir/kube-apiserver.pid"
    ok=0
    local deadline=$((SECONDS + START_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
      if [ "$(curl -ks -m 3 -H "Authorization: Bearer $admin_token" "https://127.0.0.1:$api_port/readyz" 2>/dev/null)" = ok ]; then ok=1; break; fi
      alive "$api_pid" "$dir" || break
      sleep 0.5
    done
    [ $ok = 1 ] && break
    log_tail "$dir/kube-apiserver.log"
    stop_pid kube-apiserver "$api_pid" "$dir"
    grep -q 'address already in use' "$dir/kube-apiserver.log" || die "kube-apiserver not ready within ${START_TIMEOUT} s"
    say "kube-apiserver port clash, retrying"
  done
  [ $ok = 1 ] || die "kube-apiserver did not start"

  # The serving certificate the apiserver generated in --cert-dir ends with the
  # self-signed CA that issued it: clients trust that CA (no insecure-skip-tls-verify).
  CA_FILE="$dir/ca.crt"
  awk '/BEGIN CERTIFICATE/{buf=""} {buf=buf $0 "\n"} /END CERTIFICATE/{last=buf} END{printf "%s", last}' \
    "$dir/certs/apiserver.crt" > "$CA_FILE"
  APISERVER_URL="https://127.0.0.1:$api_port"
  curl -fsS -m 5 --cacert "$CA_FILE" -H "Authorization: Bearer $admin_token" "$APISERVER_URL/readyz" >/dev/null \
    || die "serving certificate does not verify against $CA_FILE"

  kubeconfig "$dir/kubeconfig" vr-admin "$admin_token"
  kubeconfig "$dir/kubeconfig-operator" "$operator_user" "$operator_token"
  kubeconfig "$dir/kubeconfig-dataplane" "$dataplane_user" "$dataplane_token"

  if [ -n "${K8S_CRDS:-}" ]; then
    "$K8S_BIN/kubectl" --kubeconfig "$dir/kubeconfig" apply --server-side --field-manager=vr-e2e -f "$K8S_CRDS" >&2 \
      || die "applying K8S_CRDS=$K8S_CRDS failed"
    "$K8S_BIN/kubectl" --kubeconfig "$dir/kubeconfig" wait --for=condition=Established --timeout="${START_TIMEOUT}s" crd --all >&2 \
      || die "CRDs from $K8S_CRDS not Established"
  fi

  # kube-controller-manager. Its own HTTPS port (healthz only) is on 127.0.0.1 with a
  # self-signed certificate in DIR/kcm-certs; nothing else reaches it.
  local kcm_pid="" kcm_port="" kcm_log="" kcm_kubeconfig="" kcm_controllers=""
  if [ "$WITH_KCM" = 1 ]; then
    kcm_controllers="$KCM_CONTROLLERS"
    kcm_log="$dir/kube-controller-manager.log"
    kcm_kubeconfig="$dir/kubeconfig-controller-manager"
    kubeconfig "$kcm_kubeconfig" "$KCM_USER" "$kcm_token"
    for attempt in 1 2 3; do
      kcm_port="$(free_port)"
      rm -rf "$dir/kcm-certs"; mkdir -p "$dir/kcm-certs"
      nohup "$K8S_BIN/kube-controller-manager" \
        --kubeconfig="$kcm_kubeconfig" \
        --controllers="$KCM_CONTROLLERS" \
        --leader-elect=false \
        --use-service-account-credentials=false \
        --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$dir/kcm-certs" \
        --profiling=false \
        </dev/null >"$kcm_log" 2>&1 &
      kcm_pid=$!
      echo "$kcm_pid" > "$dir/kube-controller-manager.pid"
      ok=0
      local deadline=$((SECONDS + START_TIMEOUT))
      while [ $SECONDS -lt $deadline ]; do
        if [ "$(curl -ks -m 3 "https://127.0.0.1:$kcm_port/healthz" 2>/dev/null)" = ok ]; then ok=1; break; fi
        alive "$kcm_pid" "$dir" || break
        sleep 0.5
      done
      [ $ok = 1 ] && break
      log_tail "$kcm_log"
      stop_pid kube-controller-manager "$kcm_pid" "$dir"
      grep -q 'address already in use' "$kcm_log" || die "kube-controller-manager exited or not healthy within ${START_TIMEOUT} s"
      say "kube-controller-manager port clash, retrying"
    done
    [ $ok = 1 ] || die "kube-controller-manager did not start"
    say "kube-controller-manager up (pid $kcm_pid, controllers $KCM_CONTROLLERS)"
  fi

  cat > "$dir/env.tmp" <<EOF
K8S_DIR=$dir
K8S_BIN=$K8S_BIN
K8S_APISERVER_URL=$APISERVER_URL
K8S_APISERVER_PORT=$api_port
K8S_APISERVER_PID=$api_pid
K8S_APISERVER_LOG=$dir/kube-apiserver.log
K8S_ETCD_URL=http://127.0.0.1:$etcd_port
K8S_ETCD_PORT=$etcd_port
K8S_ETCD_PEER_PORT=$peer_port
K8S_ETCD_PID=$etcd_pid
K8S_ETCD_LOG=$dir/etcd.log
K8S_CA_FILE=$CA_FILE
K8S_SERVICE_CIDR=$SERVICE_CIDR
K8S_SA_ISSUER=$sa_issuer
K8S_SA_SIGNING_KEY=$dir/pki/sa.key
K8S_SA_PUBLIC_KEY=$dir/pki/sa.pub
K8S_ADMIN_USER=vr-admin
K8S_ADMIN_TOKEN=$admin_token
K8S_ADMIN_KUBECONFIG=$dir/kubeconfig
K8S_OPERATOR_NAMESPACE=$OPERATOR_NS
K8S_OPERATOR_SERVICEACCOUNT=$OPERATOR_SA
K8S_OPERATOR_USER=$operator_user
K8S_OPERATOR_TOKEN=$operator_token
K8S_OPERATOR_KUBECONFIG=$dir/kubeconfig-operator
K8S_DATAPLANE_NAMESPACE=$DATAPLANE_NS
K8S_DATAPLANE_SERVICEACCOUNT=$DATAPLANE_SA
K8S_DATAPLANE_USER=$dataplane_user
K8S_DATAPLANE_TOKEN=$dataplane_token
K8S_DATAPLANE_KUBECONFIG=$dir/kubeconfig-dataplane
K8S_CONTROLLER_MANAGER=$WITH_KCM
K8S_CONTROLLER_MANAGER_PID=$kcm_pid
K8S_CONTROLLER_MANAGER_LOG=$kcm_log
K8S_CONTROLLER_MANAGER_PORT=$kcm_port
K8S_CONTROLLER_MANAGER_KUBECONFIG=$kcm_kubeconfig
K8S_CONTROLLER_MANAGER_CONTROLLERS=$kcm_controllers
KUBECONFIG=$dir/kubeconfig
EOF
  mv "$dir/env.tmp" "$dir/env"

  if [ -n "${K8S_WATCH_PID:-}" ]; then
    local self="$0" watched="$K8S_WATCH_PID"
    nohup bash -c 'while kill -0 "$1" 2>/dev/null && [ -f "$3/env" ]; do sleep 1; done; [ -f "$3/env" ] && exec "$2" stop "$3"' \
      watch "$watched" "$self" "$dir" </dev/null >>"$dir/watch.log" 2>&1 &
    echo $! > "$dir/watch.pid"
  fi

  trap - EXIT
  say "control plane ready: kube-apiserver at $APISERVER_URL (pid $api_pid); env in $dir/env"
}

cmd_stop() {
  local dir; [ -d "$1" ] || { say "no such dir $1: nothing to stop"; return 0; }
  dir="$(cd "$1" && pwd -P)"
  local kcm_pid="" api_pid="" etcd_pid=""
  [ -f "$dir/kube-controller-manager.pid" ] && kcm_pid="$(cat "$dir/kube-controller-manager.pid")"
  [ -f "$dir/kube-apiserver.pid" ] && api_pid="$(cat "$dir/kube-apiserver.pid")"
  [ -f "$dir/etcd.pid" ] && etcd_pid="$(cat "$dir/etcd.pid")"
  # Removing env first tells the watcher (if any) that the stop is handled.
  [ -f "$dir/env" ] && mv -f "$dir/env" "$dir/env.stopped"
  stop_pid kube-controller-manager "$kcm_pid" "$dir"
  stop_pid kube-apiserver "$api_pid" "$dir"
  stop_pid etcd "$etcd_pid" "$dir"
  if [ -f "$dir/watch.pid" ] && [ "$(cat "$dir/watch.pid")" != "$$" ] && [ "$PPID" != "$(cat "$dir/watch.pid")" ]; then
    kill "$(cat "$dir/watch.pid")" 2>/dev/null || true
  fi
  rm -f "$dir/watch.pid"
}

# restart-apiserver DIR SECONDS : stops kube-apiserver, keeps it down SECONDS, starts it again
# with the same arguments (same port, certs, keys, etcd) and waits for /readyz. For outage tests.
cmd_restart_apiserver() {
  local dir; dir="$(cd "$1" && pwd -P)"
  local down="$2"
  [ -f "$dir/kube-apiserver.args" ] && [ -f "$dir/env" ] || die "$dir: no running control plane"
  local api_pid; api_pid="$(cat "$dir/kube-apiserver.pid")"
  stop_pid kube-apiserver "$api_pid" "$dir"
  sleep "$down"
  local args=(); mapfile -t args < "$dir/kube-apiserver.args"
  nohup "$K8S_BIN/kube-apiserver" "${args[@]}" </dev/null >>"$dir/kube-apiserver.log" 2>&1 &
  api_pid=$!
  echo "$api_pid" > "$dir/kube-apiserver.pid"
  sed -i "s/^K8S_APISERVER_PID=.*/K8S_APISERVER_PID=$api_pid/" "$dir/env"
  local url token; url="$(sed -n 's/^K8S_APISERVER_URL=//p' "$dir/env")"; token="$(sed -n 's/^K8S_ADMIN_TOKEN=//p' "$dir/env")"
  local deadline=$((SECONDS + START_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    [ "$(curl -ks -m 3 -H "Authorization: Bearer $token" "$url/readyz" 2>/dev/null)" = ok ] && { say "kube-apiserver back (pid $api_pid)"; return 0; }
    alive "$api_pid" "$dir" || break
    sleep 0.5
  done
  log_tail "$dir/kube-apiserver.log"
  die "kube-apiserver did not come back"
}

cmd_env() {
  [ -f "$1/env" ] || die "$1/env missing: control plane not started (or stopped)"
  cat "$1/env"
}

if [ "${1:-}" = restart-apiserver ] && [ $# -eq 3 ]; then cmd_restart_apiserver "$2" "$3"; exit 0; fi
[ $# -eq 2 ] || usage
case "$1" in
  start) cmd_start "$2" ;;
  stop)  cmd_stop "$2" ;;
  env)   cmd_env "$2" ;;
  *) usage ;;
esac
