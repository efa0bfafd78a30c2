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
	streamIdle      time.Duration // 0: no idle limit on streams
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
		streamIdle:         streamIdleTimeout(cfg.StreamIdleTimeout),
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
	if st.idle != nil {
		st.idle.t.Stop() // an aborted stream's body may not have been read to its error
	}
	if !st.done && st.rec.status != 0 {
		p.metrics.StreamCut(streamCut(st, r))
	}
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
	if isGRPC(r.Header) {
		if r.ProtoMajor < 2 {
			// Its client cannot read a gRPC answer over HTTP/1.1
			// either: a plain error says why.
			p.fail(st, http.StatusHTTPVersionNotSupported, msgGRPCOverHTTP1)
			return
		}
		st.grpc = true
		d, ok, msg := grpcTimeout(r.Header)
		if msg != "" {
			p.fail(st, http.StatusBadRequest, msg)
			return
		}
		if ok {
			// The call's deadline bounds its wait for a replica and
			// for the backend; the backend gets the header too.
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			r = r.WithContext(ctx)
			st.grpcDeadline = true
		}
	}
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
