package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultDialTimeout     = 5 * time.Second
	DefaultMaxIdleConns    = 256
	DefaultIdleConnTimeout = 90 * time.Second
)

// SyncBodyLimit is the largest request body of known length that RoundTrip
// writes together with the request head, on the caller's goroutine, before
// it reads the response. Larger bodies, and bodies of unknown length,
// stream from a goroutine of their own.
const SyncBodyLimit = 32 << 10

const (
	tcpKeepAlive    = 30 * time.Second
	max1xxResponses = 5 // a bound of our own (net/http bounds 1xx by header bytes); backends send one or two
	bufferSize      = 4 << 10
)

// Config configures a Transport. The zero value of every field but Addr
// selects the default stated beside it.
type Config struct {
	// Addr is the backend's host:port. Required.
	Addr string

	// DialTimeout bounds connecting to Addr. If zero, 5s.
	DialTimeout time.Duration

	// ResponseHeaderTimeout is how long the backend may take, from the
	// moment the whole request has been written, to send the response
	// headers. If zero, there is no limit but the request's context.
	ResponseHeaderTimeout time.Duration

	// MaxIdleConns is how many idle keep-alive connections are kept for
	// reuse. If zero, 256.
	MaxIdleConns int

	// IdleConnTimeout is how long a connection may sit idle in the pool
	// before it is closed instead of reused. The pool drops such
	// connections when it is next used; no goroutine sweeps it. If zero,
	// 90s.
	IdleConnTimeout time.Duration

	// CheckIdleAfter is how long a connection must have been idle before
	// its reuse asks the kernel whether the backend closed it (one
	// MSG_PEEK recv). If zero, every reuse is checked. Under load a
	// connection is reused within a millisecond, long before any
	// backend's keep-alive timeout (gunicorn's is 2s), and the check is
	// one more system call per request (measured: 1.2-1.7 µs, 5-10 % of
	// a keep-alive request's CPU, on the peers kit's VM).
	CheckIdleAfter time.Duration
}

// Transport is an http.RoundTripper for one plain-HTTP/1.1 backend. Create
// it with New. It is safe for concurrent use. Call Close when done: it
// closes the idle connections and waits for the body writers RoundTrip
// started.
type Transport struct {
	addr           string
	dialer         net.Dialer
	headerTimeout  time.Duration
	maxIdle        int
	idleTimeout    time.Duration
	checkAfter     time.Duration
	writers        sync.WaitGroup // body writer goroutines
	testHookDialed func()         // tests: called after each dial

	mu   sync.Mutex
	idle []*conn // a stack: the last one is the most recently used; idleSince grows with the index
}

// New validates cfg and returns a Transport.
func New(cfg Config) (*Transport, error) {
	if cfg.Addr == "" {
		return nil, errors.New("h1: Addr is required")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("h1: Addr %q: %w", cfg.Addr, err)
	}
	if cfg.DialTimeout < 0 || cfg.ResponseHeaderTimeout < 0 || cfg.IdleConnTimeout < 0 || cfg.MaxIdleConns < 0 || cfg.CheckIdleAfter < 0 {
		return nil, errors.New("h1: timeouts and MaxIdleConns must not be negative")
	}
	t := &Transport{
		addr:          cfg.Addr,
		headerTimeout: cfg.ResponseHeaderTimeout,
		maxIdle:       cfg.MaxIdleConns,
		idleTimeout:   cfg.IdleConnTimeout,
		checkAfter:    cfg.CheckIdleAfter,
	}
	t.dialer.Timeout = cfg.DialTimeout
	if t.dialer.Timeout == 0 {
		t.dialer.Timeout = DefaultDialTimeout
	}
	t.dialer.KeepAlive = tcpKeepAlive
	if t.maxIdle == 0 {
		t.maxIdle = DefaultMaxIdleConns
	}
	if t.idleTimeout == 0 {
		t.idleTimeout = DefaultIdleConnTimeout
	}
	return t, nil
}

