package proxy

import (
	"crypto/tls"
	"net"
	"net/url"
	"time"
)

// Defaults for the zero values of Config.
const (
	// DefaultUpstreamTimeout is Config.UpstreamTimeout's default, the
	// Azure ML scoring timeout.
	DefaultUpstreamTimeout = 60 * time.Second
	// DefaultDialTimeout is Config.DialTimeout's default.
	DefaultDialTimeout = 5 * time.Second
	// DefaultBodyReadTimeout is Config.BodyReadTimeout's default, nginx's
	// client_body_timeout.
	DefaultBodyReadTimeout = 60 * time.Second
	// DefaultMaxBodyBytes is Config.MaxBodyBytes's default, 100 MiB.
	DefaultMaxBodyBytes = 100 << 20
	// DefaultMaxIdleConns is Config.MaxIdleConns's default.
	DefaultMaxIdleConns = 256
	// DefaultProbeInterval is Config.ProbeInterval's default.
	DefaultProbeInterval = 5 * time.Second
	// DefaultResolveInterval is Config.ResolveInterval's default.
	DefaultResolveInterval = 10 * time.Second
	// DefaultMaxConcurrentPerReplica is Config.MaxConcurrentPerReplica's
	// default. Azure ML's is 1, right for its one-worker inference server
	// and a throttle for every server that runs requests concurrently
	// (uvicorn, Triton, TorchServe, several gunicorn workers). 32 keeps a
	// one-worker server's own queue bounded (one request running, at most
	// 31 waiting in its accept queue, far below gunicorn's backlog of 2048,
	// and 32 connections instead of one per client stream) while a
	// concurrent server is not held back below 32 requests in flight per
	// replica. Set it to the replica's real concurrency for Azure ML's
	// behaviour: the excess then waits in scoregate's queue, where
	// MaxQueueWait bounds it, instead of inside the replica.
	DefaultMaxConcurrentPerReplica = 32
	// DefaultMaxQueueWait is Config.MaxQueueWait's default, Azure ML's
	// max_queue_wait_ms.
	DefaultMaxQueueWait = 500 * time.Millisecond
	// DefaultMaxQueueLength is Config.MaxQueueLength's default.
	DefaultMaxQueueLength = 1024
	// DefaultMaxHeaderCount is Config.MaxHeaderCount's default, Apache's
	// LimitRequestFields.
	DefaultMaxHeaderCount = 100
	// DefaultBufferResponseBytes is Config.BufferResponseBytes's
	// default, 1 MiB.
	DefaultBufferResponseBytes = 1 << 20
	// DefaultBufferTotalBytes is Config.BufferTotalBytes's default, 32
	// MiB: beside the shipped --max-connections (4096 connections at up
	// to ~40 KB each), it keeps scoregate inside the shipped 256 MiB pod
	// limit and its 85 % soft memory limit.
	DefaultBufferTotalBytes = 32 << 20
)

// Transport settings that are not part of the Config.
const (
	idleConnTimeout   = 90 * time.Second
	tcpKeepAlive      = 30 * time.Second
	expectContinue    = 1 * time.Second
	copyBufferSize    = 32 << 10 // ReverseProxy's own default
	tlsHandshakeLimit = 10 * time.Second
	// checkIdleAfter: h1 asks the kernel whether the backend closed an idle
	// connection only once it has been idle this long. Keep-alive timeouts
	// are seconds (gunicorn 2s, uvicorn 5s), so an idle close is always
	// seen; under load, connections come back within a millisecond and
	// skip the system call.
	checkIdleAfter = 5 * time.Millisecond
)

