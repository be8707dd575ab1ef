# syntax=docker/dockerfile:1
# hookseal container image: a release build of the binary on a distroless base.
#   docker build -t hookseal:dev --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
# The final image has no shell and no package manager: only hookseal, glibc and CA certificates,
# run as the distroless "nonroot" user (65532), which the Helm chart's securityContext expects.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Manifests first, so the dependency download is cached while only sources change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo fetch --locked \
    && rm -rf src
COPY . .
RUN cargo build --release --locked --bin hookseal \
    && install -D -m 0755 target/release/hookseal /out/hookseal

# cc: glibc and libgcc for the Rust binary; :nonroot sets USER 65532. Pin by digest in your
# registry mirror if you need reproducible pulls.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hookseal" \
      org.opencontainers.image.description="Sidecar reverse proxy that verifies inbound webhook signatures before the app sees them" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/hookseal/hookseal" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/hookseal /usr/local/bin/hookseal
USER 65532:65532
# 8443: webhook listener; 9090: admin (/healthz /readyz /metrics). Both are set in the config.
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/hookseal"]
CMD ["run", "--config", "/etc/hookseal/hookseal.toml"]
