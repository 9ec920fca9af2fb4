#!/usr/bin/env bash
# A real single-node Kubernetes cluster inside a private network namespace: etcd,
# kube-apiserver, kube-controller-manager (all controllers), kube-scheduler, containerd 2.x +
# runc + the CNI bridge, kubelet, kube-proxy (iptables) and metrics-server as a pod.
#
#   e2e/cluster/node.sh up DIR [IMAGE.tar...]  starts it (DIR: a new, empty per-run folder);
#                                              imports the images; prints "NODE_READY <s>"
#   e2e/cluster/node.sh in DIR CMD [ARGS...]   runs CMD inside the namespace (KUBECONFIG set)
#   e2e/cluster/node.sh down DIR               stops everything by pid and removes what it made
#
# Network rule: everything (the test commands too) runs inside one namespace made by
# `unshare --net` and held by a `sleep` whose pid is DIR/holder.pid. It has no route out: the
# node address 10.200.0.1 is on its `lo`, pods are on the bridge cni0 (10.244.0.0/24),
# Services on 10.96.0.0/16. No host interface, route or iptables rule is touched (the suite
# checks them before and after). Not isolable by any namespace: the kubelet sets the sysctls
# vm.overcommit_memory, kernel.panic and kernel.panic_on_oops machine-wide (to the values it
# wants; harmless on a test machine). Programs come from e2e/k8s/install.sh and
# e2e/cluster/install.sh (run them first: nothing can be downloaded inside the namespace).
# Settings this machine kind needs (cgroup v1, no CAP_SYS_RESOURCE) are commented where set.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
K8S_BIN="$REPO/.cache/k8s/bin"
BIN="$REPO/.cache/cluster/bin"
NODE=vr-node
IP=10.200.0.1
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/24
SHIM_DIR=/run/containerd/s   # fixed in containerd-shim-runc-v2: removed at teardown

