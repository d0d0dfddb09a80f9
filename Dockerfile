# syntax=docker/dockerfile:1
# Build stage: compile every binary in release mode. The registry and target folders are
# BuildKit caches, so a source change rebuilds only the workspace's own crates.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock askama.toml ./
COPY crates ./crates
COPY migrations ./migrations
COPY src ./src
# `--bins` builds the default members' binaries: the product, never concert-bench.
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target \
    cargo build --release --bins \
    && mkdir -p /out \
    && cp target/release/concert-api target/release/outbox-relay target/release/mock-data-platform \
          target/release/concert-outbox /out/

# Runtime stage: the binaries, libpq and CA roots, run as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home concert
COPY --from=build /out/ /usr/local/bin/
USER concert
ENV BIND_ADDR=0.0.0.0:8080 RUST_LOG=info
EXPOSE 8080
CMD ["concert-api"]
