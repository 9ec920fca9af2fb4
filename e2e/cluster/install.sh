#!/usr/bin/env bash
# Installs what the single-node cluster (e2e/cluster/node.sh, suite `e2e/run cluster`) needs
# beyond the control plane of e2e/k8s/install.sh, building each program from pinned sources
# into the per-user cache ($VR_CACHE/cluster/store/NAME/HASH/, outside the repository, keyed by
# version and inputs, so a fresh clone reuses them) and linking them into
# $REPO/.cache/cluster/bin (git-ignored):
#   containerd, containerd-shim-runc-v2, ctr   Go module github.com/containerd/containerd/v2
#                                              (version: e2e/cluster/containerd/go.mod)
#   metrics-server                             Go module sigs.k8s.io/metrics-server
#   pause                                      e2e/cluster/pause/main.go (the sandbox image)
#   kubelet, kube-scheduler, kube-proxy        Go module k8s.io/kubernetes, same version as
#                                              kube-apiserver (e2e/cluster/node/go.mod); built
#                                              after e2e/k8s/install.sh, on its Go build cache
#   runc, CNI plugins, iptables, conntrack     Debian packages (apt)
# Debian bookworm's containerd is 1.6; Kubernetes 1.35 is the last release that accepts 1.x,
# so containerd 2.x is built. Idempotent and safe to run concurrently (flock).
# Usage: e2e/cluster/install.sh     prints what it did, and one "bin: DIR" line at the end
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
source "$REPO/scripts/lib.sh"

CACHE="$VR_CACHE/cluster"
STORE="$CACHE/store"
BIN="$REPO/.cache/cluster/bin"
mkdir -p "$BIN" "$STORE" "$CACHE/tmp"

export GOMODCACHE="$VR_CACHE/go/mod"
export GOCACHE="$VR_CACHE/go/build"
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
export CGO_ENABLED=0

apt_install runc containernetworking-plugins iptables conntrack iproute2 util-linux openssl curl
command -v go >/dev/null || { echo "go is not installed (need Go >= 1.26 for containerd 2.4)" >&2; exit 1; }

exec 9>"$CACHE/.install.lock"
flock 9

gomod_version() { # gomod_version FILE MODULE
  awk -v m="$2" '($1 == m && $2 ~ /^v/) {print $2; exit} ($1 == "require" && $2 == m) {print $3; exit}' "$1"
}
now() { date +%s; }

# build_tools DIR LDFLAGS NAME=PKG... : builds each PKG of the module in DIR as NAME, unless
# the store already holds a build with the same stamp (names, version, Go, inputs).
build_tools() {
  local dir="$1" ldflags="$2"; shift 2
  local stamp d t0 name pkg ok=1
  stamp="$* $(go env GOVERSION) $ldflags $(find "$dir" -maxdepth 1 -type f \( -name 'go.*' -o -name '*.go' \) | sort | xargs cat | sha256sum | cut -c1-16)"
  d="$STORE/$(basename "$dir")/$(printf '%s' "$stamp" | sha256sum | cut -c1-16)"
  for spec in "$@"; do [ -x "$d/${spec%%=*}" ] || ok=0; done
  if [ "$ok" = 1 ] && [ "$(cat "$d/stamp" 2>/dev/null)" = "$stamp" ]; then
    log "$(basename "$dir"): already built"
  else
    log "$(basename "$dir"): building $*"
    t0=$(now)
    rm -rf "$d.tmp" && mkdir -p "$d.tmp"
    for spec in "$@"; do
      name="${spec%%=*}" pkg="${spec#*=}"
      (cd "$dir" && nice -n 10 go build -p 2 -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ldflags" -o "$d.tmp/$name" "$pkg")
    done
    echo "$stamp" > "$d.tmp/stamp"
    rm -rf "$d" && mv "$d.tmp" "$d"
    log "$(basename "$dir"): built in $(( $(now) - t0 )) s"
  fi
  for spec in "$@"; do link_cached "$d/${spec%%=*}" "$BIN/${spec%%=*}"; done
}

CTRD_VERSION="$(gomod_version "$HERE/containerd/go.mod" github.com/containerd/containerd/v2)"
build_tools "$HERE/containerd" "-s -w -X github.com/containerd/containerd/v2/version.Version=$CTRD_VERSION" \
  containerd=github.com/containerd/containerd/v2/cmd/containerd \
  containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  ctr=github.com/containerd/containerd/v2/cmd/ctr
build_tools "$HERE/pause" "-s -w" pause=.
build_tools "$HERE/metrics-server" "-s -w" \
  metrics-server=sigs.k8s.io/metrics-server/cmd/metrics-server

# The node programs reuse kube-apiserver's Go build cache: build them after it.
"$REPO/e2e/k8s/install.sh" >&2
KUBE_VERSION="$(gomod_version "$HERE/node/go.mod" k8s.io/kubernetes)"
[ "$KUBE_VERSION" = "$(gomod_version "$REPO/e2e/k8s/apiserver/go.mod" k8s.io/kubernetes)" ] \
  || { echo "e2e/cluster/node/go.mod ($KUBE_VERSION) and e2e/k8s/apiserver/go.mod differ: run e2e/cluster/regen.sh" >&2; exit 1; }
kube_minor="${KUBE_VERSION#v1.}"; kube_minor="${kube_minor%%.*}"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags="$kube_ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
done
build_tools "$HERE/node" "$kube_ldflags" \
  kubelet=k8s.io/kubernetes/cmd/kubelet kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kube-proxy=k8s.io/kubernetes/cmd/kube-proxy

"$BIN/containerd" --version >&2
"$BIN/kubelet" --version >&2
echo "bin: $BIN"
