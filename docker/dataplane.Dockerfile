# syntax=docker/dockerfile:1
# scripts/images.sh builds the same image without an engine (e2e/tests/images.rs compares the
# two: base, packages, user, entry point, working directory, ports).
# The data plane: vr-dataplane with Debian's ffmpeg/ffprobe, as user 65532.
#   docker build -f docker/dataplane.Dockerfile -t video-resizer/dataplane:0.1.0 .
#
# Honesty note: no container engine runs on the machines this was written on, so this file has
# not been built here. What was checked: the build step below is the cargo build of the e2e
# entry point (`e2e/run`: `cargo build -p vr-dataplane`) in release mode with the committed lock
# file, and e2e/tests/dockerfiles.rs (plain `cargo test`) checks its shape (multi-stage, that
# command, a numeric non-root user, ffmpeg in the runtime image). The ffmpeg the data plane is
# tested with in e2e is the same Debian package (bookworm: 5.1).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vr-dataplane --bin vr-dataplane \
    && install -D -m 0755 target/release/vr-dataplane /out/vr-dataplane

FROM debian:bookworm-slim AS runtime
# ffmpeg/ffprobe do the transforms; ca-certificates for HTTPS origins; util-linux (essential in
# Debian, listed so it is never dropped) gives prlimit and setpriv, through which every
# ffmpeg/ffprobe child gets its own memory/CPU-time limits and dies with the data plane.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg ca-certificates util-linux \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/vr-dataplane /usr/local/bin/vr-dataplane
# The operator's pods run as 65532 with a read-only root file system; the work and cache
# directories are emptyDir volumes it mounts under /var/cache/video-resizer.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/vr-dataplane"]
