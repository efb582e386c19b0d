# syntax=docker/dockerfile:1
#
# StreamHouse image: `streamhouse` (the agent) and `streamctl` (the CLI).
#
# The agent links DuckDB (SQL over topics) through cgo, so it is built with
# CGO_ENABLED=1 like CI builds it; DuckDB's Go bindings ship static
# libraries, and the binary is linked fully statically against glibc
# (netgo and osusergo: Go's own DNS and user lookups, no NSS). The linker
# warns that DuckDB's dlopen (extension loading), getaddrinfo (its HTTP
# client) and getpwuid (lock-conflict messages) would need glibc's shared
# NSS libraries at run time: none is reached, since queries that load
# extensions, read URLs or open database files are refused
# (unsupported_operation) and the engine runs in memory. The final stage is
# distroless/static: no shell, no libc, only the two binaries,
# CA certificates and a non-root user. tests/deploy runs this file's
# `go build` lines and checks the result answers SQL.
#
#   docker build -t streamhouse .
#   docker run -p 8080:8080 -p 9092:9092 -p 50051:50051 -v streamhouse-data:/data streamhouse

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that source edits reuse the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo -ldflags '-s -w -linkmode external -extldflags "-static"' -o /out/streamhouse ./cmd/streamhouse
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/streamctl ./cmd/streamctl
# The data folder, owned by the image's user (distroless nonroot: 65532).
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/streamhouse /out/streamctl /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
USER 65532:65532
# Everything an agent keeps locally lives under /data: the SQLite metadata
# and local folder storage of a single agent without S3 and PostgreSQL,
# the disk cache of S3 reads, and the write-ahead log (WAL_ENABLED).
ENV LOCAL_STORAGE_PATH=/data/storage \
    STREAMHOUSE_METADATA_PATH=/data/metadata.db \
    STREAMHOUSE_CACHE=/data/cache \
    WAL_DIR=/data/wal \
    LOG_FORMAT=json
VOLUME /data
# REST (with /metrics, /ready and the schema registry), Kafka, gRPC.
EXPOSE 8080 9092 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/streamhouse", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/streamhouse"]
