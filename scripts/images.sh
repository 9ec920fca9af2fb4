#!/usr/bin/env bash
# Builds the data-plane, operator and CLI container images without a container engine, as OCI
# archives that containerd (`ctr images import`), Docker (`docker load`) and Podman
# (`podman load`) all read: each tar holds an OCI image layout (index.json, blobs/) and Docker's
# manifest.json beside it, both naming the same blobs.
#
#   scripts/images.sh [--no-cache] [--out DIR] [--tag TAG]
#   scripts/images.sh --binary NAME BIN   one image NAME of a static BIN on the distroless base
#                                         (the cluster harness's pause and metrics-server)
#
# Each image is two layers:
#   1. a root file system made from Debian bookworm packages (the recipes below: the same
#      packages, user, entry point and ports as docker/*.Dockerfile, which e2e/tests/images.rs
#      checks);
#   2. the release binary (`cargo build --release`, debug info stripped) in /usr/local/bin.
# Reproducible: files, tar headers and gzip streams carry no build time or host detail
# (SOURCE_DATE_EPOCH below), so the same binaries and Debian packages give the same digests.
# Image names come from the chart's values.yaml (`*.image.repository`): the one place they are
# set. Everything built is cached outside the clone in $VR_CACHE/images, keyed by a hash of its
# inputs (this script, the Debian package versions, the binary); the archives are linked into
# $REPO/.cache/images (or copied to --out). Prints one "IMAGE name file size digest" line each.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/scripts/lib.sh"

# ---- recipes (e2e/tests/images.rs compares these with docker/*.Dockerfile) --------------
SUITE=bookworm
# The data plane: debian:bookworm-slim (= Debian's minbase variant) + ffmpeg + ca-certificates + util-linux (prlimit, setpriv).
DATAPLANE_BASE=minbase
DATAPLANE_PACKAGES="ffmpeg ca-certificates util-linux"
DATAPLANE_PORTS="8080 9090"
# Operator and CLI, distroless-style (like gcr.io/distroless/cc-debian12): only these packages'
# files (no shell, no package manager, no dependency resolution), the CA bundle, a passwd file.
DISTROLESS_PACKAGES="libc6 libgcc-s1 gcc-12-base ca-certificates tzdata netbase"
OPERATOR_PORTS="8081"
CLI_PORTS=""
IMAGE_USER="65532:65532"
# ------------------------------------------------------------------------------------------
SOURCE_DATE_EPOCH=1700000000   # fixed: no build time in any file, tar header or config
export SOURCE_DATE_EPOCH

no_cache=0 out="" tag="" binary=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-cache) no_cache=1 ;;
    --out) out="$2"; shift ;;
    --tag) tag="$2"; shift ;;
    --binary) binary=("$2" "$3"); shift 2 ;;
    *) echo "usage: scripts/images.sh [--no-cache] [--out DIR] [--tag TAG]" >&2; exit 2 ;;
  esac
  shift
done

VALUES="$REPO/charts/video-resizer/values.yaml"
# values_repository SECTION : the image repository the chart's values.yaml gives SECTION.
values_repository() {
  awk -v s="$1:" '$1 == s {in_s = 1; next} /^[a-z]/ {in_s = 0} in_s && $1 == "repository:" {print $2; exit}' "$VALUES"
}
app_version="$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$REPO/charts/video-resizer/Chart.yaml")"
tag="${tag:-$app_version}"
registry="$(awk '$1 == "imageRegistry:" {gsub(/"/, "", $2); print $2; exit}' "$VALUES")"
DATAPLANE_NAME="${registry:+$registry/}$(values_repository dataplane):$tag"
OPERATOR_NAME="${registry:+$registry/}$(values_repository operator):$tag"
CLI_NAME="${registry:+$registry/}$(values_repository cli):$tag"

apt_install mmdebstrap binutils
CACHE="$VR_CACHE/images"
mkdir -p "$CACHE/rootfs" "$CACHE/oci" "$CACHE/tmp"
exec 9>"$CACHE/.lock"
flock 9

recipe_hash="$(sed -n '/^# ---- recipes/,/^# -----------/p;/^rootfs_/,/^}/p' "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
# Debian's versions of the named packages (the host's apt lists): part of each cache key.
apt_versions() { apt-cache policy "$@" | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p $2}' | tr '\n' ' '; }
apt_updated_once=0
ensure_apt_lists() {
  [ "$apt_updated_once" = 1 ] && return 0
  [ -n "$(apt-cache policy ffmpeg | awk '/Candidate:/ && $2 != "(none)"')" ] || as_root apt-get update -qq
  apt_updated_once=1
}

