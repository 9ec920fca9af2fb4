#!/usr/bin/env bash
# Benchmark 5: S3, side by side in one hyperfine run against a real S3 server (s3s-fs) on
# loopback:
#   (a) a hit from the shared S3 cache layer vs (b) a fresh transform of the same variant from
#       an S3 source (ffmpeg reads a presigned URL) — which is also the S3-source miss that
#   (c) a miss on a local source holding the same file is compared with.
# Two release data planes: "shared" (memory and disk off, shared bucket on: every request after
# the warm-up is a bucket hit) and "fresh" (no cache layer at all: every request transforms).
# Usage: [RUNS=5] bench/s3_cache.sh        prints hyperfine's markdown table on stdout
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
RUNS="${RUNS:-5}"
apt_install ffmpeg hyperfine curl python3
ensure_rust
e2e/s3/install.sh >/dev/null
cargo build --release -q -p vr-dataplane

media="$ROOT/.cache/bench-media"
mkdir -p "$media"
if [ ! -s "$media/s3-sample.mp4" ]; then
  # 10 s 1080p30 H.264/AAC, fast-start (like scripts/demo.sh's sample).
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=10" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 60 -c:a aac -b:a 128k -movflags +faststart \
    "$media/s3-sample.mp4.tmp.mp4"
  mv "$media/s3-sample.mp4.tmp.mp4" "$media/s3-sample.mp4"
fi

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

S3=$(free_port)
mkdir -p "$work/s3/media/raw" "$work/s3/variants" "$work/local"
cp "$media/s3-sample.mp4" "$work/s3/media/raw/sample.mp4"
cp "$media/s3-sample.mp4" "$work/local/sample.mp4"
printf 'bench-access\n' > "$work/id"; printf 'bench-secret-0123456789\n' > "$work/secret"
.cache/s3s/bin/s3s-fs --host 127.0.0.1 --port "$S3" --access-key bench-access \
  --secret-key bench-secret-0123456789 "$work/s3" >"$work/s3s.log" 2>&1 &
pids+=($!)

config() { # config SHARED(yes|no)
  cat <<YAML
origins:
  - name: s3
    matcher: '^/s3/(?P<name>[a-z0-9_-]+)\.mp4$'
    sources:
      - kind: s3
        name: bucket
        bucket: media
        endpoint: http://127.0.0.1:$S3
        forcePathStyle: true
        key: 'raw/\${name}.mp4'
        credentials: { accessKeyIdFile: $work/id, secretAccessKeyFile: $work/secret }
  - name: local
    matcher: '^/local/(?P<name>[a-z0-9_-]+)\.mp4$'
    sources:
      - { kind: local, name: disk, root: $work/local, path: '\${name}.mp4' }
cache:
  memory: { maxBytes: 0, maxObjectBytes: 0 }
$(if [ "$1" = yes ]; then cat <<SHARED
  shared:
    bucket: variants
    endpoint: http://127.0.0.1:$S3
    forcePathStyle: true
    credentials: { accessKeyIdFile: $work/id, secretAccessKeyFile: $work/secret }
SHARED
fi)
YAML
}
start() { # start NAME SHARED -> prints "HTTP_PORT"
  local http admin
  http=$(free_port); admin=$(free_port)
  config "$2" > "$work/$1.yaml"
  target/release/vr-dataplane --config "$work/$1.yaml" --listen "127.0.0.1:$http" \
    --admin-listen "127.0.0.1:$admin" --work-dir "$work/$1-work" --log-format text >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
  echo "$http"
}
SHARED_PORT=$(start shared yes)
FRESH_PORT=$(start fresh no)

Q='width=640&height=360&duration=4s'
# Warm the bucket: the first request transforms and stores; wait until its metadata is there.
curl -sf -o /dev/null "http://127.0.0.1:$SHARED_PORT/s3/sample.mp4?$Q"
for _ in $(seq 100); do ls "$work/s3/variants/video-resizer/m/" 2>/dev/null | grep -q json && break; sleep 0.1; done

hyperfine -N --style basic --warmup 1 --runs "$RUNS" --export-markdown "$work/table.md" \
  -n "(a) shared-bucket hit" "curl -sf -o /dev/null http://127.0.0.1:$SHARED_PORT/s3/sample.mp4?$Q" \
  -n "(b) S3-source miss: fresh transform of the same variant" "curl -sf -o /dev/null http://127.0.0.1:$FRESH_PORT/s3/sample.mp4?$Q" \
  -n "(c) local-source miss of the same file" "curl -sf -o /dev/null http://127.0.0.1:$FRESH_PORT/local/sample.mp4?$Q" >&2
cat "$work/table.md"
echo
echo "bytes: hit=$(curl -sf "http://127.0.0.1:$SHARED_PORT/s3/sample.mp4?$Q" | wc -c) fresh=$(curl -sf "http://127.0.0.1:$FRESH_PORT/s3/sample.mp4?$Q" | wc -c)"
