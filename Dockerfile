# syntax=docker/dockerfile:1
# identity-gateway image: build with the Rust toolchain, run on distroless (glibc, CA roots, no
# shell, no package manager, uid 65532). Not built in CI; see docs/deployment.md.
#   docker build -t registry.example.com/platform/identity-gateway:0.1.0 .

FROM rust:1-bookworm AS build
WORKDIR /src
# Only what `cargo build` reads (.dockerignore keeps target/, .git, tests and deploy/ out).
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY crates crates
COPY benches benches
# The registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cache mount so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin identity-gateway \
    && install -D -m 0755 target/release/identity-gateway /out/identity-gateway

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/identity-gateway /usr/local/bin/identity-gateway
# distroless `nonroot`; numeric so Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 50051
# Listens on 127.0.0.1 unless told otherwise: the Kubernetes ConfigMap sets
# IDGW_GRPC__LISTEN_ADDR=0.0.0.0:50051; with plain docker pass `--listen 0.0.0.0:50051`.
ENTRYPOINT ["/usr/local/bin/identity-gateway"]
