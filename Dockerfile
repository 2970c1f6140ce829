# syntax=docker/dockerfile:1
#
# moat as a container: a static binary on distroless (CA certificates,
# /etc/passwd with a nonroot user, nothing else).
#
#   docker build --build-arg VERSION=$(git describe --always) -t moat .
#   docker run -d -p 5000:5000 -v moat-data:/data \
#     -e MOAT_ADMIN_PASSWORD=change-me moat
#
# The image's config (packaging/container.yaml) listens on 0.0.0.0:5000
# over plain HTTP for a TLS-terminating proxy in front; mount your own
# file over /etc/moat/moat.yaml for TLS, trustedProxies, notifications …

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/moat-registry/moat/server.Version=${VERSION}" \
      -o /out/moat ./cmd/moat \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/moat /usr/local/bin/moat
COPY packaging/container.yaml /etc/moat/moat.yaml
# A named volume takes this directory's owner: the nonroot user (65532).
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 5000
VOLUME /data
ENTRYPOINT ["/usr/local/bin/moat", "serve", "--config", "/etc/moat/moat.yaml"]
