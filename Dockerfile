# Build stage: compile every binary in release mode.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them. The stub binary is the
# default-run one, which cargo insists exists. The workspace names crates/concert-bench, so its
# manifest (with a stub main) must be there for cargo to read the workspace; `--bins` builds only
# the default member, the product, so the bench is never compiled into the image.
COPY Cargo.toml Cargo.lock ./
COPY crates/concert-bench/Cargo.toml ./crates/concert-bench/
RUN mkdir -p src/bin crates/concert-bench/src && echo 'fn main() {}' > src/bin/concert-outbox.rs \
    && echo 'fn main() {}' > crates/concert-bench/src/main.rs && touch src/lib.rs \
    && cargo build --release --bins 2>/dev/null || true
COPY migrations ./migrations
COPY src ./src
RUN touch src/lib.rs && cargo build --release --bins

# Runtime stage: the binaries, libpq and CA roots, run as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home concert
COPY --from=build /src/target/release/concert-api /usr/local/bin/
COPY --from=build /src/target/release/outbox-relay /usr/local/bin/
COPY --from=build /src/target/release/mock-data-platform /usr/local/bin/
COPY --from=build /src/target/release/concert-outbox /usr/local/bin/
USER concert
ENV BIND_ADDR=0.0.0.0:8080 RUST_LOG=info
EXPOSE 8080
CMD ["concert-api"]
