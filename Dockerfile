# Multi-stage build: a static binary on a small Debian base. Debian rather
# than scratch because the embedded platform (the default backend) runs
# one-off commands with /bin/sh and the default shell is bash. The binary
# carries its own public CA roots (x509roots/fallback), so HTTPS to a PaaS
# works without the base image's ca-certificates.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git, so the version comes from the build
# argument: docker build --build-arg VERSION=$(git describe --always --dirty) .
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/bridge .
# The connection-mode agents, static, one per architecture whatever the
# image's own: the bridge uploads the one for a one-off's `uname -m` into it
# (each at most 6 MiB, agent/size_test.go checks it).
RUN for arch in amd64 arm64; do CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags="-s -w" -o /out/agents/linux-$arch ./cmd/bridge-agent || exit 1; done

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin bridge \
 && mkdir -p /data && chown bridge:bridge /data && chmod 700 /data
COPY --from=build /out/bridge /usr/local/bin/bridge
COPY --from=build /out/agents/ /usr/local/libexec/bridge/
# Not root: the embedded platform could isolate one-offs from the bridge's
# files only in user namespaces, which containers seldom allow, so without
# ONEOFF_API_URL the bridge refuses to start unless run as root.
USER bridge
# Host key, upload staging area and, by default, authorized_keys.
VOLUME /data
ENV BRIDGE_LISTEN=0.0.0.0:2222 \
    BRIDGE_DATA_DIR=/data \
    BRIDGE_AUTHORIZED_KEYS=/data/authorized_keys
EXPOSE 2222
# The slim image has no curl: the binary checks that its listener answers
# with an SSH banner (at BRIDGE_LISTEN, on loopback).
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/bridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/bridge"]
