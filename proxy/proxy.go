package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
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
	// absolute http or https URL; all share one scheme and one path, and
	// the path, if any, is prefixed to every request path. A target given
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

// Proxy is the http.Handler of the TLS listener: Host check, request ids,
// body limit, forwarding to the backend, error mapping and the access log.
// Create it with New. It is safe for concurrent use. Call Close when done
// to release idle backend connections and join the goroutines it started.
type Proxy struct {
	cname            string // normalised: no trailing dot
	maxBodyBytes     int64  // <= 0: no limit
	maxHeaderCount   int    // <= 0: no limit
	bodyReadTimeout  time.Duration
	probeInterval    time.Duration
	auth             *KeySet
	authExemptHealth bool
	accessLog        bool

	// Error messages that state a Config value, built once. They name
	// neither the Config field nor the command-line flag behind it: the
	// API client reading them can change neither. The log line of the
	// failure names the field (keySetting).
	msgTooLarge        string
	msgUpstreamTimeout string
	msgDialTimeout     string
	msgBodyTimeout     string
	msgTooManyHeaders  string

	dflt            *service            // Backends; nil if none
	services        map[string]*service // Services, by name
	all             []*service          // dflt (if any), then Services by name
	resolver        *net.Resolver
	resolveInterval time.Duration
	dialTimeout     time.Duration
	upstreamTimeout time.Duration
	maxIdleConns    int
	backendTLS      *tls.Config
	retryAfter      string // the Retry-After of a refused admission
	buffers         *bufferPool
	answers         answerBuffers // buffered backend answers (buffered.go)
	log             zerolog.Logger
	metrics         *metrics.Metrics
	rp              *httputil.ReverseProxy

	// Tests choose the path a request takes (see forward.go).
	noDirect, noH1 bool
}