// Config configures a Proxy. Fields marked required must be set; the zero
// value of every other field selects the default stated beside it.
type Config struct {
	// CName is the name clients use; the HTTP Host (HTTP/2 :authority)
	// must match it, ignoring the port, ASCII case and a trailing dot.
	// Required; it must be a well-formed DNS name without a port.
	CName string

	// Backend is the scoring container, such as http://127.0.0.1:5001:
	// shorthand for Backends with this one URL (both may be given).
	Backend *url.URL

	// Backends are the default service's targets: every request whose
	// path is not routed to one of Services goes to them. Each is an
	// absolute http, https or h2c URL; all share one scheme and one path,
	// and the path, if any, is prefixed to every request path. http
	// speaks HTTP/1.1 (the Azure ML inference server, gunicorn, uvicorn),
	// https HTTP/1.1 or HTTP/2 as TLS negotiates, and h2c HTTP/2 with
	// prior knowledge over plain TCP (gRPC servers: Triton, KServe,
	// TorchServe, grpc-go); an h2c replica's default health check is
	// grpc.health.v1.Health/Check. A target given
	// by a DNS name stands for every address it resolves to (a headless
	// Service), each a replica, resolved again every ResolveInterval.
	// Required unless Services is set.
	Backends []*url.URL

	// Services are named scoring services, routed as Azure ML's front end
	// routes them: /api/v1/service/NAME/REST goes to the targets of NAME
	// as /REST, query kept, and an unknown NAME gets 404. Each service has
	// its own replicas, health checks and admission queue. Names are
	// letters, digits, '-', '_' and '.'. If nil, every path goes to
	// Backends.
	Services map[string][]*url.URL

	// Resolver resolves the targets given by name. If nil,
	// net.DefaultResolver.
	Resolver *net.Resolver

	// ResolveInterval is how often the targets given by name are resolved
	// again: new addresses become replicas, and replicas that disappear
	// take no new requests and are closed once their last one is done.
	// If zero, 10s.
	ResolveInterval time.Duration

	// MaxConcurrentPerReplica is how many requests one replica is sent at
	// once (Azure ML's max_concurrent_requests_per_instance); the others
	// wait in the service's queue. It also caps the connections to the
	// replica (one more for the health check). If zero, 32: see
	// DefaultMaxConcurrentPerReplica.
	MaxConcurrentPerReplica int

	// MaxQueueWait is how long a request may wait for a replica slot
	// (Azure ML's max_queue_wait_ms); then it gets 503 with Retry-After.
	// If zero, 500ms, Azure ML's default.
	MaxQueueWait time.Duration

	// MaxQueueLength bounds each service's queue; a request arriving at a
	// full queue gets 503 at once. If zero, 1024.
	MaxQueueLength int

	// BackendTLS configures TLS to https targets. If nil, the host's
	// root CAs verify the backend's certificate. Ignored for http.
	BackendTLS *tls.Config

	// UpstreamTimeout is how long the backend may take to send its
	// response headers, counted from the moment the whole request has
	// been written to it; longer gets 504. The response body may then
	// stream for as long as it needs. If zero, 60s (the Azure ML scoring
	// default).
	UpstreamTimeout time.Duration

	// DialTimeout bounds connecting to the backend; longer gets 504, as
	// nginx's proxy_connect_timeout does. A refused connection gets 502 at
	// once. If zero, 5s.
	DialTimeout time.Duration

	// BodyReadTimeout is how long the client may leave the request body
	// stalled: every read of it must bring data within this long, or the
	// request gets 408 and is not counted as a backend error. It is not a
	// limit on the whole upload. If zero, 60s (nginx's
	// client_body_timeout).
	BodyReadTimeout time.Duration

	// MaxBodyBytes limits the request body; a larger body gets 413. If
	// zero, 100 MiB; if negative, there is no limit.
	MaxBodyBytes int64

	// MaxHeaderCount limits the header fields of a request (431 above
	// it). Each field line counts, a repeated name once per line, and so
	// does Host (HTTP/2's :authority); HTTP/2 cookie fields count as the
	// one Cookie field net/http joins them into. The server's header byte
	// limit (http.Server.MaxHeaderBytes) applies first. If zero, 100
	// (Apache's LimitRequestFields); if negative, no limit.
	MaxHeaderCount int

	// MaxIdleConns is how many idle keep-alive connections to the
	// backend are kept for reuse. If zero, 256.
	MaxIdleConns int

	// ProbeInterval is how often Run asks each replica GET / (or its
	// service's health URL), the active health check; one check may take
	// as long, at most 5s. A check that times out while the replica is
	// working counts as busy, not down (see Health). If zero, 5s.
	ProbeInterval time.Duration

	// HealthURL, if not nil, is what the default service's health check
	// asks instead of GET / on each replica's own port: the URL's scheme,
	// port, path and query, at each replica's address (a replica is an
	// address, and a target given by name stands for several). Its host
	// must be empty (http://:5000/) or the host of one of Backends. With
	// SEPERATE_HEALTH_ENDPOINT=true the Azure ML inference server also
	// listens on HEALTH_PORT (5000 by default), served by the same gunicorn
	// workers as its scoring port.
	HealthURL *url.URL

	// ServiceHealthURLs are HealthURL for Services, by name. A service
	// without one is asked GET / on its replicas' own port.
	ServiceHealthURLs map[string]*url.URL

	// Auth, if not nil, requires every request to carry
	// "Authorization: Bearer <key>" with one of its keys; others get 401.
	// The Authorization header is not forwarded to the backend then. If
	// nil, requests pass without a key.
	Auth *KeySet

	// AuthExemptHealth lets GET and HEAD / (the Azure ML health probe)
	// through without a key when Auth is set.
	AuthExemptHealth bool

	// DisableAccessLog turns off the access log line of each request.
	// If false, every request is logged at info level.
	DisableAccessLog bool

	// StreamIdleTimeout ends a streamed answer (unknown length, or
	// text/event-stream: token streams, gRPC streams, NDJSON) when the
	// backend sends nothing for this long; each byte from the backend
	// sets the clock back, so a stream may last as long as it keeps
	// sending. UpstreamTimeout still bounds the wait for the answer to
	// start. If zero, DefaultStreamIdleTimeout (5 minutes); if negative,
	// streams have no idle limit.
	StreamIdleTimeout time.Duration

	// BufferResponseBytes is the largest backend answer read whole before
	// it is written to the client: an answer with a Content-Length up to
	// it is read at the backend's speed into memory, and its replica slot
	// and backend connection are released before the client reads it, so
	// that a slow reader holds neither. Streams are never buffered and
	// hold their slot until the client has them: an answer of unknown
	// length (chunked), text/event-stream, a protocol switch (101), an
	// answer with trailers, and one over this bound. If zero, 1 MiB; if
	// negative, no answer is buffered.
	BufferResponseBytes int64

	// BufferTotalBytes bounds the memory all buffered answers hold at once,
	// counted in 16 KiB blocks, each given back once the client's
	// connection has taken it; an answer that would go over it streams,
	// holding its slot, as an answer over BufferResponseBytes does. If
	// zero, 32 MiB.
	BufferTotalBytes int64
}
