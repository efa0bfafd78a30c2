package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
	"github.com/scoregate/scoregate/proxy/h1"
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

	// Backend is the scoring container, such as http://127.0.0.1:5001.
	// Required; an absolute http or https URL. Its path, if any, is
	// prefixed to every request path.
	Backend *url.URL

	// BackendTLS configures TLS to an https Backend. If nil, the host's
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

	// MaxIdleConns is how many idle keep-alive connections to the
	// backend are kept for reuse. If zero, 256.
	MaxIdleConns int

	// ProbeInterval is how often RunProbes asks the backend GET /. If
	// zero, 5s.
	ProbeInterval time.Duration

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
}

// Proxy is the http.Handler of the TLS listener: Host check, request ids,
// body limit, forwarding to the backend, error mapping and the access log.
// Create it with New. It is safe for concurrent use. Call Close when done
// to release idle backend connections and join the goroutines it started.
type Proxy struct {
	cname            string // normalised: no trailing dot
	maxBodyBytes     int64  // <= 0: no limit
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

	backend   *url.URL
	h1        *h1.Transport   // a plain-HTTP backend's connections; nil for https
	directOK  bool            // the direct path serves this backend (see forward.go)
	transport *http.Transport // https backends, and protocol upgrades
	buffers   *bufferPool
	log       zerolog.Logger
	metrics   *metrics.Metrics
	rp        *httputil.ReverseProxy

	health atomic.Pointer[metrics.BackendInfo] // the last probe; nil before the first
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
	if err := checkBackend(cfg.Backend); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"UpstreamTimeout", cfg.UpstreamTimeout}, {"DialTimeout", cfg.DialTimeout},
		{"BodyReadTimeout", cfg.BodyReadTimeout}, {"ProbeInterval", cfg.ProbeInterval},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("proxy: %s is negative (%v)", d.name, d.v)
		}
	}
	if cfg.MaxIdleConns < 0 {
		return nil, fmt.Errorf("proxy: MaxIdleConns is negative (%d)", cfg.MaxIdleConns)
	}
	cfg.UpstreamTimeout = cmp.Or(cfg.UpstreamTimeout, DefaultUpstreamTimeout)
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, DefaultDialTimeout)
	cfg.BodyReadTimeout = cmp.Or(cfg.BodyReadTimeout, DefaultBodyReadTimeout)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.MaxIdleConns = cmp.Or(cfg.MaxIdleConns, DefaultMaxIdleConns)
	cfg.ProbeInterval = cmp.Or(cfg.ProbeInterval, DefaultProbeInterval)

	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: tcpKeepAlive}
	tr := &http.Transport{
		// No Proxy: HTTP_PROXY in the container's environment must not
		// divert traffic meant for the sidecar's backend.
		DialContext:           dialer.DialContext,
		MaxIdleConns:          cfg.MaxIdleConns,
		MaxIdleConnsPerHost:   cfg.MaxIdleConns,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: cfg.UpstreamTimeout, // from the end of the request, as h1's
		ExpectContinueTimeout: expectContinue,
		TLSHandshakeTimeout:   tlsHandshakeLimit,
		// Bodies pass through as they are; the client negotiated its
		// own Content-Encoding with the backend.
		DisableCompression: true,
		// HTTP/2 only where TLS can negotiate it; the Azure ML server
		// speaks HTTP/1.1 on plain http.
		ForceAttemptHTTP2: cfg.Backend.Scheme == "https",
	}
	if cfg.Backend.Scheme == "https" && cfg.BackendTLS != nil {
		tr.TLSClientConfig = cfg.BackendTLS.Clone()
	}

	backend := *cfg.Backend // the caller keeps its URL
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
		backend:            &backend,
		transport:          tr,
		buffers:            newBufferPool(),
		log:                log,
		metrics:            m,
	}
	if backend.Scheme == "http" {
		addr := backend.Host
		if backend.Port() == "" {
			addr = net.JoinHostPort(backend.Hostname(), "80")
		}
		p.h1, err = h1.New(h1.Config{
			Addr:                  addr,
			DialTimeout:           cfg.DialTimeout,
			ResponseHeaderTimeout: cfg.UpstreamTimeout,
			MaxIdleConns:          cfg.MaxIdleConns,
			IdleConnTimeout:       idleConnTimeout,
			CheckIdleAfter:        checkIdleAfter,
		})
		if err != nil {
			return nil, fmt.Errorf("proxy: Backend %q: %w", backend.Redacted(), err)
		}
		p.directOK = (backend.Path == "" || backend.Path == "/") && backend.RawQuery == ""
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

func checkBackend(u *url.URL) error {
	if u == nil {
		return errors.New("proxy: Backend is required")
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("proxy: Backend %q: must be an absolute http or https URL", u.Redacted())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("proxy: Backend %q: scheme must be http or https", u.Redacted())
	}
	return nil
}

// roundTripFunc is a function that is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip is the ReverseProxy's transport: a plain-HTTP backend gets
// h1's goroutine-free client, except for protocol upgrades, which need
// net/http's (it hands back a connection to copy both ways); an https
// backend gets net/http's, with HTTP/2 where the backend offers it.
func (p *Proxy) roundTrip(r *http.Request) (*http.Response, error) {
	if p.h1 != nil && !isUpgrade(r.Header) {
		return p.h1.RoundTrip(r)
	}
	return p.transport.RoundTrip(r)
}

// Close closes the idle backend connections and waits for the request body
// writers the backend client started; call it once the server in front has
// shut down. The Proxy stays usable and opens new connections as needed.
func (p *Proxy) Close() {
	p.transport.CloseIdleConnections()
	if p.h1 != nil {
		p.h1.Close()
	}
}

// reqState is one request's state, shared by ServeHTTP, the ReverseProxy
// hooks (through the request context) and the access log.
type reqState struct {
	rec           statusRecorder
	body          clientBody
	ctl           http.ResponseController // the body's
	whole         bytesBody               // the body, when it was read whole before forwarding
	prefixed      prefixedBody            // the body, when only its first bytes were
	buf           *[copyBufferSize]byte   // holds the body read ahead; back to the pool at the end if set
	out           http.Request            // the direct path's request to the backend
	outURL        url.URL
	forwarded     [2]string // backs X-Forwarded-For and -Host (see outHeader)
	ids           requestIDs
	start         time.Time
	bodyWait      time.Duration // readAhead's wait for the client's body: the client's time, not scoregate's
	upstreamStart time.Time     // when the request was handed to the backend client; zero if it was not
	upstream      time.Duration // until response headers or error; 0 if not sent
	done          bool          // ServeHTTP returned normally
}

// upstreamDone ends the wait for the backend, when its response headers
// arrive or the round trip fails: it measures upstream and starts the
// clock of the overhead's second part (statusRecorder.relay).
func (st *reqState) upstreamDone() {
	now := time.Now()
	st.upstream = now.Sub(st.upstreamStart)
	st.rec.upstreamEnd = now
}

// overhead is the time a forwarded request spent in scoregate itself,
// scoregate_proxy_overhead_seconds. It has two parts:
//
//   - from the request's arrival in ServeHTTP until it is handed to the
//     backend client (upstreamStart): the Host, request id and key checks
//     and the body read ahead, less the time readAhead waited for the
//     client's body to arrive (bodyWait), which is the client's;
//   - from the end of the wait for the backend (its response headers, or
//     the failure) until the final response header is handed to the
//     server (statusRecorder.relay): copying the header, or mapping the
//     failure and writing the error.
//
// The transfer of bodies in either direction is in neither part: a large
// upload streams while the backend client writes the request, which
// upstream counts, and a response body read slowly by its client goes
// after the header. On the ReverseProxy path, ReverseProxy's own work
// between the hand-off and the round trip counts as upstream. An upgrade
// (101) hands its header over after hijacking the connection, so only the
// first part is counted for it.
func (st *reqState) overhead() time.Duration {
	return st.upstreamStart.Sub(st.start) - st.bodyWait + st.rec.relay
}

type stateKey struct{}

// stateOf returns the reqState that ServeHTTP put into r's context.
func stateOf(r *http.Request) *reqState {
	return r.Context().Value(stateKey{}).(*reqState)
}

// ServeHTTP checks the Host, assigns the request ids, applies the body
// limit and forwards r to the backend. It writes one access log line.
//
// When the backend's response breaks off after its headers were sent,
// ServeHTTP panics with http.ErrAbortHandler, as ReverseProxy does, so that
// net/http aborts the response instead of ending it cleanly; the access
// log line then says "aborted". No input makes it panic otherwise.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{start: time.Now()}
	st.rec.ResponseWriter = w
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

	direct := p.direct(r)
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
	st.upstreamStart = time.Now()
	if direct {
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

// fail answers a request that is refused before reaching the backend.
func (p *Proxy) fail(st *reqState, status int, msg string) {
	st.ids.set(st.rec.Header())
	WriteError(&st.rec, status, msg, st.ids.id)
}

// modifyResponse runs when the backend's response headers arrive.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	st := stateOf(resp.Request)
	st.upstreamDone()
	// Ours replace any the backend sent, so the client sees one of each.
	st.ids.set(resp.Header)
	return nil
}

// handleError is the ReverseProxy's ErrorHandler: the round trip failed
// before any response header was written.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	p.failed(w, r, stateOf(r), err)
}