// Close closes the idle connections and waits for the body writers that
// RoundTrip started to end. In-flight requests are not interrupted, but a
// writer ends only when its request does: call Close after the last
// RoundTrip and the last response body have been finished with. The
// Transport stays usable.
func (t *Transport) Close() {
	t.CloseIdleConnections()
	t.writers.Wait()
}

// CloseIdleConnections closes the connections in the idle pool.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// IdleConns reports how many connections the pool holds.
func (t *Transport) IdleConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idle)
}

// RoundTrip sends req to the backend and returns its response. The response
// body hands the connection back to the pool once read to EOF, and closes
// it if closed earlier or broken. RoundTrip closes req.Body.
//
// An interim 1xx response other than 100 Continue is passed to the
// request's httptrace.ClientTrace Got1xxResponse, if any (ReverseProxy
// relays them that way); 101 Switching Protocols is an error: protocol
// upgrades are not supported.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.Do(req, nil)
}

// Do is RoundTrip, except that when got1xx is not nil, the interim
// responses go to it rather than to the request's httptrace.ClientTrace:
// a caller that relays them need not make a new context per request.
func (t *Transport) Do(req *http.Request, got1xx func(code int, header http.Header) error) (*http.Response, error) {
	if err := checkRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	for attempt := 0; ; attempt++ {
		resp, err, retry := t.roundTrip(req, body, attempt > 0, got1xx)
		if err == nil {
			return resp, nil
		}
		if body != nil && body != req.Body {
			body.Close() // one from GetBody
		}
		if !retry || attempt > 0 || req.Context().Err() != nil {
			closeBody(req)
			return nil, err
		}
		if body != nil {
			if body, err = req.GetBody(); err != nil {
				closeBody(req)
				return nil, fmt.Errorf("h1: GetBody: %w", err)
			}
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// roundTrip is one attempt. retry reports that the attempt failed on a
// reused connection in a way that allows another on a new one.
//
// Its state lives in the response body it will return (x), so that the
// frames on the caller's stack stay small: HTTP/2 handlers run on fresh
// goroutines, and a deeper stack here costs a stack copy per request.
func (t *Transport) roundTrip(req *http.Request, body io.ReadCloser, fresh bool, got1xx func(int, http.Header) error) (_ *http.Response, err error, retry bool) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err, false
	}
	c, err := t.getConn(ctx, fresh)
	if err != nil {
		return nil, err, false
	}
	x := &respBody{t: t, c: c, ctx: ctx}
	x.start()
	if retry, err := x.send(req, body); err != nil {
		return nil, x.fail(err), retry
	}
	resp, retry, err := x.receive(req, got1xx)
	if err != nil {
		return nil, x.fail(err), retry
	}
	return resp, nil, false
}

// start readies c for the exchange: a caller that gives up unblocks every
// wait on c.
func (x *respBody) start() {
	c := x.c
	c.written = 0
	c.mu.Lock()
	c.headersDone, c.canceled = false, false
	c.mu.Unlock()
	x.stop = context.AfterFunc(x.ctx, x.cancel)
}

// cancel runs when the caller's context is done.
func (x *respBody) cancel() {
	c := x.c
	c.mu.Lock()
	c.canceled = true
	c.nc.SetDeadline(aLongTimeAgo)
	c.mu.Unlock()
}

// fail ends a failed exchange and returns the error to report: a caller
// that left is the cause of whatever failed on c; a request body that
// failed is its own cause.
func (x *respBody) fail(err error) error {
	x.stop()
	x.c.nc.Close()
	var be *BodyReadError
	if cerr := x.ctx.Err(); cerr != nil && !errors.As(err, &be) {
		return cerr
	}
	return err
}

// send writes the request: whole, or its head, leaving the body to a
// writer goroutine (x.w). retry reports whether a failure allows another
// attempt.
func (x *respBody) send(req *http.Request, body io.ReadCloser) (retry bool, err error) {
	c := x.c
	// Only a request whose body is absent or can be had again may go out
	// once more.
	renewable := body == nil || req.GetBody != nil
	length := req.ContentLength
	if body != nil && length == 0 {
		length = -1 // a body with ContentLength 0 is of unknown length (http.Request)
	}
	writeHead(c.bw, req, body != nil, length)
	if body != nil && (length < 0 || length > SyncBodyLimit) {
		if err := c.bw.Flush(); err != nil {
			return c.reused && renewable && c.written == 0, fmt.Errorf("h1: writing the request head: %w", err)
		}
		// The body streams on while the response is awaited: a backend
		// may answer before it has read the whole body.
		w := &writer{done: make(chan struct{})}
		x.w = w
		ctx, t, trailer := x.ctx, x.t, req.Trailer
		t.writers.Go(func() { t.writeBody(ctx, c, w, body, length, trailer) })
		return false, nil
	}
	err = copyBody(c.bw, body, length)
	var be *BodyReadError
	if errors.As(err, &be) {
		return false, err
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		return c.reused && renewable && (c.written == 0 || replayable(req)), fmt.Errorf("h1: writing the request: %w", err)
	}
	if body != nil {
		body.Close() // written whole, as net/http's transport closes it
	}
	x.t.armHeaderTimeout(x.ctx, c)
	return false, nil
}

// receive reads the response headers and gives the response its body.
func (x *respBody) receive(req *http.Request, got1xx func(int, http.Header) error) (_ *http.Response, retry bool, err error) {
	c, w := x.c, x.w
	// The first byte apart: EOF before it means the backend closed the
	// connection without answering.
	if _, err := c.br.Peek(1); err != nil {
		if w != nil {
			// A writer whose body failed closed c: that is the cause.
			// One still at work ends on its own: c is closed, and
			// RoundTrip closes the request body.
			if werr := w.failed(); werr != nil {
				return nil, false, werr
			}
		}
		retry = c.reused && w == nil && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil) &&
			deadConn(err) && replayable(req)
		return nil, retry, fmt.Errorf("h1: reading the response: %w", err)
	}
	resp, err := x.t.readResponse(c, req, got1xx)
	if err != nil {
		if w != nil && w.failed() != nil {
			err = w.failed()
		}
		return nil, false, err
	}
	c.mu.Lock()
	c.headersDone = true
	if !c.canceled {
		c.nc.SetReadDeadline(time.Time{}) // the body may take as long as it needs
	}
	c.mu.Unlock()
	if err := x.ctx.Err(); err != nil {
		return nil, false, err
	}
	x.rc = resp.Body
	x.reusable = !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		x.release(true)
		return resp, false, nil
	}
	resp.Body = x
	return resp, false, nil
}

