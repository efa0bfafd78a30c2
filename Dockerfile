# syntax=docker/dockerfile:1
# Build with BuildKit (docker build, the default builder since Docker Engine 23;
# buildx; podman/buildah): docker build -t scoregate .
# Run:   docker run -p 8443:8443 -v /path/to/tls:/tls:ro scoregate serve \
#          --ssl-cert-pem-file /tls/fullchain.pem --ssl-key-pem-file /tls/key.pem \
#          --ssl-cname score.example.com --backend http://127.0.0.1:5001
# deploy/dockerfile_test.go checks the user, the static build, the entrypoint,
# the port-443 capability and the exposed ports below.

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
# setcap, for the file capability below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
# Static (no cgo: distroless/static has no libc) and reproducible (-trimpath).
#
# Why a file capability: in an Azure Container Instances group the port a
# container listens on is the port clients reach (there is no port mapping),
# so scoregate itself must bind 443, as uid 65532. Docker (20.10 and later)
# lets any user bind low ports inside a container; ACI does not, and neither
# does Kubernetes: it gives a non-root process no ambient capabilities, so a
# NET_BIND_SERVICE added in the securityContext is lost at exec unless the
# binary carries it as a file capability (+ep: permitted and effective).
# With the file capability, the container must keep NET_BIND_SERVICE in its
# bounding set: `capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}` works,
# also with allowPrivilegeEscalation: false (no_new_privs limits the file
# capability to what the process already had, and the runtime gave it
# NET_BIND_SERVICE); `drop: [ALL]` alone makes exec fail with "operation not
# permitted", since the kernel refuses an effective file capability it cannot
# grant. On AKS, a container port of 8443 behind a Service port 443 needs none
# of this (the image's default --listen is :8443).
# `setcap -v` fails the build if the capability did not stick.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/scoregate ./cmd/scoregate \
 && setcap cap_net_bind_service=+ep /out/scoregate \
 && setcap -v cap_net_bind_service=+ep /out/scoregate \
 && mkdir -p /out/var/lib/scoregate

# distroless/static: no shell, no package manager, CA certificates included
# (scoregate checks that the served chain reaches a known root).
FROM gcr.io/distroless/static-debian12:nonroot
# The capability is the security.capability xattr, and this COPY must carry
# it from the build stage:
# - BuildKit's COPY --from keeps it (the legacy builder dropped it:
#   moby/moby#38132, moby/moby#35699; BuildKit builds keep it:
#   dani-garcia/vaultwarden#3170 "only works when using the BuildKit-based
#   builder", caddyserver/caddy-docker#274). Kaniko drops it
#   (GoogleContainerTools/kaniko#2866): do not build this image with kaniko.
# - No --link: COPY --link lost file capabilities in Docker 23
#   (moby/moby#45128, fixed later).
# - No --chown: a chown clears security.capability (the kernel does so on
#   every chown; see containers/buildah#3294), and root:root is right anyway:
#   uid 65532 must not be able to replace its own binary.
# - setcap runs in the build stage on the built file; a capability set on a
#   file in the build context is not sent to the builder (moby/buildkit#2250).
COPY --from=build /out/scoregate /usr/local/bin/scoregate
# --storage's default (ACME accounts and certificates), writable by the
# non-root user; mount a volume there to keep them across restarts.
COPY --from=build --chown=65532:65532 /out/var/lib/scoregate /var/lib/scoregate
# Numeric, so that Kubernetes can verify runAsNonRoot (it refuses a user
# name such as distroless's "nonroot").
USER 65532:65532
# In a container the health endpoints must be reachable by the platform's
# probes, not only from loopback.
# 9464, not Prometheus's own 9090, which a Prometheus beside scoregate
# would hold.
ENV SCOREGATE_METRICS_LISTEN=:9464
# 443: TLS where the container's port is the public port (ACI); 80: ACME
# HTTP-01 and the redirect (--http-listen); 8443: the default --listen
# (Kubernetes, behind a Service port 443); 9464: /healthz, /readyz, /metrics.
EXPOSE 443 80 8443 9464
ENTRYPOINT ["/usr/local/bin/scoregate"]
CMD ["serve"]