// failed answers a request that failed before any response header was
// written: reading the client's body, or the round trip to the backend.
func (p *Proxy) failed(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	if !st.upstreamStart.IsZero() && st.rec.upstreamEnd.IsZero() {
		st.upstreamDone()
	}
	status, msg, reason, setting := p.errorStatus(r, err)
	if reason != "" {
		p.metrics.UpstreamError(reason)
	}
	if status == StatusClientClosedRequest {
		// Not a backend failure: the client left.
		p.log.Debug().Err(err).Str(keyRequestID, st.ids.id).Msg("client closed the request before the backend answered")
	} else {
		level, what := zerolog.ErrorLevel, "backend request failed"
		if reason == "" {
			level, what = zerolog.DebugLevel, "request body refused"
		}
		e := p.log.WithLevel(level).Err(err).Int(keyStatus, status)
		if setting != "" {
			// The error body states the value; the operator gets
			// the Config field that sets it.
			e.Str(keySetting, setting)
		}
		e.Str(keyRequestID, st.ids.id).Msg(what)
	}
	st.ids.set(w.Header())
	WriteError(w, status, msg, st.ids.id)
}

// bufferPool recycles ReverseProxy's copy buffers. It stores array
// pointers so that Get and Put do not allocate.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.pool.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == copyBufferSize {
		b.pool.Put((*[copyBufferSize]byte)(buf))
	}
}
