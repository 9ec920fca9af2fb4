# syntax=docker/dockerfile:1
# scripts/images.sh builds the same image without an engine (e2e/tests/images.rs compares the
# two: base, packages, user, entry point, working directory, ports).
# The operator: vr-operator on a distroless base, as user 65532.
#   docker build -f docker/operator.Dockerfile -t video-resizer/operator:0.1.0 .
#
# Honesty note: no container engine runs on the machines this was written on, so this file has
# not been built here. The build step is the cargo build of the e2e entry point (`e2e/run`:
# `cargo build -p vr-operator`) in release mode with the committed lock file;
# e2e/tests/dockerfiles.rs (plain `cargo test`) checks its shape.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vr-operator --bin vr-operator \
    && install -D -m 0755 target/release/vr-operator /out/vr-operator

# glibc + libgcc, CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/vr-operator /usr/local/bin/vr-operator
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/vr-operator"]
