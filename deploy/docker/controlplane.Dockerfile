# syntax=docker/dockerfile:1
# Image of the control plane (admin API, REST gateway, console, publisher, sync stream).
# Build from the repository root (make images, or):
#   docker build -f deploy/docker/controlplane.Dockerfile -t flagforge/controlplane:dev .
#
# The build stage compiles a static binary (CGO off: SQLite is modernc's pure Go driver)
# inside the service's own module (GOWORK=off: the service's go.mod replaces the
# pkg module with ../../pkg, so no other module of the workspace is needed).
# The runtime stage is distroless "static": no shell, no package manager, user 65532.
ARG GO_VERSION=1.26
ARG NODE_VERSION=22

# Stage 0 builds the web console (web/) into the control plane's embedded assets
# (services/controlplane/internal/console/dist), as `make web` does.
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src
ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
COPY web/package.json web/package-lock.json web/
RUN --mount=type=cache,target=/root/.npm \
    cd web && npm ci --no-audit --no-fund
COPY web/ web/
RUN mkdir -p services/controlplane/internal/console/dist && cd web && npm run build

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/controlplane/go.mod services/controlplane/go.sum services/controlplane/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd services/controlplane && go mod download
COPY pkg/ pkg/
COPY services/controlplane/ services/controlplane/
COPY --from=web /src/services/controlplane/internal/console/dist/ services/controlplane/internal/console/dist/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd services/controlplane && \
    go build -trimpath -ldflags="-s -w" -o /out/flagforge-controlplane ./cmd/controlplane && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="flagforge-controlplane"
COPY --from=build /out/flagforge-controlplane /usr/local/bin/flagforge-controlplane
# The data directory is a mount point (emptyDir, volume): the root filesystem is
# meant to run read-only.
COPY --from=build --chown=65532:65532 /out/data /var/lib/flagforge
ENV FLAGFORGE_GRPC_ADDR=0.0.0.0:9090 \
    FLAGFORGE_HTTP_ADDR=0.0.0.0:8080 \
    FLAGFORGE_DATA_DIR=/var/lib/flagforge
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/flagforge-controlplane", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/flagforge-controlplane"]
CMD ["serve"]
