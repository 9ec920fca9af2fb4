#!/usr/bin/env bash
# Benchmark 1: cache hits of vr-dataplane vs nginx serving the same bytes from disk, side by
# side in one run, on loopback. Objects of ~1 MB and ~20 MB; whole objects and the Range sizes
# a player or a CDN asks for (16 KiB to 1 MiB, from byte 65536).
# Usage: [LAYER=memory|disk] [ROUNDS=3] [THREADS=2] [RANGES="16384 65536 262144 1048576"]
#        bench/cache_vs_nginx.sh [seconds-per-run] [connections]
# VR_BIN=path measures that binary instead of building this tree's. PERF=file records the data
# plane with `perf record -g` during its first run of the 1MB / 64 KiB range cell
# (read it with `perf report -i file --no-children`).
# LAYER picks the data plane's cache layer that serves the hits (memory: Bytes; disk: files).
# The data plane runs as shipped (JSON log line per request, to a file); nginx with 2 workers,
# sendfile, no access log. Prints a markdown table (req/s, p99, ratios) on stdout and the load
# average before and after on stderr (the machine may be shared: only the ratios compare).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
DUR="${1:-10}"
CONNS="${2:-32}"
THREADS="${THREADS:-2}"
RANGES="${RANGES:-16384 65536 262144 1048576}"
apt_install ffmpeg nginx-light wrk
# VR_BIN: the binary to measure (e.g. a build of another commit, for before/after ratios).
if [ -z "${VR_BIN:-}" ]; then
  ensure_rust
  cargo build --release -q -p vr-dataplane
  VR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/vr-dataplane"
fi
# A noisy source, so the bitrate caps below decide the object sizes (~1 MB and ~20 MB).
media="$ROOT/.cache/bench-media"
mkdir -p "$media"
if [ ! -s "$media/noisy.mp4" ]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=10" \
    -f lavfi -i "sine=frequency=440:duration=10" -vf "noise=alls=30:allf=t" \
    -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a aac "$media/noisy.mp4.tmp.mp4"
  mv "$media/noisy.mp4.tmp.mp4" "$media/noisy.mp4"
fi

work="$(mktemp -d)"
chmod 755 "$work"   # nginx workers run as an unprivileged user and must read www/
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DP=$(free_port); AD=$(free_port); NG=$(free_port)
mkdir -p "$work/www" "$work/nginx"
cat > "$work/dp.yaml" <<YAML
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.mp4$'
    sources:
      - { kind: local, name: media, root: $media, path: '\${name}.mp4' }
cache:
$(if [ "${LAYER:-memory}" = disk ]; then
    printf '  memory: { maxBytes: 0, maxObjectBytes: 0 }\n  disk: { path: %s, maxBytes: 1073741824 }\n' "$work/disk-cache"
  else
    printf '  memory: { maxBytes: 536870912, maxObjectBytes: 67108864 }\n'
  fi)
YAML
"$VR_BIN" --config "$work/dp.yaml" --listen 127.0.0.1:$DP --admin-listen 127.0.0.1:$AD \
  --work-dir "$work/spool" >"$work/dp.log" 2>&1 &
pids+=($!)
DP_PID=$!
cat > "$work/nginx/nginx.conf" <<NGX
daemon off;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  types { video/mp4 mp4; }
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 127.0.0.1:$NG; root $work/www; }
}
NGX
nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$AD/readyz" >/dev/null && curl -s -o /dev/null "http://127.0.0.1:$NG/" && break; sleep 0.1; done

declare -A Q=( [1MB]="width=640&height=360&bitrate=800k" [20MB]="width=1920&height=1080&bitrate=16M" )
for size in 1MB 20MB; do
  url="http://127.0.0.1:$DP/videos/noisy.mp4?${Q[$size]}"
  curl -sf -o "$work/www/$size.mp4" "$url"           # miss: transform + store
  curl -sf -o "$work/check.mp4" "$url"               # hit: same bytes
  cmp "$work/www/$size.mp4" "$work/check.mp4"
  chmod 644 "$work/www/$size.mp4"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NG/$size.mp4")
  [ "$code" = 200 ] || { echo "nginx answered $code for $size.mp4" >&2; exit 1; }
  echo "$size object: $(stat -c %s "$work/www/$size.mp4") bytes" >&2
done

run_wrk() { # url [range]
  local hdr=()
  [ -n "${2:-}" ] && hdr=(-H "Range: $2")
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "${hdr[@]}" "$1" 2>&1
}
rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}'; }

ROUNDS="${ROUNDS:-3}"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "Each cell: median of $ROUNDS alternating rounds of ${DUR}s (vr-dataplane, then nginx), wrk -t$THREADS -c$CONNS, layer ${LAYER:-memory}." >&2
echo "load before: $(uptime)" >&2
echo "| object | request | vr-dataplane req/s | nginx req/s | throughput ratio | vr p99 ms | nginx p99 ms | p99 ratio |"
echo "|---|---|---|---|---|---|---|---|"
for size in 1MB 20MB; do
  for mode in full $RANGES; do
    range=""; [ "$mode" != full ] && range="bytes=65536-$((65536 + mode - 1))"
    ra=(); rb=(); pa=(); pb=()
    for round in $(seq "$ROUNDS"); do
      if [ -n "${PERF:-}" ] && [ "$size/$mode/$round" = 1MB/65536/1 ]; then
        perf record -q -g -F 999 -o "$PERF" -p "$DP_PID" -- sleep "$DUR" 2>/dev/null &
        pids+=($!)
      fi
      dp_out=$(run_wrk "http://127.0.0.1:$DP/videos/noisy.mp4?${Q[$size]}" "$range")
      ng_out=$(run_wrk "http://127.0.0.1:$NG/$size.mp4" "$range")
      for out in "$dp_out" "$ng_out"; do
        if grep -q 'Non-2xx' <<<"$out" || ! grep -q '^  Latency' <<<"$out"; then echo "$out" >&2; exit 1; fi
      done
      ra+=("$(rps <<<"$dp_out")"); rb+=("$(rps <<<"$ng_out")"); pa+=("$(p99 <<<"$dp_out")"); pb+=("$(p99 <<<"$ng_out")")
    done
    a=$(printf '%s\n' "${ra[@]}" | median); b=$(printf '%s\n' "${rb[@]}" | median)
    x=$(printf '%s\n' "${pa[@]}" | median); y=$(printf '%s\n' "${pb[@]}" | median)
    label=full; [ "$mode" != full ] && label="range $((mode / 1024)) KiB"
    printf '| %s | %s | %s | %s | %.2f | %s | %s | %.2f |\n' "$size" "$label" "$a" "$b" \
      "$(python3 -c "print($a/$b)")" "$x" "$y" "$(python3 -c "print($x/$y)")"
  done
done
echo "load after: $(uptime)" >&2
echo >&2 "cache status of the last dataplane response: $(curl -sI "http://127.0.0.1:$DP/videos/noisy.mp4?${Q[1MB]}" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}')"