// New validates cfg, fills in its defaults and returns a Proxy that logs to
// log and records into m (which may be nil). An error names the Config
// field at fault.
func New(cfg Config, log zerolog.Logger, m *metrics.Metrics) (*Proxy, error) {
	if cfg.CName == "" {
		return nil, errors.New("proxy: CName is required")
	}
	cname, err := checkName(cfg.CName)
	if err != nil {
		return nil, fmt.Errorf("proxy: CName %q: %w", cfg.CName, err)
	}
	backends := cfg.Backends
	if cfg.Backend != nil {
		backends = append([]*url.URL{cfg.Backend}, backends...)
	}
	if len(backends) == 0 && len(cfg.Services) == 0 {
		return nil, errors.New("proxy: Backend is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"UpstreamTimeout", cfg.UpstreamTimeout}, {"DialTimeout", cfg.DialTimeout},
		{"BodyReadTimeout", cfg.BodyReadTimeout}, {"ProbeInterval", cfg.ProbeInterval},
		{"ResolveInterval", cfg.ResolveInterval}, {"MaxQueueWait", cfg.MaxQueueWait},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("proxy: %s is negative (%v)", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"MaxIdleConns", cfg.MaxIdleConns}, {"MaxConcurrentPerReplica", cfg.MaxConcurrentPerReplica}, {"MaxQueueLength", cfg.MaxQueueLength}} {
		if n.v < 0 {
			return nil, fmt.Errorf("proxy: %s is negative (%d)", n.name, n.v)
		}
	}
	cfg.UpstreamTimeout = cmp.Or(cfg.UpstreamTimeout, DefaultUpstreamTimeout)
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, DefaultDialTimeout)
	cfg.BodyReadTimeout = cmp.Or(cfg.BodyReadTimeout, DefaultBodyReadTimeout)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.MaxIdleConns = cmp.Or(cfg.MaxIdleConns, DefaultMaxIdleConns)
	cfg.ProbeInterval = cmp.Or(cfg.ProbeInterval, DefaultProbeInterval)
	cfg.ResolveInterval = cmp.Or(cfg.ResolveInterval, DefaultResolveInterval)
	cfg.MaxConcurrentPerReplica = cmp.Or(cfg.MaxConcurrentPerReplica, DefaultMaxConcurrentPerReplica)
	cfg.MaxQueueWait = cmp.Or(cfg.MaxQueueWait, DefaultMaxQueueWait)
	cfg.MaxQueueLength = cmp.Or(cfg.MaxQueueLength, DefaultMaxQueueLength)
	cfg.MaxHeaderCount = cmp.Or(cfg.MaxHeaderCount, DefaultMaxHeaderCount)

	p := &Proxy{
		cname:              cname,
		maxBodyBytes:       cfg.MaxBodyBytes,
		bodyReadTimeout:    cfg.BodyReadTimeout,
		probeInterval:      cfg.ProbeInterval,
		auth:               cfg.Auth,
		authExemptHealth:   cfg.AuthExemptHealth,
		accessLog:          !cfg.DisableAccessLog,
		msgTooLarge:        fmt.Sprintf("request body larger than %d bytes", cfg.MaxBodyBytes),
		msgUpstreamTimeout: fmt.Sprintf("backend sent no response headers within %v", cfg.UpstreamTimeout),
		msgDialTimeout:     fmt.Sprintf("backend connection not established within %v", cfg.DialTimeout),
		msgBodyTimeout:     fmt.Sprintf("request body stalled: nothing received for %v", cfg.BodyReadTimeout),
		msgTooManyHeaders:  fmt.Sprintf("more than %d request header fields", cfg.MaxHeaderCount),
		maxHeaderCount:     cfg.MaxHeaderCount,
		services:           map[string]*service{},
		resolver:           cmp.Or(cfg.Resolver, net.DefaultResolver),
		resolveInterval:    cfg.ResolveInterval,
		dialTimeout:        cfg.DialTimeout,
		upstreamTimeout:    cfg.UpstreamTimeout,
		maxIdleConns:       cfg.MaxIdleConns,
		backendTLS:         cfg.BackendTLS,
		retryAfter:         strconv.Itoa(int(max(time.Second, cfg.MaxQueueWait.Round(time.Second)) / time.Second)),
		buffers:            newBufferPool(),
		log:                log,
		metrics:            m,
	}
	if err := p.answers.init(cfg.BufferResponseBytes, cfg.BufferTotalBytes, m); err != nil {
		return nil, err
	}
	if len(backends) > 0 {
		if p.dflt, err = p.newService("", backends, &cfg); err != nil {
			return nil, err
		}
		p.all = append(p.all, p.dflt)
	}
	if cfg.HealthURL != nil && len(backends) == 0 {
		return nil, errors.New("proxy: HealthURL is for Backends, and there are none")
	}
	for name := range cfg.ServiceHealthURLs {
		if _, ok := cfg.Services[name]; !ok {
			return nil, fmt.Errorf("proxy: ServiceHealthURLs[%q]: no such service in Services", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		if !validServiceName(name) {
			return nil, fmt.Errorf("proxy: service name %q: want letters, digits, '-', '_' and '.'", name)
		}
		s, err := p.newService(name, cfg.Services[name], &cfg)
		if err != nil {
			return nil, err
		}
		p.services[name] = s
		p.all = append(p.all, s)
	}
	// The first resolution, so that requests have replicas from the
	// start; Run keeps them current.
	for _, s := range p.all {
		s.refresh(context.Background())
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: roundTripFunc(p.roundTrip),
		// FlushInterval stays 0: ReverseProxy already flushes at once
		// responses without a Content-Length (chunked, HTTP/2 streams)
		// and text/event-stream, which is every streamed answer, while
		// a sized scoring response is written through the server's
		// buffer without a flush per read.
		BufferPool:     p.buffers,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleError,
		ErrorLog:       stdlog.New(stdLogWriter{log}, "", 0),
	}
	return p, nil
}

// Close closes the idle backend connections and waits for the request body
// writers the backend clients started; call it once the server in front
// has shut down. The Proxy stays usable and opens new connections as
// needed.
func (p *Proxy) Close() {
	for _, s := range p.all {
		s.pool.closeAll()
	}
}

// ServeHTTP checks the header count and the Host, assigns the request
// ids, applies the body limit and forwards r to the backend. It writes one
// access log line. An HTTP/1.0 request, and an HTTP/1.1 request with a
// chunked body, is answered with Connection: close, and the server then
// closes the connection (see closeAfter).
//
// When the backend's response breaks off after its headers were sent,
// ServeHTTP panics with http.ErrAbortHandler, as ReverseProxy does, so that
// net/http aborts the response instead of ending it cleanly; the access
// log line then says "aborted". No input makes it panic otherwise.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{start: time.Now()}
	st.rec.ResponseWriter = w
	if closeAfter(r) {
		// Every response, error or forwarded, then ends the
		// connection: see closeAfter.
		st.rec.ResponseWriter = &closingWriter{ResponseWriter: w}
	}
	p.metrics.InFlight(1)
	defer p.finish(st, r)
	p.serve(st, w, r)
	st.done = true
}

// finish ends the request's use of the client's body, records the
// request's metrics and writes its access log line. It runs deferred, so
// it also sees a response aborted mid-stream.
func (p *Proxy) finish(st *reqState, r *http.Request) {
	if st.body.rc != nil {
		st.body.shutDown()
	}
	if st.buf != nil {
		p.buffers.pool.Put(st.buf)
	}
	st.held.Close() // what an aborted answer still holds
	total := time.Since(st.start)
	forwarded := !st.upstreamStart.IsZero()
	upstream := time.Duration(-1) // not forwarded
	if forwarded {
		upstream = st.upstream
	}
	p.metrics.InFlight(-1)
	p.metrics.Request(st.rec.status, r.Method, total, upstream)
	if forwarded {
		p.metrics.Overhead(st.overhead())
	}
	if p.accessLog {
		p.logAccess(st, r, total)
	}
}

func (p *Proxy) serve(st *reqState, w http.ResponseWriter, r *http.Request) {
	ids, idStatus, idMsg := readRequestIDs(r.Header)
	st.ids = ids
	if p.maxHeaderCount > 0 && headerCount(r) > p.maxHeaderCount {
		p.fail(st, http.StatusRequestHeaderFieldsTooLarge, p.msgTooManyHeaders)
		return
	}
	if status, err := CheckHost(r.Host, p.cname); err != nil {
		p.fail(st, status, err.Error())
		return
	}
	if idStatus != 0 {
		p.fail(st, idStatus, idMsg)
		return
	}
	if p.auth != nil && !p.authorized(r) {
		p.metrics.AuthFailure()
		st.rec.Header().Set("WWW-Authenticate", `Bearer realm="scoregate"`)
		p.fail(st, http.StatusUnauthorized, msgUnauthorized)
		return
	}
	if r.Method == http.MethodConnect {
		p.fail(st, http.StatusMethodNotAllowed, msgMethodConnect)
		return
	}
	if msg := checkRequestLine(r); msg != "" {
		p.fail(st, http.StatusBadRequest, msg)
		return
	}
	if p.maxBodyBytes > 0 && r.ContentLength > p.maxBodyBytes {
		p.fail(st, http.StatusRequestEntityTooLarge, p.msgTooLarge)
		return
	}

	svc, path, rawPath := p.route(r)
	if svc == nil {
		p.fail(st, http.StatusNotFound, msgNoService)
		return
	}
	st.svc, st.path, st.rawPath = svc, path, rawPath
	direct := p.direct(st, r)
	var out *http.Request
	if direct {
		out = p.prepareOut(st, r)
	} else {
		// ReverseProxy's hooks find st in the request's context.
		out = r.WithContext(context.WithValue(r.Context(), stateKey{}, st)) // a shallow copy
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if err := p.readAhead(st, w, r, out, direct); err != nil {
			p.failed(&st.rec, r, st, err)
			return
		}
	}
	// Admission comes after the body's first bytes: a client slow to send
	// holds no replica slot.
	queued := time.Now()
	rep, err := svc.pool.acquire(r.Context(), nil)
	st.queueWait = time.Since(queued)
	if err != nil {
		p.refused(st, r, err)
		return
	}
	st.rep = rep
	defer p.release(st)
	st.upstreamStart = time.Now()
	if direct {
		st.outURL.Host = rep.origin.Host
		p.forward(st, &st.rec, r)
		return
	}
	p.rp.ServeHTTP(&st.rec, out)
}

// authorized reports whether r may pass: it carries a valid bearer key, or
// it is the exempt health probe.
func (p *Proxy) authorized(r *http.Request) bool {
	if p.authExemptHealth && r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return true
	}
	return p.auth.Authorized(r.Header.Get("Authorization"))
}
