# shadowdiff as a static (musl) binary in an empty image: nothing but the
# binary and a data folder, about 16 MB.
#
#   docker build -t shadowdiff .
#
# builds the binary from source (needs the rust:1-bookworm image). With a
# binary built beforehand, no base image is needed at all:
#
#   cargo build --release --locked --bin shadowdiff --target x86_64-unknown-linux-musl
#   mkdir -p image/data && cp target/x86_64-unknown-linux-musl/release/shadowdiff image/
#   DOCKER_BUILDKIT=1 docker build --build-arg BINARY=prebuilt -f Dockerfile -t shadowdiff image
#
# (BuildKit builds only the stages the image needs, so the source stage and
# its base image are skipped.)
ARG BINARY=source

FROM rust:1-bookworm AS source
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
    && mkdir /out /out/data \
    && cp target/x86_64-unknown-linux-musl/release/shadowdiff /out/shadowdiff

# The context holds `shadowdiff` (static) and an empty `data` folder.
FROM scratch AS prebuilt
COPY shadowdiff /out/shadowdiff
COPY data /out/data

FROM ${BINARY} AS binary

FROM scratch
COPY --from=binary /out/shadowdiff /usr/local/bin/shadowdiff
# The SQLite store (shadowdiff.db) is kept in the working folder: mount a
# volume on /data to keep it, or give a PostgreSQL URL.
COPY --from=binary --chown=65532:65532 /out/data /data
WORKDIR /data
USER 65532:65532
ENV SHADOWDIFF_LISTEN=0.0.0.0:8080 SHADOWDIFF_REPORT_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/shadowdiff"]
CMD ["serve"]