// armHeaderTimeout starts the response header clock once the request is
// written, unless the headers are already here or the caller has left (its
// deadline in the past must not be overwritten).
func (t *Transport) armHeaderTimeout(ctx context.Context, c *conn) {
	if t.headerTimeout <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.headersDone || c.canceled {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(t.headerTimeout))
}

// readResponse reads the final response, passing 1xx ones to got1xx or,
// if it is nil, to the request's trace.
func (t *Transport) readResponse(c *conn, req *http.Request, got1xx func(int, http.Header) error) (*http.Response, error) {
	if got1xx == nil {
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			got1xx = func(code int, h http.Header) error { return trace.Got1xxResponse(code, textproto.MIMEHeader(h)) }
		}
	}
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, fmt.Errorf("h1: reading the response: %w", err)
		}
		code := resp.StatusCode
		if code >= 200 {
			return resp, nil
		}
		if code == http.StatusSwitchingProtocols {
			return nil, errors.New("h1: the backend switched protocols; upgrades are not supported")
		}
		if n == max1xxResponses {
			return nil, errors.New("h1: too many 1xx responses")
		}
		if code != http.StatusContinue && got1xx != nil {
			if err := got1xx(code, resp.Header); err != nil {
				return nil, err
			}
		}
	}
}

// deadConn reports whether a read error says the backend closed the
// connection before answering: EOF before the first byte, or a reset.
func deadConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// replayable reports whether req may be sent again after it may have
// reached the backend, as net/http.Transport decides: an idempotent method
// or an idempotency key, and a body that can be had again.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}
