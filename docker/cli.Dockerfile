# syntax=docker/dockerfile:1
# scripts/images.sh builds the same image without an engine (e2e/tests/images.rs compares the
# two: base, packages, user, entry point, working directory, ports).
# vrctl, for CI jobs and GitOps pipelines (`docker run video-resizer/vrctl validate config/*.yaml`).
#   docker build -f docker/cli.Dockerfile -t video-resizer/vrctl:0.1.0 .
#
# Honesty note: not built here (no container engine on these machines). The build step is
# `cargo build -p vr-cli` of the e2e entry point (`e2e/run helm`) in release mode with the
# committed lock file; e2e/tests/dockerfiles.rs checks its shape.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vr-cli --bin vrctl \
    && install -D -m 0755 target/release/vrctl /out/vrctl

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/vrctl /usr/local/bin/vrctl
USER 65532:65532
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/vrctl"]
