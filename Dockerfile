# syntax=docker/dockerfile:1
# Build: docker build -t scoregate .
# Run:   docker run -p 8443:8443 -v /path/to/tls:/tls:ro scoregate serve \
#          --ssl-cert-pem-file /tls/fullchain.pem --ssl-key-pem-file /tls/key.pem \
#          --ssl-cname score.example.com --backend http://127.0.0.1:5001

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/scoregate ./cmd/scoregate \
 && mkdir -p /out/var/lib/scoregate

# distroless/static: no shell, no package manager, CA certificates included
# (scoregate checks that the served chain reaches a known root), runs as
# the unprivileged user 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/scoregate /usr/local/bin/scoregate
# --storage's default (ACME accounts and certificates), writable by the
# non-root user; mount a volume there to keep them across restarts.
COPY --from=build --chown=65532:65532 /out/var/lib/scoregate /var/lib/scoregate
USER nonroot:nonroot
# In a container the health endpoints must be reachable by the platform's
# probes, not only from loopback.
ENV SCOREGATE_METRICS_LISTEN=:9090
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/scoregate"]
CMD ["serve"]
