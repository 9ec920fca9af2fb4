#!/usr/bin/env bash
# Sets up and runs the standalone data plane on the embedded example config.
# Installs ffmpeg if missing, builds (release, cached in target/), generates sample media into
# examples/media/, and serves on 127.0.0.1:8080 (admin on 127.0.0.1:9090).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

apt_install ffmpeg ca-certificates
ensure_rust
gen_media examples/media

secrets=examples/.secrets
mkdir -p "$secrets"
if [ ! -s "$secrets/admin-token" ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secrets/admin-token"
  chmod 600 "$secrets/admin-token"
fi

log "building vr-dataplane (release)"
cargo build --release -p vr-dataplane -q

listen="${LISTEN:-127.0.0.1:8080}"
admin="${ADMIN_LISTEN:-127.0.0.1:9090}"
base="http://$listen"
cat <<MSG

video-resizer data plane: $base   (admin: http://$admin)
Try:
  curl -sI '$base/videos/sample.mp4?derivative=mobile'
  curl -s  -o mobile.mp4 '$base/videos/sample.mp4?derivative=mobile'
  curl -s  -o small.mp4  '$base/videos/sample.mp4?width=640&height=360&fit=cover&time=2s&duration=3s'
  curl -s  -o frame.png  '$base/videos/sample.mp4?mode=frame&time=3s&format=png&width=480'
  curl -s  -o sheet.jpg  '$base/videos/sample.mp4?mode=spritesheet&width=160&height=90&imageCount=12'
  curl -s  -o audio.m4a  '$base/videos/sample.mp4?format=m4a'
  curl -s  -o clip.webm  '$base/videos/clip.webm?width=320&format=webm'
  curl -s  '$base/videos/sample.mp4?width=0&foo=1'            # strict mode: 400 naming both
  curl -s  -H 'Range: bytes=0-99' -o /dev/null -w '%{http_code}\n' '$base/videos/sample.mp4?derivative=mobile'
  curl -s  http://$admin/metrics | grep vr_requests
  curl -s  -H "Authorization: Bearer \$(cat $secrets/admin-token)" http://$admin/admin/health
  curl -s  -X POST -H "Authorization: Bearer \$(cat $secrets/admin-token)" 'http://$admin/admin/purge?tag=video-derivative-mobile'
Edit examples/standalone.yaml while it runs: a valid change is swapped in, a bad one is refused.

MSG
exec target/release/vr-dataplane --config examples/standalone.yaml --listen "$listen" --admin-listen "$admin" "$@"
