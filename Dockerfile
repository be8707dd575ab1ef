# syntax=docker/dockerfile:1
# hookseal container image: a release build of the binary on a distroless base.
#   docker build -t hookseal:dev --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   (--build-arg PGO=0: without the profile-guided build, in a third of the time)
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
# PGO=1 (the default): a profile-guided build, benches/pgo.sh. It builds an instrumented
# hookseal, trains it with examples/pgo_train.rs (every scheme, HTTP/1.1, HTTP/2, TLS, queued
# delivery on disk and on Redis, handshakes, refusals, the admin port; every answer checked)
# and builds again with the profile: 6-20 % less CPU per small request than the plain release
# build (BENCHMARKS.md §25). It takes about three release builds' time, and fails the build
# if the training does. PGO=0: the plain release build.
# redis-server only trains the Redis stores here; it is not in the final image, and a pinned
# Debian version would break the build at the next security update (hence DL3008 off).
ARG PGO=1
# hadolint ignore=DL3008
RUN if [ "$PGO" = 1 ]; then \
        apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
        && rustup component add llvm-tools \
        && bash benches/pgo.sh --out /tmp/pgo \
        && install -D -m 0755 /tmp/pgo/use/release/hookseal /out/hookseal; \
    else \
        cargo build --release --locked --bin hookseal \
        && install -D -m 0755 target/release/hookseal /out/hookseal; \
    fi

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
