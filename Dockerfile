# Multi-stage build: a static (musl) shadowdiff on a distroless base image.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# Declared in Cargo.toml, so cargo wants them present even when not built.
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin shadowdiff --target x86_64-unknown-linux-musl \
    && cp target/x86_64-unknown-linux-musl/release/shadowdiff /shadowdiff

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /shadowdiff /usr/local/bin/shadowdiff
ENV SHADOWDIFF_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/shadowdiff"]
CMD ["serve"]
