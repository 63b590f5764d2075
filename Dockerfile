# syntax=docker/dockerfile:1
# Seismo in two stages: a release build, then a slim runtime that runs as an unprivileged
# user and reports healthy once /readyz answers (the database is reachable).

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The manifest names the bench examples and the integration tests: cargo reads their paths.
COPY bench bench
COPY tests tests
COPY migrations migrations
COPY src src
RUN cargo build --release --locked --bin seismo \
    && install -m 0755 target/release/seismo /usr/local/bin/seismo

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/seismo --create-home seismo
COPY --from=build /usr/local/bin/seismo /usr/local/bin/seismo
USER seismo
WORKDIR /var/lib/seismo
# Inside a container every listener binds all interfaces; the spool lives in the data dir
# (mount a volume there). SEISMO_DATABASE_URL must be set: the image has no PostgreSQL.
ENV SEISMO_LISTEN=0.0.0.0:8000 \
    SEISMO_OTLP_HTTP_LISTEN=0.0.0.0:4318 \
    SEISMO_OTLP_GRPC_LISTEN=0.0.0.0:4317 \
    SEISMO_DATA_DIR=/var/lib/seismo
EXPOSE 8000 4318 4317
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz >/dev/null || exit 1
ENTRYPOINT ["seismo"]
CMD ["serve"]
