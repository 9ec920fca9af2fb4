#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, clippy, unit and in-process
# tests (cargo test), then the real-component suites (e2e/run).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

apt_install ffmpeg ca-certificates
ensure_rust
# Cargo's build cache lives with the other per-user caches, so a fresh clone (CI) only
# rebuilds the workspace's own crates, not every dependency.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$VR_CACHE/target}"

log "cargo fmt --check"
cargo fmt --all -- --check
log "operator core: pure (compiles without kube's client feature, no HTTP client, no runtime)"
# Checking the core crate on its own resolves only its own features: kube without `client`.
cargo check -q -p vr-operator-core
core_tree="$(cargo tree -q -p vr-operator-core -e normal --prefix none --format '{p}')"
if grep -E '^(kube-client|kube-runtime|hyper|reqwest|tokio|tower) ' <<<"$core_tree"; then
  echo "vr-operator-core must not depend on a client or a runtime (the lines above)" >&2
  exit 1
fi
log "structure: file and function sizes, no import cycle between sibling modules"
python3 scripts/structure.py
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings
log "cargo test (unit + in-process)"
test_log="$(mktemp /tmp/vr-cargo-test.XXXXXX.log)"
if ! cargo test --workspace -q > "$test_log" 2>&1; then
  cat "$test_log"
  exit 1
fi
grep -E '^test result' "$test_log"
log "e2e suites"
e2e/run
