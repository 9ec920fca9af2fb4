# Shared helpers for the project's scripts (sourced, not run).
# Installs are idempotent: each checks before it installs.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Build caches that outlive a clone: Go module/build caches, built tool binaries (etcd,
# Kubernetes, the S3 server, ...), images and root file systems live in a per-user folder
# outside the repository, each keyed by its pinned version, so a fresh clone (CI) reuses
# them. The repository's own git-ignored .cache/ holds only symlinks into it and per-run data.
export VR_CACHE="${VR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/video-resizer}"
mkdir -p "$VR_CACHE"

# link_cached SRC DEST : points DEST (inside the clone's .cache/) at SRC (in $VR_CACHE).
link_cached() {
  mkdir -p "$(dirname "$2")"
  ln -sfn "$1" "$2.tmp-link" && mv -Tf "$2.tmp-link" "$2"
}

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
# apt_install PKG... : installs the Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "cargo is not installed: install Rust (rustup) first" >&2
      exit 1
    fi
  fi
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
}

# gen_media DIR : writes the demo/sample videos into DIR (skips files that exist).
gen_media() {
  local dir="$1"
  mkdir -p "$dir"
  local ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)
  if [ ! -s "$dir/sample.mp4" ]; then
    log "generating $dir/sample.mp4 (10 s 1080p H.264/AAC)"
    "${ff[@]}" -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=10" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 60 -c:a aac -b:a 128k -movflags +faststart \
      "$dir/sample.mp4.tmp.mp4" && mv "$dir/sample.mp4.tmp.mp4" "$dir/sample.mp4"
  fi
  if [ ! -s "$dir/clip.webm" ]; then
    log "generating $dir/clip.webm (4 s 640x360 VP9/Opus)"
    "${ff[@]}" -f lavfi -i "testsrc2=size=640x360:rate=25:duration=4" \
      -f lavfi -i "sine=frequency=660:sample_rate=48000:duration=4" \
      -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 500k -c:a libopus \
      "$dir/clip.webm.tmp.webm" && mv "$dir/clip.webm.tmp.webm" "$dir/clip.webm"
  fi
  if [ ! -s "$dir/poster.txt" ]; then
    echo "not a video: served untransformed (passthrough)" > "$dir/poster.txt"
  fi
}