# normalise DIR : fixed mtimes, no docs/man pages/caches left by the package tools.
normalise() {
  rm -rf "$1"/dev/* "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/var/cache/apt/* \
    "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/var/cache/ldconfig/aux-cache
  find "$1" -depth -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
}
# det_tar DIR OUT : a tar of DIR with sorted entries, fixed times, numeric owners.
det_tar() {
  tar --create --file="$2" --directory="$1" --sort=name --format=posix --numeric-owner \
    --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
}

# rootfs_dataplane DIR : debian:bookworm-slim + the data plane's packages, user 65532.
rootfs_dataplane() {
  mmdebstrap --quiet --variant="$DATAPLANE_BASE" --include="${DATAPLANE_PACKAGES// /,}" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" groupadd --gid 65532 nonroot' \
    --customize-hook='chroot "$1" useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home --shell /usr/sbin/nologin nonroot' \
    --customize-hook='rm -f "$1"/etc/hostname "$1"/etc/resolv.conf "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id' \
    "$SUITE" "$1" >&2
}

# rootfs_distroless DIR : the files of $DISTROLESS_PACKAGES only, as distroless images do.
rootfs_distroless() {
  local debs; debs="$(mktemp -d "$CACHE/tmp/debs.XXXXXX")"
  (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root $DISTROLESS_PACKAGES >&2)
  for d in "$debs"/*.deb; do dpkg-deb --extract "$d" "$1"; done
  rm -rf "$debs"
  mkdir -p "$1/etc/ssl/certs" "$1/tmp" "$1/home/nonroot" "$1/root" "$1/work"
  chmod 1777 "$1/tmp"; chmod 700 "$1/root"
  # ca-certificates' postinst would build the bundle from the same certificates, in this order.
  find "$1/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat > "$1/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$1/etc/group"
  chown 65532:65532 "$1/home/nonroot"
}

# base_layer KIND : prints the path of the cached gzip layer of the root file system KIND.
base_layer() {
  local kind="$1" key dir tmp
  ensure_apt_lists
  case "$kind" in
    dataplane) key="$recipe_hash $SUITE $DATAPLANE_BASE $(apt_versions $DATAPLANE_PACKAGES)" ;;
    distroless) key="$recipe_hash $SUITE $(apt_versions $DISTROLESS_PACKAGES)" ;;
  esac
  dir="$CACHE/rootfs/$kind-$(printf '%s' "$key" | sha256sum | cut -c1-16)"
  if [ "$no_cache" = 1 ] || [ ! -s "$dir/layer.tar.gz" ]; then
    log "root file system $kind: building ($key)"
    local t0; t0=$(date +%s)
    tmp="$(mktemp -d "$CACHE/tmp/$kind.XXXXXX")"
    "rootfs_$kind" "$tmp/root"
    normalise "$tmp/root"
    det_tar "$tmp/root" "$tmp/layer.tar"
    gzip -n -6 "$tmp/layer.tar"
    rm -rf "$tmp/root" "$dir"
    printf '%s\n' "$key" > "$tmp/key"
    mv "$tmp" "$dir"
    log "root file system $kind: built in $(( $(date +%s) - t0 )) s"
  fi
  printf '%s' "$dir/layer.tar.gz"
}

# bin_layer BIN OUT : a layer with the stripped BIN as /usr/local/bin/NAME.
bin_layer() {
  local tmp; tmp="$(mktemp -d "$CACHE/tmp/bin.XXXXXX")"
  mkdir -p "$tmp/root/usr/local/bin"
  objcopy --strip-debug "$1" "$tmp/root/usr/local/bin/$(basename "$1")"
  chmod 0755 "$tmp/root/usr/local/bin/$(basename "$1")"
  normalise "$tmp/root"
  det_tar "$tmp/root" "$tmp/layer.tar"
  gzip -n -6 -c "$tmp/layer.tar" > "$2"
  rm -rf "$tmp"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
json_array() { # json_array WORD... : ["WORD", ...]
  local first=1; printf '['
  for w in "$@"; do [ $first = 1 ] || printf ','; first=0; printf '"%s"' "$w"; done
  printf ']'
}

# image NAME KIND BIN PORTS WORKDIR : builds (or reuses) the archive of image NAME.
image() {
  local name="$1" kind="$2" bin="$3" ports="$4" workdir="$5"
  local base key dir tmp
  [ -x "$bin" ] || { echo "$bin is missing: run cargo build --release first" >&2; exit 1; }
  base="$(base_layer "$kind")"
  key="$(printf '%s %s %s %s %s %s' "$name" "$(basename "$(dirname "$base")")" "$(sha "$bin")" "$ports" "$workdir" "$recipe_hash" | sha256sum | cut -c1-16)"
  dir="$CACHE/oci/$(basename "$bin")-$key"
  if [ "$no_cache" = 1 ] || [ ! -s "$dir/image.tar" ]; then
    tmp="$(mktemp -d "$CACHE/tmp/oci.XXXXXX")"
    mkdir -p "$tmp/layout/blobs/sha256"
    local l1 l2 d1 d2 cfg cfg_digest man man_digest exposed="{" p first=1
    bin_layer "$bin" "$tmp/bin.tar.gz"
    l1="$(sha "$base")"; l2="$(sha "$tmp/bin.tar.gz")"
    d1="$(gzip -dc "$base" | sha256sum | cut -d' ' -f1)"; d2="$(gzip -dc "$tmp/bin.tar.gz" | sha256sum | cut -d' ' -f1)"
    cp "$base" "$tmp/layout/blobs/sha256/$l1"; mv "$tmp/bin.tar.gz" "$tmp/layout/blobs/sha256/$l2"
    for p in $ports; do [ $first = 1 ] || exposed+=","; first=0; exposed+="\"$p/tcp\":{}"; done
    exposed+="}"
    cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)\",\"config\":{\"User\":\"$IMAGE_USER\",\"ExposedPorts\":$exposed,\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Entrypoint\":$(json_array "/usr/local/bin/$(basename "$bin")"),\"WorkingDir\":\"$workdir\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$d1\",\"sha256:$d2\"]}}"
    printf '%s' "$cfg" > "$tmp/cfg.json"; cfg_digest="$(sha "$tmp/cfg.json")"
    mv "$tmp/cfg.json" "$tmp/layout/blobs/sha256/$cfg_digest"
    man="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cfg_digest\",\"size\":${#cfg}},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$l1\",\"size\":$(stat -c %s "$base")},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$l2\",\"size\":$(stat -c %s "$tmp/layout/blobs/sha256/$l2")}]}"
    printf '%s' "$man" > "$tmp/man.json"; man_digest="$(sha "$tmp/man.json")"
    mv "$tmp/man.json" "$tmp/layout/blobs/sha256/$man_digest"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
      "$man_digest" "${#man}" "$(qualified "$name")" "${name##*:}" > "$tmp/layout/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' > "$tmp/layout/oci-layout"
    printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s","blobs/sha256/%s"]}]' \
      "$cfg_digest" "$name" "$l1" "$l2" > "$tmp/layout/manifest.json"
    find "$tmp/layout" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
    (cd "$tmp/layout" && tar --create --file="$tmp/image.tar" --sort=name --format=posix --numeric-owner \
      --owner=0 --group=0 --mtime="@$SOURCE_DATE_EPOCH" --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      oci-layout index.json manifest.json blobs)
    printf 'sha256:%s\n' "$man_digest" > "$tmp/digest"
    rm -rf "$tmp/layout" "$dir"
    mv "$tmp" "$dir"
  fi
  local file="${name##*/}"; file="${file/:/_}.tar"
  if [ -n "$out" ]; then mkdir -p "$out"; cp "$dir/image.tar" "$out/$file"; else link_cached "$dir/image.tar" "$REPO/.cache/images/$file"; fi
  echo "IMAGE $name ${out:-$REPO/.cache/images}/$file $(stat -L -c %s "$dir/image.tar") $(cat "$dir/digest")"
}

# qualified NAME : NAME as containerd and the kubelet spell it (docker.io/ for short names).
qualified() {
  case "${1%%/*}" in
    *.*|*:*|localhost) printf '%s' "$1" ;;
    *) printf 'docker.io/%s' "$1" ;;
  esac
}

if [ ${#binary[@]} -gt 0 ]; then
  image "${binary[0]}" distroless "${binary[1]}" "" /
  exit 0
fi
T="${CARGO_TARGET_DIR:-$REPO/target}/release"
image "$DATAPLANE_NAME" dataplane "$T/vr-dataplane" "$DATAPLANE_PORTS" /
image "$OPERATOR_NAME" distroless "$T/vr-operator" "$OPERATOR_PORTS" /
image "$CLI_NAME" distroless "$T/vrctl" "$CLI_PORTS" /work
