# syntax=docker/dockerfile:1
# Image of the evaluator (gRPC + REST evaluation, streams, /metrics).
# Build from the repository root (make images, or):
#   docker build -f deploy/docker/evaluator.Dockerfile -t flagforge/evaluator:dev .
#
# Stage 1 compiles a static binary (CGO off: SQLite is modernc's pure Go driver)
# inside the service's own module (GOWORK=off: the service's go.mod replaces the
# pkg module with ../../pkg, so no other module of the workspace is needed).
# Stage 2 is distroless "static": no shell, no package manager, user 65532.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/evaluator/go.mod services/evaluator/go.sum services/evaluator/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd services/evaluator && go mod download
COPY pkg/ pkg/
COPY services/evaluator/ services/evaluator/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd services/evaluator && \
    go build -trimpath -ldflags="-s -w" -o /out/flagforge-evaluator ./cmd/evaluator && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="flagforge-evaluator"
COPY --from=build /out/flagforge-evaluator /usr/local/bin/flagforge-evaluator
# The data directory is a mount point (emptyDir, volume): the root filesystem is
# meant to run read-only.
COPY --from=build --chown=65532:65532 /out/data /var/lib/flagforge
ENV FLAGFORGE_GRPC_ADDR=0.0.0.0:9091 \
    FLAGFORGE_HTTP_ADDR=0.0.0.0:8081 \
    FLAGFORGE_DATA_DIR=/var/lib/flagforge/evaluator
USER 65532:65532
EXPOSE 8081 9091
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/flagforge-evaluator", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/flagforge-evaluator"]

