#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, clippy, unit and in-process
# tests (cargo test), then the real-component suites (e2e/run).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

apt_install ffmpeg ca-certificates
ensure_rust

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings
log "cargo test (unit + in-process)"
cargo test --workspace -q 2>&1 | tee /tmp/vr-cargo-test.log | grep -E '^(test result|running|error|failures)|FAILED|panicked' || true
if grep -qE 'FAILED|error(\[|:)' /tmp/vr-cargo-test.log; then
  cat /tmp/vr-cargo-test.log
  exit 1
fi
log "e2e suites"
e2e/run
