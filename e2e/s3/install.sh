#!/usr/bin/env bash
# Installs the real S3-compatible server the `s3` e2e suite runs against: s3s-fs
# (crates.io, checks SigV4 signatures, presigned URLs, conditional PUT) into the per-user
# cache ($VR_CACHE/s3s/VERSION, outside the repository, so a fresh clone reuses it), linked
# from $REPO/.cache/s3s/bin (git-ignored). Idempotent: built only when that version is
# missing. Safe to run concurrently (flock).
# Usage: e2e/s3/install.sh      prints one "bin: PATH" line at the end
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
source "$REPO/scripts/lib.sh"
ensure_rust

S3S_FS_VERSION=0.14.1   # 0.17 needs a newer rustc than the project's floor

ROOT_DIR="$VR_CACHE/s3s/$S3S_FS_VERSION"
mkdir -p "$ROOT_DIR"
exec 9>"$ROOT_DIR/.install.lock"
flock 9

STAMP="$ROOT_DIR/bin/s3s-fs.stamp"
if [ -x "$ROOT_DIR/bin/s3s-fs" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$S3S_FS_VERSION" ]; then
  log "s3s-fs $S3S_FS_VERSION already installed"
else
  log "building s3s-fs $S3S_FS_VERSION (cargo install, a few minutes)"
  # --locked: the crate's own Cargo.lock pins its dependency tree.
  CARGO_TARGET_DIR="$ROOT_DIR/build" cargo install --locked --quiet \
    --root "$ROOT_DIR" s3s-fs --version "$S3S_FS_VERSION" --features binary
  echo "$S3S_FS_VERSION" > "$STAMP"
  rm -rf "$ROOT_DIR/build"
fi
link_cached "$ROOT_DIR/bin/s3s-fs" "$REPO/.cache/s3s/bin/s3s-fs"
echo "bin: $REPO/.cache/s3s/bin/s3s-fs"
