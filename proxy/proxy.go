package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
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
	// DefaultMaxBodyBytes is Config.MaxBodyBytes's default, 100 MiB.
	DefaultMaxBodyBytes = 100 << 20
	// DefaultMaxIdleConns is Config.MaxIdleConns's default.
	DefaultMaxIdleConns = 256
)

// Transport settings that are not part of the Config.
const (
	idleConnTimeout   = 90 * time.Second
	tcpKeepAlive      = 30 * time.Second
	expectContinue    = 1 * time.Second
	copyBufferSize    = 32 << 10 // ReverseProxy's own default
	tlsHandshakeLimit = 10 * time.Second
	peekAfterIdle     = time.Second // see pool.peekAfter
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

	// UpstreamTimeout is how long the backend may take, once the request
	// is sent, to send its response headers; longer gets 504. The
	// response body may then stream for as long as it needs. If zero,
	// 60s (the Azure ML scoring default).
	UpstreamTimeout time.Duration

	// DialTimeout bounds connecting to the backend; longer gets 504. A
	// refused connection gets 502 at once. If zero, 5s.
	DialTimeout time.Duration

	// MaxBodyBytes limits the request body; a larger body gets 413. If
	// zero, 100 MiB; if negative, there is no limit.
	MaxBodyBytes int64

	// MaxIdleConns is how many idle keep-alive connections to the
	// backend are kept for reuse. If zero, 256.
	MaxIdleConns int

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
// to release idle backend connections.
type Proxy struct {
	cname            string // normalised: no trailing dot
	maxBodyBytes     int64  // <= 0: no limit
	auth             *KeySet
	authExemptHealth bool
	accessLog        bool

	// Error messages that name a Config value, built once.
	msgTooLarge        string
	msgUpstreamTimeout string
	msgDialTimeout     string

	backend         *url.URL
	pool            *pool // the direct path's connections; nil if the backend needs ReverseProxy
	buffers         *bufferPool
	upstreamTimeout time.Duration
	log             zerolog.Logger
	metrics         *metrics.Metrics
	transport       *http.Transport
	rp              *httputil.ReverseProxy
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
	}{{"UpstreamTimeout", cfg.UpstreamTimeout}, {"DialTimeout", cfg.DialTimeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("proxy: %s is negative (%v)", d.name, d.v)
		}
	}
	if cfg.MaxIdleConns < 0 {
		return nil, fmt.Errorf("proxy: MaxIdleConns is negative (%d)", cfg.MaxIdleConns)
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxIdleConns == 0 {
		cfg.MaxIdleConns = DefaultMaxIdleConns
	}

	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: tcpKeepAlive}
	tr := &http.Transport{
		// No Proxy: HTTP_PROXY in the container's environment must not
		// divert traffic meant for the sidecar's backend.
		DialContext:           dialer.DialContext,
		MaxIdleConns:          cfg.MaxIdleConns,
		MaxIdleConnsPerHost:   cfg.MaxIdleConns,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
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

	p := &Proxy{
		cname:              cname,
		maxBodyBytes:       cfg.MaxBodyBytes,
		auth:               cfg.Auth,
		authExemptHealth:   cfg.AuthExemptHealth,
		accessLog:          !cfg.DisableAccessLog,
		msgTooLarge:        fmt.Sprintf("request body larger than %d bytes (--max-body-bytes)", cfg.MaxBodyBytes),
		msgUpstreamTimeout: fmt.Sprintf("backend sent no response headers within %v (--upstream-timeout)", cfg.UpstreamTimeout),
		msgDialTimeout:     fmt.Sprintf("backend connection not established within %v (--dial-timeout)", cfg.DialTimeout),
		log:                log,
		metrics:            m,
		transport:          tr,
	}
	backend := *cfg.Backend // the caller keeps its URL
	p.backend = &backend
	p.buffers = newBufferPool()
	p.upstreamTimeout = cfg.UpstreamTimeout
	if backend.Scheme == "http" && (backend.Path == "" || backend.Path == "/") && backend.RawQuery == "" {
		addr := backend.Host
		if backend.Port() == "" {
			addr = net.JoinHostPort(backend.Hostname(), "80")
		}
		p.pool = &pool{addr: addr, host: backend.Host, dialer: dialer, maxIdle: cfg.MaxIdleConns,
			idleTimeout: idleConnTimeout, peekAfter: peekAfterIdle}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// SetURL leaves Out.Host empty, so the backend sees its own
			// host; the original is in X-Forwarded-Host.
			pr.SetURL(&backend)
			// The client's Forwarded and X-Forwarded-* were removed
			// before Rewrite: at the edge, they are the client's claims.
			pr.SetXForwarded()
			if p.auth != nil {
				// The key is scoregate's; the backend has no use for it.
				pr.Out.Header.Del("Authorization")
			}
			stateOf(pr.In).ids.set(pr.Out.Header)
		},
		Transport: tr,
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

// ProbeBackend asks the backend GET / (where the Azure ML inference server
// answers "Healthy" once the model's init() is done) over the proxy's own
// connection pool. It returns the status, and an error unless it is 2xx.
func (p *Proxy) ProbeBackend(ctx context.Context) (int, error) {
	u := *p.backend
	u.Path, u.RawQuery = "/", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("GET / answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// Close closes the idle backend connections. Requests in flight are not
// affected; the Proxy stays usable and opens new connections as needed.
func (p *Proxy) Close() {
	p.transport.CloseIdleConnections()
	if p.pool != nil {
		p.pool.closeIdle()
	}
}

// reqState is one request's state, shared by ServeHTTP, the ReverseProxy
// hooks (through the request context) and the access log.
type reqState struct {
	rec           statusRecorder
	body          countingBody
	ids           requestIDs
	start         time.Time
	upstreamStart time.Time
	upstream      time.Duration // until response headers or error; 0 if not sent
	done          bool          // ServeHTTP returned normally
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

// finish records the request's metrics and writes its access log line. It
// runs deferred, so it also sees a response aborted mid-stream.
func (p *Proxy) finish(st *reqState, r *http.Request) {
	total := time.Since(st.start)
	upstream := time.Duration(-1) // not forwarded
	if !st.upstreamStart.IsZero() {
		upstream = st.upstream
	}
	p.metrics.InFlight(-1)
	p.metrics.Request(st.rec.status, r.Method, total, upstream)
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
	if p.maxBodyBytes > 0 && r.ContentLength > p.maxBodyBytes {
		p.fail(st, http.StatusRequestEntityTooLarge, p.msgTooLarge)
		return
	}

	var body io.ReadCloser // nil: no request body
	if r.Body != nil && r.Body != http.NoBody {
		st.body.rc = r.Body
		if p.maxBodyBytes > 0 && r.ContentLength < 0 {
			// Unknown length (chunked, or HTTP/2 without
			// content-length): cut it off mid-stream. The server's
			// writer w, not st.rec, so that net/http closes the
			// connection after the 413.
			st.body.rc = http.MaxBytesReader(w, r.Body, p.maxBodyBytes)
		}
		body = &st.body
	}
	st.upstreamStart = time.Now()
	if p.direct(r) {
		p.forward(&st.rec, r, st, body)
		return
	}
	// ReverseProxy's hooks find st in the request's context.
	out := r.WithContext(context.WithValue(r.Context(), stateKey{}, st)) // a shallow copy
	if body != nil {
		out.Body = body
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
	st.upstream = time.Since(st.upstreamStart)
	// Ours replace any the backend sent, so the client sees one of each.
	st.ids.set(resp.Header)
	return nil
}

// handleError is the ReverseProxy's ErrorHandler: the round trip failed
// before any response header was written.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	p.upstreamFailed(w, r, stateOf(r), err)
}

// upstreamFailed answers a request whose round trip to the backend failed
// before any response header was written, on either forwarding path.
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	st.upstream = time.Since(st.upstreamStart)
	status, msg, reason := p.errorStatus(r, err)
	if reason != "" {
		p.metrics.UpstreamError(reason)
	}
	switch status {
	case StatusClientClosedRequest:
		// Not a backend failure: the client left.
		p.log.Debug().Err(err).Str(keyRequestID, st.ids.id).Msg("client closed the request before the backend answered")
	case http.StatusRequestEntityTooLarge:
		p.log.Debug().Err(err).Str(keyRequestID, st.ids.id).Msg("request body over the limit")
	default:
		p.log.Error().Err(err).Int(keyStatus, status).Str(keyRequestID, st.ids.id).Msg("backend request failed")
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
