#!/usr/bin/env bash
# Regenerates the go.mod/go.sum files of e2e/cluster (maintainers only; install.sh never runs
# this): node/ from e2e/k8s/apiserver/go.mod (same k8s.io/kubernetes version and replaces, the
# node programs as tools), and containerd/, metrics-server/ for the versions in their go.mod.
#   e2e/cluster/regen.sh
set -euo pipefail
cd "$(dirname "$0")"
source ../../scripts/lib.sh
export GOMODCACHE="$VR_CACHE/go/mod" GOCACHE="$VR_CACHE/go/build" GOTOOLCHAIN=local
# sum.golang.org may be unreachable here; the resulting go.sum is then the trust root.
export GOSUMDB="${GOSUMDB:-off}" GOFLAGS="-mod=mod -buildvcs=false"
sed -e 's#^// Generated.*#// Builds kubelet, kube-scheduler and kube-proxy from k8s.io/kubernetes (same version and replaces as e2e/k8s/apiserver/go.mod, so they share its Go build cache). Derived from e2e/k8s/apiserver/go.mod by e2e/cluster/regen.sh.#' \
  -e 's#^module .*#module videoresizer.invalid/e2e/cluster/node#' \
  -e 's#k8s.io/kubernetes/cmd/kube-apiserver#k8s.io/kubernetes/cmd/kubelet#' \
  -e 's#k8s.io/kubernetes/cmd/kube-controller-manager#k8s.io/kubernetes/cmd/kube-scheduler\n\tk8s.io/kubernetes/cmd/kube-proxy#' \
  ../k8s/apiserver/go.mod > node/go.mod
cp ../k8s/apiserver/go.sum node/go.sum
for m in node containerd metrics-server; do (cd "$m" && go mod tidy); done
echo "e2e/cluster go.mod files regenerated"