usage() { sed -n '2,9p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd="$1" D="$(realpath -m "$2")"; shift 2
P="$D/pki"

# The host's network namespace, as `up` found it (/proc/1 may not be readable here).
host_netns() { [ "$(readlink /proc/self/ns/net)" = "$(cat "$D/host.netns")" ]; }
holder() { cat "$D/holder.pid"; }
inside() { nsenter --net="/proc/$(holder)/ns/net" "$@"; }
now_ms() { date +%s%3N; }
own_netns() { # the holder has left the host's network namespace
  local ns; ns="$(readlink "/proc/$(holder)/ns/net")" && [ "$ns" != "$(readlink /proc/self/ns/net)" ]
}

# start NAME CMD... : a program of the node, in the background, its pid in DIR/NAME.pid.
start() {
  local n="$1"; shift
  host_netns && { echo "refusing to start $n in the host's network namespace" >&2; exit 1; }
  nohup "$@" </dev/null >"$D/log/$n.log" 2>&1 &
  echo $! > "$D/$n.pid"
}
# wait_for WHAT SECONDS CMD... : polls CMD until it succeeds.
wait_for() {
  local what="$1" secs="$2" i; shift 2
  for ((i = 0; i < secs * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "$what: not ready after ${secs}s (logs in $D/log)" >&2
  return 1
}
kubeconfig() { # kubeconfig FILE USER TOKEN
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: vr, cluster: {server: "https://$IP:6443", certificate-authority: "$P/ca.crt"}}]
users: [{name: "$2", user: {token: "$3"}}]
contexts: [{name: vr, context: {cluster: vr, user: "$2"}}]
current-context: vr
EOF
}
cert() { # cert NAME CN ORG CA [SAN]
  openssl req -new -newkey rsa:2048 -nodes -keyout "$P/$1.key" -subj "/CN=$2${3:+/O=$3}" -out "$P/$1.csr" 2>/dev/null
  { echo "basicConstraints=CA:FALSE"; [ -z "${5:-}" ] || echo "subjectAltName=$5"; } > "$P/$1.ext"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/$4.crt" -CAkey "$P/$4.key" -CAcreateserial -days 2 \
    -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
}

pki() {
  mkdir -p "$P"
  for ca in ca front-proxy-ca; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/$ca.key" -subj "/CN=vr-$ca" -days 2 -out "$P/$ca.crt" 2>/dev/null
  done
  cert apiserver kube-apiserver "" ca "IP:$IP,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ca
  cert kubelet-serving "system:node:$NODE" system:nodes ca "IP:$IP,DNS:$NODE"
  cert front-proxy-client front-proxy-client "" front-proxy-ca
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$P/sa.key" 2>/dev/null
  openssl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
  local admin kcm sched proxy kubelet
  admin=$(openssl rand -hex 16) kcm=$(openssl rand -hex 16) sched=$(openssl rand -hex 16)
  proxy=$(openssl rand -hex 16) kubelet=$(openssl rand -hex 16)
  cat > "$P/tokens.csv" <<EOF
$admin,admin,admin,"system:masters"
$kcm,system:kube-controller-manager,system:kube-controller-manager
$sched,system:kube-scheduler,system:kube-scheduler
$proxy,system:kube-proxy,system:kube-proxy
$kubelet,system:node:$NODE,system:node:$NODE,"system:nodes"
EOF
  kubeconfig "$D/admin.kubeconfig" admin "$admin"
  kubeconfig "$D/kcm.kubeconfig" system:kube-controller-manager "$kcm"
  kubeconfig "$D/scheduler.kubeconfig" system:kube-scheduler "$sched"
  kubeconfig "$D/proxy.kubeconfig" system:kube-proxy "$proxy"
  kubeconfig "$D/kubelet.kubeconfig" "system:node:$NODE" "$kubelet"
}

network() { # inside the namespace only
  ip link set lo up
  ip addr add "$IP/32" dev lo
  sysctl -qw net.ipv4.ip_forward=1                      # per namespace
  modprobe br_netfilter 2>/dev/null || true
  [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || sysctl -qw net.bridge.bridge-nf-call-iptables=1
  # No default route here: without this route a connection from the node's own namespace to
  # a ClusterIP fails (ENETUNREACH) before kube-proxy's DNAT applies. Pods route via cni0.
  ip route replace "$SERVICE_CIDR" dev lo src "$IP"
  mkdir -p "$D/cni"
  cat > "$D/cni/10-vr.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "vr", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$D/cni-ipam",
            "ranges": [[{"subnet": "$POD_CIDR", "gateway": "10.244.0.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
}

runtime() { # containerd, then the images
  mkdir -p "$D/containerd"
  cat > "$D/containerd/config.toml" <<EOF
version = 3
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd/containerd.sock"
[ttrpc]
  address = "$D/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "localhost/vr/pause:1"
[plugins."io.containerd.cri.v1.runtime"]
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj (the sandbox's -998) makes runc
  # fail ("can't get final child's PID from pipe: EOF"); clamp to containerd's own score.
  restrict_oom_score_adj = true
  # Pod namespaces under the state dir, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$D/containerd/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$D/cni"
EOF
  PATH="$BIN:$PATH" start containerd "$BIN/containerd" --config "$D/containerd/config.toml"
  wait_for containerd 30 test -S "$D/containerd/containerd.sock"
  local img
  for img in "$@"; do
    "$BIN/ctr" --address "$D/containerd/containerd.sock" -n k8s.io images import "$img" >"$D/log/import.log" 2>&1 \
      || { cat "$D/log/import.log" >&2; echo "import of $img failed" >&2; exit 1; }
  done
}

control_plane() {
  start etcd "$K8S_BIN/etcd" --name=vr --data-dir="$D/etcd" --unsafe-no-fsync --log-level=warn \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=vr=http://127.0.0.1:2380
  # Pod Security "restricted" enforced by the API server for every namespace (the admission
  # configuration below), kube-system exempt (metrics-server is not the product).
  cat > "$D/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: restricted, enforce-version: latest, audit: restricted, warn: restricted}
    exemptions: {namespaces: [kube-system]}
EOF
  start kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address="$IP" --advertise-address="$IP" --secure-port=6443 \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction,PodSecurity --admission-control-config-file="$D/admission.yaml" \
    --token-auth-file="$P/tokens.csv" --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$P/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-extra-headers-prefix=X-Remote-Extra- --requestheader-group-headers=X-Remote-Group \
    --requestheader-username-headers=X-Remote-User \
    --proxy-client-cert-file="$P/front-proxy-client.crt" --proxy-client-key-file="$P/front-proxy-client.key" \
    --enable-aggregator-routing=true --allow-privileged=false --profiling=false
  wait_for kube-apiserver 120 "$K8S_BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" get --raw /readyz
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" --kubeconfig="$D/kcm.kubeconfig" \
    --authentication-kubeconfig="$D/kcm.kubeconfig" --authorization-kubeconfig="$D/kcm.kubeconfig" \
    --controllers='*' --leader-elect=false --use-service-account-credentials=true --root-ca-file="$P/ca.crt" \
    --service-account-private-key-file="$P/sa.key" --cluster-signing-cert-file="$P/ca.crt" \
    --cluster-signing-key-file="$P/ca.key" --bind-address=127.0.0.1 --secure-port=10257 --cert-dir="$D/kcm-certs" \
    --horizontal-pod-autoscaler-sync-period=5s --horizontal-pod-autoscaler-downscale-stabilization=30s
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$D/scheduler.kubeconfig" \
    --authentication-kubeconfig="$D/scheduler.kubeconfig" --authorization-kubeconfig="$D/scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=10259 --cert-dir="$D/sched-certs"
}

node() {
  mkdir -p "$D/kubelet" "$D/pod-logs"
  echo "nameserver 127.0.0.1" > "$D/resolv.conf"   # no cluster DNS: pods use the Service env vars
  cat > "$D/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this machine kind: allowed explicitly since Kubernetes 1.35.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
address: $IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
resolvConf: $D/resolv.conf
podLogsDir: $D/pod-logs
# Loose thresholds (a shared test machine's disk) and no image GC: the imported images have no
# registry to come back from.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
syncFrequency: 10s
EOF
  start kubelet "$BIN/kubelet" --config="$D/kubelet.yaml" --kubeconfig="$D/kubelet.kubeconfig" \
    --root-dir="$D/kubelet" --hostname-override="$NODE" --node-ip="$IP" --v=1
  cat > "$D/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $D/proxy.kubeconfig}
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: $NODE
bindAddress: $IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# The conntrack table size is read-only outside the host namespace: leave it alone.
conntrack: {maxPerCore: 0}
nodePortAddresses: ["$IP/32"]
EOF
  start kube-proxy "$BIN/kube-proxy" --config="$D/kube-proxy.yaml" --v=1
}

metrics_server() {
  sed "s#@IMAGE@#localhost/vr/metrics-server:1#" "$HERE/metrics-server.yaml" \
    | "$K8S_BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" apply -f - >"$D/log/metrics-server-apply.log"
}

case "$cmd" in
  up)
    [ ! -e "$D/holder.pid" ] || { echo "$D is in use: node.sh down $D first" >&2; exit 1; }
    mkdir -p "$D/log"
    readlink /proc/self/ns/net > "$D/host.netns"
    t0=$(now_ms)
    nohup unshare --net -- sleep infinity >/dev/null 2>&1 &   # no --fork: $! is the holder
    echo $! > "$D/holder.pid"
    wait_for "network namespace" 10 own_netns
    inside "$0" _up "$D" "$@"
    echo "NODE_READY $(( ($(now_ms) - t0) / 1000 )) s (start to node Ready, images imported, metrics-server applied)"
    ;;
  _up)
    host_netns && { echo "refusing: in the host's network namespace" >&2; exit 1; }
    pki
    network
    runtime "$@"
    control_plane
    node
    wait_for "node Ready" 120 "$K8S_BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" wait --for=condition=Ready "node/$NODE" --timeout=2s
    metrics_server
    ;;
  in)
    [ -f "$D/holder.pid" ] || { echo "no cluster in $D" >&2; exit 1; }
    exec nsenter --net="/proc/$(holder)/ns/net" env KUBECONFIG="$D/admin.kubeconfig" PATH="$K8S_BIN:$BIN:$PATH" "$@"
    ;;
  down)
    [ -f "$D/holder.pid" ] || exit 0
    ns="$(readlink "/proc/$(holder)/ns/net" 2>/dev/null || true)"
    stop() { # stop NAME : by pid, SIGTERM then SIGKILL after 10 s
      [ -f "$D/$1.pid" ] || return 0
      local p; p=$(cat "$D/$1.pid")
      if kill "$p" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$p" 2>/dev/null || true
      fi
      rm -f "$D/$1.pid"
    }
    stop kubelet
    stop kube-proxy
    # Pods: stop each sandbox's shim through containerd, then containerd.
    if [ -S "$D/containerd/containerd.sock" ]; then
      ctr=("$BIN/ctr" --address "$D/containerd/containerd.sock" -n k8s.io)
      for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
      sleep 1
      for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true; done
    fi
    stop containerd
    for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$n"; done
    # Shims left (their parent was containerd): found by their -address argument, by pid.
    for p in /proc/[0-9]*; do
      tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q "containerd-shim-runc-v2 .*$D/containerd" && kill -9 "${p#/proc/}" 2>/dev/null || true
    done
    # Mounts under DIR (pod volumes, overlay snapshots, netns bind mounts), deepest first.
    awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    # Pod cgroups (cgroup v1, cgroupfs driver).
    for h in /sys/fs/cgroup/*/; do
      [ -d "$h/kubepods" ] && find "$h/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$h/kubepods" ] && rmdir "$h/kubepods" 2>/dev/null || true
    done
    if [ -n "$ns" ]; then
      for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$(holder)" ] && continue
        [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$ns" ] && echo "still in the namespace: ${p#/proc/} $(tr '\0' ' ' 2>/dev/null < "$p/cmdline")" >&2
      done
    fi
    kill "$(holder)" 2>/dev/null || true
    rm -f "$D/holder.pid"
    rmdir "$SHIM_DIR" /run/containerd 2>/dev/null || true
    ;;
  *) usage ;;
esac
