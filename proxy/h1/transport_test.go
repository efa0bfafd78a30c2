package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitLimit bounds every wait on another goroutine, so that a broken
// Transport fails a test instead of hanging it.
const waitLimit = 5 * time.Second

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv waits up to waitLimit for a value from ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("gave up after %s waiting for %s", waitLimit, what)
		panic("unreachable")
	}
}

// backend is a raw HTTP/1.1 server on 127.0.0.1. serve runs once per
// accepted connection on a goroutine of its own; the connection is closed
// when it returns. The test's cleanup closes the listener and every
// connection and joins all the goroutines.
type backend struct {
	addr string
	done chan struct{} // closed at cleanup: a serve that waits must also wait on it
	wg   sync.WaitGroup

	mu       sync.Mutex
	closed   bool // cleanup has begun: close new connections at once
	conns    map[net.Conn]struct{}
	accepted int
	ended    int    // connections whose serve returned
	reqs     []seen // every request read whole, in order
}

// seen is a request as the backend read it.
type seen struct {
	conn    int // the accepted connection it came on, from 1
	method  string
	target  string
	host    string
	header  http.Header
	length  int64
	te      []string
	body    string
	trailer http.Header
	close   bool
}

// srvConn is one accepted connection.
type srvConn struct {
	b  *backend
	id int
	nc net.Conn
	br *bufio.Reader
}

func newBackend(t *testing.T, serve func(*srvConn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	b.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			if b.closed {
				b.mu.Unlock()
				nc.Close()
				continue
			}
			b.accepted++
			sc := &srvConn{b: b, id: b.accepted, nc: nc, br: bufio.NewReader(nc)}
			b.conns[nc] = struct{}{}
			b.mu.Unlock()
			b.wg.Go(func() {
				serve(sc)
				nc.Close()
				b.mu.Lock()
				delete(b.conns, nc)
				b.ended++
				b.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		close(b.done)
		ln.Close()
		b.mu.Lock()
		b.closed = true
		for nc := range b.conns {
			nc.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *backend) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

func (b *backend) nreqs() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

func (b *backend) nended() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ended
}

func (b *backend) naccepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

// read reads one request and its body whole, and records it.
func (sc *srvConn) read() (*seen, error) {
	req, err := http.ReadRequest(sc.br)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	s := seen{
		conn:    sc.id,
		method:  req.Method,
		target:  req.RequestURI,
		host:    req.Host,
		header:  req.Header,
		length:  req.ContentLength,
		te:      req.TransferEncoding,
		body:    string(body),
		trailer: req.Trailer,
		close:   req.Close,
	}
	sc.b.mu.Lock()
	sc.b.reqs = append(sc.b.reqs, s)
	sc.b.mu.Unlock()
	return &s, nil
}

func (sc *srvConn) write(s string) {
	sc.nc.Write([]byte(s)) // a failed write shows to the client
}

// waitClosed blocks until the client closes the connection (or sends
// something, which no test here does after its last request).
func (sc *srvConn) waitClosed() {
	sc.br.Peek(1)
}

const ok200 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// answer returns a serve that answers every request with resp.
func answer(resp string) func(*srvConn) {
	return func(sc *srvConn) {
		for {
			if _, err := sc.read(); err != nil {
				return
			}
			sc.write(resp)
		}
	}
}

// newTransport returns a Transport for b, closed at cleanup, and the
// number of dials it has made.
func newTransport(t *testing.T, b *backend, cfg Config) (*Transport, *atomic.Int32) {
	t.Helper()
	cfg.Addr = b.addr
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dials := new(atomic.Int32)
	tr.testHookDialed = func() { dials.Add(1) }
	t.Cleanup(func() { closeTransport(t, tr) })
	return tr, dials
}

// closeTransport calls tr.Close, failing the test if it does not return.
func closeTransport(t *testing.T, tr *Transport) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		tr.Close()
		close(done)
	}()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Errorf("Transport.Close did not return within %s: a body writer is stuck", waitLimit)
	}
}

func newRequest(t *testing.T, method string, b *backend, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+b.addr+target, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends req and reads the response body whole, within waitLimit.
func do(t *testing.T, tr *Transport, req *http.Request) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), waitLimit)
	defer cancel()
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: RoundTrip error %v, want a response", req.Method, req.URL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the response body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

type result struct {
	resp *http.Response
	err  error
}

// goRoundTrip runs tr.RoundTrip(req) on a goroutine and delivers its
// result. The goroutine belongs to b, whose cleanup joins it after closing
// the connections, so that a RoundTrip stuck by a bug ends with the test.
func goRoundTrip(b *backend, tr *Transport, req *http.Request) <-chan result {
	ch := make(chan result, 1)
	b.wg.Go(func() {
		resp, err := tr.RoundTrip(req)
		ch <- result{resp, err}
	})
	return ch
}

// pipeBody returns a request body fed by the test, closed with an error at
// cleanup so that nothing blocks on it past the test.
func pipeBody(t *testing.T) (*io.PipeReader, *io.PipeWriter) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test ended")) })
	return pr, pw
}

// closeRecorder is a request body that records its Close.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error {
	c.closed.Store(true)
	return nil
}

// errReader fails every Read.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// h1Goroutines returns the stacks of the goroutines running (or created
// by) this package's non-test code.
func h1Goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, line := range strings.Split(g, "\n") {
			if strings.Contains(line, "/proxy/h1/") && !strings.Contains(line, "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func checkNoGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		left := h1Goroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close, %d goroutines still run proxy/h1 code, want 0:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"defaults", Config{Addr: "127.0.0.1:8080"}, false},
		{"all set", Config{Addr: "backend:80", DialTimeout: time.Second, ResponseHeaderTimeout: time.Second, MaxIdleConns: 1, IdleConnTimeout: time.Second}, false},
		{"no Addr", Config{}, true},
		{"Addr without port", Config{Addr: "backend"}, true},
		{"negative DialTimeout", Config{Addr: "backend:80", DialTimeout: -1}, true},
		{"negative ResponseHeaderTimeout", Config{Addr: "backend:80", ResponseHeaderTimeout: -1}, true},
		{"negative IdleConnTimeout", Config{Addr: "backend:80", IdleConnTimeout: -1}, true},
		{"negative MaxIdleConns", Config{Addr: "backend:80", MaxIdleConns: -1}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(tt.cfg)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("New(%+v) error = %v, want error: %t", tt.cfg, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if tt.cfg.DialTimeout == 0 && tr.dialer.Timeout != DefaultDialTimeout {
				t.Errorf("dial timeout = %s, want %s", tr.dialer.Timeout, DefaultDialTimeout)
			}
			if tt.cfg.MaxIdleConns == 0 && tr.maxIdle != DefaultMaxIdleConns {
				t.Errorf("MaxIdleConns = %d, want %d", tr.maxIdle, DefaultMaxIdleConns)
			}
			if tt.cfg.IdleConnTimeout == 0 && tr.idleTimeout != DefaultIdleConnTimeout {
				t.Errorf("IdleConnTimeout = %s, want %s", tr.idleTimeout, DefaultIdleConnTimeout)
			}
		})
	}
}

// TestRetry: a request that failed on a reused connection the backend
// closed without answering goes out again only when it is replayable.
func TestRetry(t *testing.T) {
	for _, tt := range []struct {
		name      string
		method    string
		header    string // an idempotency header to set, if any
		noGetBody bool
		wantRetry bool
	}{
		{"POST is never sent twice", "POST", "", false, false},
		{"GET is retried", "GET", "", false, true},
		{"POST with Idempotency-Key and GetBody is retried", "POST", "Idempotency-Key", false, true},
		{"POST with X-Idempotency-Key and GetBody is retried", "POST", "X-Idempotency-Key", false, true},
		{"POST with Idempotency-Key without GetBody is not retried", "POST", "Idempotency-Key", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Each connection answers its first request, then reads the
			// second whole and closes without a word.
			b := newBackend(t, func(sc *srvConn) {
				if _, err := sc.read(); err != nil {
					return
				}
				sc.write(ok200)
				sc.read()
			})
			tr, dials := newTransport(t, b, Config{})
			var body func() io.Reader
			if tt.method == "POST" {
				body = func() io.Reader { return strings.NewReader(`{"features":[1,2,3]}`) }
			} else {
				body = func() io.Reader { return nil }
			}

			do(t, tr, newRequest(t, tt.method, b, "/first", body()))
			if got := tr.IdleConns(); got != 1 {
				t.Fatalf("after the first request IdleConns() = %d, want 1", got)
			}

			req := newRequest(t, tt.method, b, "/second", body())
			if tt.header != "" {
				req.Header.Set(tt.header, "key-1")
			}
			if tt.noGetBody {
				req.GetBody = nil
			}
			resp, err := tr.RoundTrip(req)
			if tt.wantRetry {
				if err != nil {
					t.Fatalf("second RoundTrip error %v, want it retried and answered", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			} else {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("second RoundTrip got %s, want an error", resp.Status)
				}
			}

			reqs := b.requests()
			wantSeen, wantDials := 2, int32(1)
			if tt.wantRetry {
				wantSeen, wantDials = 3, 2
			}
			if len(reqs) != wantSeen {
				t.Fatalf("backend read %d requests, want %d: %+v", len(reqs), wantSeen, reqs)
			}
			if got := dials.Load(); got != wantDials {
				t.Errorf("dials = %d, want %d", got, wantDials)
			}
			if tt.wantRetry {
				first, again := reqs[1], reqs[2]
				if first.conn == again.conn {
					t.Errorf("retry went out on connection %d, the one that failed; want a new one", again.conn)
				}
				if again.target != "/second" || again.body != first.body {
					t.Errorf("retry = %s %q, want %s %q (the same request again)", again.target, again.body, first.target, first.body)
				}
				if got := again.header.Get(tt.header); tt.header != "" && got != "key-1" {
					t.Errorf("retry %s = %q, want %q", tt.header, got, "key-1")
				}
			}
		})
	}
}

// TestNoRetryOnFreshConnection: a connection that carried nothing before
// gives no reason to think the backend closed it while idle.
func TestNoRetryOnFreshConnection(t *testing.T) {
	b := newBackend(t, func(sc *srvConn) { sc.read() })
	tr, dials := newTransport(t, b, Config{})
	resp, err := tr.RoundTrip(newRequest(t, "GET", b, "/", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("RoundTrip got %s, want an error", resp.Status)
	}
	if got := b.nreqs(); got != 1 {
		t.Errorf("backend read %d requests, want 1", got)
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("dials = %d, want 1", got)
	}
}

// TestIdleCloseDetectedBeforeReuse: a pooled connection the backend has
// closed is found dead before a request is written to it.
// TestIdleCloseDetectedBeforeReuse: a connection the backend closed while
// it sat idle is found before reuse, so that a POST on it is not lost: on
// every reuse (CheckIdleAfter zero), and with CheckIdleAfter once the
// connection has been idle that long.
func TestIdleCloseDetectedBeforeReuse(t *testing.T) {
	for _, tt := range []struct {
		name       string
		checkAfter time.Duration
		idleFor    time.Duration // moved back on the pooled connection's clock
	}{
		{"every reuse checked", 0, 0},
		{"idle past CheckIdleAfter", time.Hour, 2 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(sc *srvConn) {
				if _, err := sc.read(); err == nil {
					sc.write(ok200) // and close, as gunicorn does past its keep-alive
				}
			})
			tr, dials := newTransport(t, b, Config{CheckIdleAfter: tt.checkAfter, IdleConnTimeout: 24 * time.Hour})

			do(t, tr, newRequest(t, "POST", b, "/", strings.NewReader("one")))
			if got := tr.IdleConns(); got != 1 {
				t.Fatalf("IdleConns() = %d, want 1", got)
			}
			waitFor(t, waitLimit, "the backend to close its first connection", func() bool { return b.nended() == 1 })
			waitFor(t, waitLimit, "the backend's FIN to reach the pooled connection", func() bool {
				tr.mu.Lock()
				defer tr.mu.Unlock()
				return len(tr.idle) == 1 && peerClosed(tr.idle[0].nc)
			})
			tr.mu.Lock()
			tr.idle[0].idleSince = tr.idle[0].idleSince.Add(-tt.idleFor)
			tr.mu.Unlock()

			if _, body := do(t, tr, newRequest(t, "POST", b, "/", strings.NewReader("two"))); body != "ok" {
				t.Errorf("second POST body = %q, want %q", body, "ok")
			}
			var bodies []string
			for _, r := range b.requests() {
				bodies = append(bodies, r.body)
			}
			if got, want := strings.Join(bodies, ","), "one,two"; got != want {
				t.Errorf("backend read POST bodies %s, want %s", got, want)
			}
			if got := dials.Load(); got != 2 {
				t.Errorf("dials = %d, want 2", got)
			}
		})
	}
}

// TestCheckIdleAfterSkipsRecentConnections: a connection back in the pool
// for less than CheckIdleAfter is reused without asking the kernel, so a
// close the backend made in that moment is found by the request itself: a
// POST then fails (it is never sent twice), a GET is sent again. This is
// the trade-off CheckIdleAfter makes; scoregate sets it far below any
// keep-alive timeout.
func TestCheckIdleAfterSkipsRecentConnections(t *testing.T) {
	for _, tt := range []struct {
		method      string
		wantErr     bool
		wantBackend int
	}{{"POST", true, 1}, {"GET", false, 2}} {
		t.Run(tt.method, func(t *testing.T) {
			b := newBackend(t, func(sc *srvConn) {
				if _, err := sc.read(); err == nil {
					sc.write(ok200) // and close
				}
			})
			tr, _ := newTransport(t, b, Config{CheckIdleAfter: time.Hour})
			do(t, tr, newRequest(t, tt.method, b, "/", nil))
			waitFor(t, waitLimit, "the backend's FIN to reach the pooled connection", func() bool {
				tr.mu.Lock()
				defer tr.mu.Unlock()
				return len(tr.idle) == 1 && peerClosed(tr.idle[0].nc)
			})
			resp, err := tr.RoundTrip(newRequest(t, tt.method, b, "/", nil))
			if err == nil {
				resp.Body.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("%s on the closed connection: err = %v, want error %v", tt.method, err, tt.wantErr)
			}
			if got := len(b.requests()); got != tt.wantBackend {
				t.Errorf("the backend read %d requests, want %d", got, tt.wantBackend)
			}
		})
	}
}

func TestPeerClosed(t *testing.T) {
	var wg sync.WaitGroup
	defer wg.Wait() // after ln.Close, deferred below
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	wg.Go(func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	srv := recv(t, accepted, "the accepted connection")
	if srv == nil {
		t.Fatal("Accept failed")
	}
	defer srv.Close()

	if peerClosed(nc) {
		t.Fatal("peerClosed on an idle open connection = true, want false")
	}
	srv.Write([]byte("x"))
	waitFor(t, waitLimit, "peerClosed to see unasked data", func() bool { return peerClosed(nc) })
	buf := make([]byte, 1)
	if n, err := nc.Read(buf); n != 1 || buf[0] != 'x' {
		t.Fatalf("Read after peerClosed = %d, %v, %q; want the peeked byte still there", n, err, buf[:n])
	}
	if peerClosed(nc) {
		t.Fatal("peerClosed after the data was read = true, want false")
	}
	srv.Close()
	waitFor(t, waitLimit, "peerClosed to see the close", func() bool { return peerClosed(nc) })
}

func TestPool(t *testing.T) {
	t.Run("sequential requests reuse one connection", func(t *testing.T) {
		b := newBackend(t, answer(ok200))
		tr, dials := newTransport(t, b, Config{})
		for i := range 5 {
			do(t, tr, newRequest(t, "POST", b, fmt.Sprintf("/%d", i), strings.NewReader("x")))
		}
		if got := dials.Load(); got != 1 {
			t.Errorf("dials = %d, want 1", got)
		}
		if got := b.naccepted(); got != 1 {
			t.Errorf("backend accepted %d connections, want 1", got)
		}
		if got := tr.IdleConns(); got != 1 {
			t.Errorf("IdleConns() = %d, want 1", got)
		}
	})

	t.Run("the most recently used connection is reused first", func(t *testing.T) {
		gate := make(chan struct{})
		b := newBackend(t, func(sc *srvConn) {
			for {
				if _, err := sc.read(); err != nil {
					return
				}
				select {
				case <-gate:
				case <-sc.b.done:
					return
				}
				body := fmt.Sprintf("c%d", sc.id)
				sc.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
			}
		})
		tr, _ := newTransport(t, b, Config{})
		r1 := goRoundTrip(b, tr, newRequest(t, "GET", b, "/1", nil))
		r2 := goRoundTrip(b, tr, newRequest(t, "GET", b, "/2", nil))
		waitFor(t, waitLimit, "both requests at the backend", func() bool { return b.nreqs() == 2 })
		close(gate)
		var bodies []string
		for _, ch := range []<-chan result{r1, r2} {
			res := recv(t, ch, "a response")
			if res.err != nil {
				t.Fatal(res.err)
			}
			body, _ := io.ReadAll(res.resp.Body) // back to the pool, r1's first
			res.resp.Body.Close()
			bodies = append(bodies, string(body))
		}
		if got := tr.IdleConns(); got != 2 {
			t.Fatalf("IdleConns() = %d, want 2", got)
		}
		_, got := do(t, tr, newRequest(t, "GET", b, "/3", nil))
		if want := bodies[1]; got != want {
			t.Errorf("third request answered by %s, want %s (the last one pooled)", got, want)
		}
	})

	t.Run("an expired idle connection is closed, not reused", func(t *testing.T) {
		b := newBackend(t, answer(ok200))
		tr, dials := newTransport(t, b, Config{IdleConnTimeout: time.Minute})
		do(t, tr, newRequest(t, "GET", b, "/", nil))
		tr.mu.Lock()
		if len(tr.idle) != 1 {
			tr.mu.Unlock()
			t.Fatalf("%d idle connections, want 1", len(tr.idle))
		}
		tr.idle[0].idleSince = time.Now().Add(-2 * time.Minute)
		tr.mu.Unlock()

		do(t, tr, newRequest(t, "GET", b, "/", nil))
		if got := dials.Load(); got != 2 {
			t.Errorf("dials = %d, want 2", got)
		}
		if got := tr.IdleConns(); got != 1 {
			t.Errorf("IdleConns() = %d, want 1 (the new connection)", got)
		}
		waitFor(t, waitLimit, "the expired connection to be closed", func() bool { return b.nended() == 1 })
		if got := b.requests()[1].conn; got != 2 {
			t.Errorf("second request came on connection %d, want 2", got)
		}
	})

	t.Run("MaxIdleConns", func(t *testing.T) {
		gate := make(chan struct{})
		b := newBackend(t, func(sc *srvConn) {
			for {
				if _, err := sc.read(); err != nil {
					return
				}
				select {
				case <-gate:
				case <-sc.b.done:
					return
				}
				sc.write(ok200)
			}
		})
		tr, _ := newTransport(t, b, Config{MaxIdleConns: 2})
		var chs []<-chan result
		for i := range 3 {
			chs = append(chs, goRoundTrip(b, tr, newRequest(t, "GET", b, fmt.Sprintf("/%d", i), nil)))
		}
		waitFor(t, waitLimit, "three requests at the backend", func() bool { return b.nreqs() == 3 })
		close(gate)
		for _, ch := range chs {
			res := recv(t, ch, "a response")
			if res.err != nil {
				t.Fatal(res.err)
			}
			io.Copy(io.Discard, res.resp.Body)
			res.resp.Body.Close()
		}
		if got := tr.IdleConns(); got != 2 {
			t.Errorf("IdleConns() = %d, want 2", got)
		}
		waitFor(t, waitLimit, "the third connection to be closed", func() bool { return b.nended() == 1 })
	})

	for _, tt := range []struct {
		name   string
		resp   string
		close  bool // req.Close
		readTo int  // bytes of the body to read before Close; -1: all
	}{
		{"a body closed before EOF closes the connection", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000), false, 10},
		{"a response with Connection: close is not pooled", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, -1},
		{"a request with Close is not pooled", ok200, true, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, answer(tt.resp)) // keeps the connection open
			tr, dials := newTransport(t, b, Config{})
			req := newRequest(t, "GET", b, "/", nil)
			req.Close = tt.close
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.readTo < 0 {
				io.Copy(io.Discard, resp.Body)
			} else {
				io.ReadFull(resp.Body, make([]byte, tt.readTo))
			}
			resp.Body.Close()
			if got := tr.IdleConns(); got != 0 {
				t.Errorf("IdleConns() = %d, want 0", got)
			}
			waitFor(t, waitLimit, "the client to close the connection", func() bool { return b.nended() == 1 })
			if tt.close && !b.requests()[0].close {
				t.Error("backend saw no Connection: close, want it")
			}
			do(t, tr, newRequest(t, "GET", b, "/", nil))
			if got := dials.Load(); got != 2 {
				t.Errorf("dials = %d, want 2", got)
			}
		})
	}

	t.Run("Close closes idle connections and leaves the Transport usable", func(t *testing.T) {
		b := newBackend(t, answer(ok200))
		tr, dials := newTransport(t, b, Config{})
		do(t, tr, newRequest(t, "GET", b, "/", nil))
		tr.Close()
		if got := tr.IdleConns(); got != 0 {
			t.Errorf("IdleConns() after Close = %d, want 0", got)
		}
		waitFor(t, waitLimit, "the idle connection to be closed", func() bool { return b.nended() == 1 })
		do(t, tr, newRequest(t, "GET", b, "/", nil))
		if got := dials.Load(); got != 2 {
			t.Errorf("dials = %d, want 2", got)
		}
	})
}

// asyncProbe is a request body that records whether it was read by the
// body writer goroutine or by the caller of RoundTrip.
type asyncProbe struct {
	r io.Reader

	mu     sync.Mutex
	read   bool
	writer bool // the first Read ran in writeBody
}

func (p *asyncProbe) Read(b []byte) (int, error) {
	p.mu.Lock()
	if !p.read {
		p.read = true
		buf := make([]byte, 16<<10)
		p.writer = strings.Contains(string(buf[:runtime.Stack(buf, false)]), ".writeBody(")
	}
	p.mu.Unlock()
	return p.r.Read(b)
}

func (p *asyncProbe) Close() error { return nil }

func (p *asyncProbe) byWriter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writer
}

func TestRequestFraming(t *testing.T) {
	const trailerKey = "X-Checksum"
	for _, tt := range []struct {
		name      string
		method    string
		body      string
		noBody    bool  // Body nil
		length    int64 // req.ContentLength
		trailer   bool
		wantLen   int64 // ContentLength as the backend read it
		wantTE    string
		wantAsync bool
	}{
		{"small sized body", "POST", "score me", false, 8, false, 8, "", false},
		{"sized body of SyncBodyLimit", "POST", strings.Repeat("a", SyncBodyLimit), false, SyncBodyLimit, false, SyncBodyLimit, "", false},
		{"sized body over SyncBodyLimit", "POST", strings.Repeat("b", SyncBodyLimit+1), false, SyncBodyLimit + 1, false, SyncBodyLimit + 1, "", true},
		{"large sized body", "PUT", strings.Repeat("c", 1<<20), false, 1 << 20, false, 1 << 20, "", true},
		{"unknown length is chunked, with trailer", "POST", "streamed", false, -1, true, -1, "chunked", true},
		{"ContentLength 0 with a body is chunked", "POST", "zero but not empty", false, 0, false, -1, "chunked", true},
		{"large unknown length", "POST", strings.Repeat("d", 100000), false, -1, true, -1, "chunked", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, answer(ok200))
			tr, _ := newTransport(t, b, Config{})
			req := newRequest(t, tt.method, b, "/v1/score", nil)
			probe := &asyncProbe{r: strings.NewReader(tt.body)}
			req.Body = probe
			req.ContentLength = tt.length
			if tt.trailer {
				req.Trailer = http.Header{trailerKey: {"abc123"}}
			}
			do(t, tr, req)

			s := b.requests()[0]
			if s.body != tt.body {
				t.Errorf("backend read a body of %d bytes, want the %d sent", len(s.body), len(tt.body))
			}
			if s.length != tt.wantLen {
				t.Errorf("backend ContentLength = %d, want %d", s.length, tt.wantLen)
			}
			if got := strings.Join(s.te, ","); got != tt.wantTE {
				t.Errorf("backend Transfer-Encoding = %q, want %q", got, tt.wantTE)
			}
			if tt.trailer {
				if got := s.trailer.Get(trailerKey); got != "abc123" {
					t.Errorf("backend trailer %s = %q, want %q", trailerKey, got, "abc123")
				}
			}
			if got := probe.byWriter(); got != tt.wantAsync {
				t.Errorf("body read by the writer goroutine = %t, want %t", got, tt.wantAsync)
			}
		})
	}
}

func TestRequestHead(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(*http.Request)
		check func(t *testing.T, s seen, b *backend)
	}{
		{"POST without a body says Content-Length: 0", func(r *http.Request) { r.Method = "POST" }, func(t *testing.T, s seen, _ *backend) {
			if got := s.header.Values("Content-Length"); len(got) != 1 || got[0] != "0" {
				t.Errorf("Content-Length = %q, want [0]", got)
			}
		}},
		{"POST with NoBody says Content-Length: 0", func(r *http.Request) { r.Method = "POST"; r.Body = http.NoBody }, func(t *testing.T, s seen, _ *backend) {
			if got := s.header.Values("Content-Length"); len(got) != 1 || got[0] != "0" {
				t.Errorf("Content-Length = %q, want [0]", got)
			}
		}},
		{"GET without a body has no framing headers", func(*http.Request) {}, func(t *testing.T, s seen, _ *backend) {
			if got := s.header.Values("Content-Length"); got != nil {
				t.Errorf("Content-Length = %q, want none", got)
			}
			if s.te != nil {
				t.Errorf("Transfer-Encoding = %q, want none", s.te)
			}
		}},
		{"an empty User-Agent is not sent", func(r *http.Request) { r.Header.Set("User-Agent", "") }, func(t *testing.T, s seen, _ *backend) {
			if got, ok := s.header["User-Agent"]; ok {
				t.Errorf("User-Agent = %q, want none", got)
			}
		}},
		{"a User-Agent is sent", func(r *http.Request) { r.Header.Set("User-Agent", "scoregate/1") }, func(t *testing.T, s seen, _ *backend) {
			if got := s.header.Get("User-Agent"); got != "scoregate/1" {
				t.Errorf("User-Agent = %q, want %q", got, "scoregate/1")
			}
		}},
		{"Host from req.Host", func(r *http.Request) { r.Host = "score.internal" }, func(t *testing.T, s seen, _ *backend) {
			if s.host != "score.internal" {
				t.Errorf("Host = %q, want %q", s.host, "score.internal")
			}
		}},
		{"Host from the URL", func(r *http.Request) { r.Host = "" }, func(t *testing.T, s seen, b *backend) {
			if s.host != b.addr {
				t.Errorf("Host = %q, want %q", s.host, b.addr)
			}
		}},
		{"Host, Content-Length and Transfer-Encoding headers are not copied", func(r *http.Request) {
			r.Header.Set("Host", "evil.example")
			r.Header.Set("Content-Length", "99")
			r.Header.Set("Transfer-Encoding", "chunked")
		}, func(t *testing.T, s seen, b *backend) {
			if s.host != b.addr || s.length != 0 || s.te != nil {
				t.Errorf("Host, ContentLength, Transfer-Encoding = %q, %d, %q; want %q, 0, none", s.host, s.length, s.te, b.addr)
			}
		}},
		{"target and headers sent as they are", func(r *http.Request) {
			r.URL.RawPath = "/v1/a%2Fb"
			r.URL.Path = "/v1/a/b"
			r.URL.RawQuery = "x=1&y=%20"
			r.Header["X-Multi"] = []string{"1", "2"}
		}, func(t *testing.T, s seen, _ *backend) {
			if want := "/v1/a%2Fb?x=1&y=%20"; s.target != want {
				t.Errorf("target = %q, want %q", s.target, want)
			}
			if got := s.header.Values("X-Multi"); strings.Join(got, ",") != "1,2" {
				t.Errorf("X-Multi = %q, want [1 2]", got)
			}
		}},
		{"req.Close sends Connection: close", func(r *http.Request) { r.Close = true }, func(t *testing.T, s seen, _ *backend) {
			if !s.close {
				t.Error("backend saw no Connection: close, want it")
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, answer(ok200))
			tr, _ := newTransport(t, b, Config{})
			req := newRequest(t, "GET", b, "/", nil)
			tt.setup(req)
			do(t, tr, req)
			tt.check(t, b.requests()[0], b)
		})
	}
}

func TestResponseFraming(t *testing.T) {
	for _, tt := range []struct {
		name       string
		method     string
		resp       string
		closeAfter bool // the backend closes after the response
		wantBody   string
		wantLen    int64
		wantPooled bool
	}{
		{"HEAD with Content-Length and no body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false, "", 1000, true},
		{"204 No Content", "GET", "HTTP/1.1 204 No Content\r\n\r\n", false, "", 0, true},
		{"Content-Length: 0", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, "", 0, true},
		{"Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, "hello", 5, true},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", false, "abcde", -1, true},
		{"close-delimited", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true, "until the end", -1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(sc *srvConn) {
				for {
					if _, err := sc.read(); err != nil {
						return
					}
					sc.write(tt.resp)
					if tt.closeAfter {
						return
					}
				}
			})
			tr, dials := newTransport(t, b, Config{})
			for i := range 2 {
				resp, body := do(t, tr, newRequest(t, tt.method, b, "/", nil))
				if body != tt.wantBody || resp.ContentLength != tt.wantLen {
					t.Errorf("request %d: body %q, ContentLength %d; want %q, %d", i, body, resp.ContentLength, tt.wantBody, tt.wantLen)
				}
			}
			wantIdle, wantDials := 0, int32(2)
			if tt.wantPooled {
				wantIdle, wantDials = 1, 1
			}
			if got := tr.IdleConns(); got != wantIdle {
				t.Errorf("IdleConns() = %d, want %d", got, wantIdle)
			}
			if got := dials.Load(); got != wantDials {
				t.Errorf("dials for two requests = %d, want %d", got, wantDials)
			}
		})
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	for _, tt := range []struct {
		name   string
		length int64 // -1: chunked, written by the body writer
	}{
		{"sized body written by RoundTrip", 10},
		{"streamed body written by the writer goroutine", -1},
	} {
		newReq := func(t *testing.T, b *backend) (*http.Request, *io.PipeWriter) {
			pr, pw := pipeBody(t)
			req := newRequest(t, "POST", b, "/", nil)
			req.Body = pr
			req.ContentLength = tt.length
			return req, pw
		}

		t.Run(tt.name+": the clock starts when the body is written", func(t *testing.T) {
			b := newBackend(t, answer(ok200))
			tr, _ := newTransport(t, b, Config{ResponseHeaderTimeout: timeout})
			req, pw := newReq(t, b)
			res := goRoundTrip(b, tr, req)
			if _, err := pw.Write([]byte("01234")); err != nil { // returns once the Transport has read it
				t.Fatal(err)
			}
			// The body takes longer than the timeout: what this test is about.
			<-time.After(2 * timeout)
			pw.Write([]byte("56789"))
			pw.Close()
			r := recv(t, res, "the response")
			if r.err != nil {
				t.Fatalf("RoundTrip error %v, want a response: the timeout must not run while the body is written", r.err)
			}
			io.Copy(io.Discard, r.resp.Body)
			r.resp.Body.Close()
			if got := b.requests()[0].body; got != "0123456789" {
				t.Errorf("backend read body %q, want %q", got, "0123456789")
			}
		})

		t.Run(tt.name+": a backend that never answers times out", func(t *testing.T) {
			b := newBackend(t, func(sc *srvConn) {
				if _, err := sc.read(); err == nil {
					sc.waitClosed()
				}
			})
			tr, _ := newTransport(t, b, Config{ResponseHeaderTimeout: timeout})
			req, pw := newReq(t, b)
			res := goRoundTrip(b, tr, req)
			pw.Write([]byte("01234"))
			var end time.Time // when the body ends, or a little before
			if tt.length < 0 {
				pw.Write([]byte("56789"))
				end = time.Now() // a chunked body ends when the pipe is closed
				pw.Close()
			} else {
				end = time.Now() // a sized body ends with its last byte
				pw.Write([]byte("56789"))
				pw.Close()
			}
			r := recv(t, res, "RoundTrip to time out")
			elapsed := time.Since(end)
			if r.err == nil {
				r.resp.Body.Close()
				t.Fatalf("RoundTrip got %s, want a timeout", r.resp.Status)
			}
			var ne net.Error
			if !errors.As(r.err, &ne) || !ne.Timeout() {
				t.Errorf("RoundTrip error %v, want a net.Error with Timeout() true", r.err)
			}
			if elapsed < timeout {
				t.Errorf("timed out %s after the body was written, want at least %s", elapsed, timeout)
			}
			waitFor(t, waitLimit, "the connection to be closed", func() bool { return b.nended() == 1 })
		})
	}
}

func TestCancel(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   string
		before bool // cancel before RoundTrip
	}{
		{"while waiting for the headers", "", false},
		{"while waiting for the headers, after a body", "score me", false},
		{"before RoundTrip", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(sc *srvConn) {
				if _, err := sc.read(); err == nil {
					sc.waitClosed()
				}
			})
			tr, dials := newTransport(t, b, Config{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var body io.Reader
			method := "GET"
			if tt.body != "" {
				body, method = strings.NewReader(tt.body), "POST"
			}
			req := newRequest(t, method, b, "/", body).WithContext(ctx)
			if tt.before {
				cancel()
			}
			res := goRoundTrip(b, tr, req)
			if !tt.before {
				waitFor(t, waitLimit, "the request at the backend", func() bool { return b.nreqs() == 1 })
				cancel()
			}
			r := recv(t, res, "RoundTrip to return after cancel")
			if !errors.Is(r.err, context.Canceled) {
				if r.err == nil {
					r.resp.Body.Close()
				}
				t.Fatalf("RoundTrip error %v, want context.Canceled", r.err)
			}
			if tt.before {
				if got := dials.Load(); got != 0 {
					t.Errorf("dials = %d, want 0", got)
				}
				return
			}
			waitFor(t, waitLimit, "the connection to be closed", func() bool { return b.nended() == 1 })
			if got := tr.IdleConns(); got != 0 {
				t.Errorf("IdleConns() = %d, want 0", got)
			}
		})
	}
}

// TestCancelWhileRequestBodyStreams: cancelling a request whose body
// writer waits for the next body bytes must not wait for them.
func TestCancelWhileRequestBodyStreams(t *testing.T) {
	headSeen := make(chan struct{})
	b := newBackend(t, func(sc *srvConn) {
		if _, err := http.ReadRequest(sc.br); err != nil {
			return
		}
		close(headSeen)
		<-sc.b.done
	})
	tr, _ := newTransport(t, b, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := pipeBody(t)
	req := newRequest(t, "POST", b, "/", nil).WithContext(ctx)
	req.Body, req.ContentLength = pr, -1
	res := goRoundTrip(b, tr, req)
	pw.Write([]byte("the first part")) // the writer now waits in Read for more
	recv(t, headSeen, "the request head at the backend")
	cancel()
	timer := time.NewTimer(2 * time.Second)
	defer timer.Stop()
	select {
	case r := <-res:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("RoundTrip error %v, want context.Canceled", r.err)
		}
	case <-timer.C:
		pw.CloseWithError(errors.New("test gave up")) // lets RoundTrip return
		r := <-res
		t.Fatalf("RoundTrip still blocked 2s after cancel; it returned (%v) only once the request body ended", r.err)
	}
}

func TestInformationalResponses(t *testing.T) {
	const early = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
	errTrace := errors.New("trace refused the 1xx")
	for _, tt := range []struct {
		name      string
		resp      string
		traceErr  error
		wantErr   bool
		want1xx   int // Got1xxResponse calls, all with 103 and the Link
		wantCodes string
	}{
		{"103 goes to Got1xxResponse", early + ok200, nil, false, 1, "103"},
		{"100 Continue does not", "HTTP/1.1 100 Continue\r\n\r\n" + ok200, nil, false, 0, ""},
		{"five 1xx are allowed", strings.Repeat(early, 5) + ok200, nil, false, 5, "103,103,103,103,103"},
		{"six 1xx are too many", strings.Repeat(early, 6) + ok200, nil, true, 5, "103,103,103,103,103"},
		// The 200 after it tells a 101 taken for another 1xx.
		{"101 Switching Protocols is an error", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + ok200, nil, true, 0, ""},
		{"an error from Got1xxResponse ends the request", early + ok200, errTrace, true, 1, "103"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, answer(tt.resp))
			tr, _ := newTransport(t, b, Config{})
			var codes []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				codes = append(codes, fmt.Sprint(code))
				if got := h.Get("Link"); got != "</a.css>" {
					t.Errorf("1xx Link = %q, want %q", got, "</a.css>")
				}
				return tt.traceErr
			}}
			req := newRequest(t, "GET", b, "/", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			resp, err := tr.RoundTrip(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "ok" {
					t.Errorf("response %d %q, want 200 %q", resp.StatusCode, body, "ok")
				}
			}
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("RoundTrip error = %v, want error: %t", err, tt.wantErr)
			}
			if tt.traceErr != nil && !errors.Is(err, tt.traceErr) {
				t.Errorf("RoundTrip error = %v, want it to wrap %v", err, tt.traceErr)
			}
			if got := strings.Join(codes, ","); got != tt.wantCodes {
				t.Errorf("Got1xxResponse codes = %q, want %q", got, tt.wantCodes)
			}
		})
	}
}

// TestDoGot1xx: Do hands interim responses to its got1xx instead of the
// request's trace.
func TestDoGot1xx(t *testing.T) {
	b := newBackend(t, answer("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+ok200))
	tr, _ := newTransport(t, b, Config{})
	traced := false
	trace := &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { traced = true; return nil }}
	req := newRequest(t, "GET", b, "/", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	var got []string
	resp, err := tr.Do(req, func(code int, h http.Header) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if want := "103 </a.css>"; strings.Join(got, ",") != want {
		t.Errorf("got1xx calls = %q, want [%s]", got, want)
	}
	if traced {
		t.Error("trace Got1xxResponse called too, want only got1xx")
	}
}

func TestRefusedRequests(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(*http.Request)
	}{
		{"method with a space", func(r *http.Request) { r.Method = "GET /x" }},
		{"empty method", func(r *http.Request) { r.Method = "" }},
		{"method with CRLF", func(r *http.Request) { r.Method = "GET\r\n" }},
		{"no URL", func(r *http.Request) { r.URL = nil }},
		{"target with a space", func(r *http.Request) { r.URL.Opaque = "/a b" }},
		{"target with a tab", func(r *http.Request) { r.URL.RawQuery = "a=\tb" }},
		{"target with CRLF", func(r *http.Request) { r.URL.RawQuery = "a=1\r\nX-Evil: 1" }},
		{"target with non-ASCII", func(r *http.Request) { r.URL.RawQuery = "q=é" }},
		{"target with DEL", func(r *http.Request) { r.URL.Opaque = "/a\x7f" }},
		{"no Host", func(r *http.Request) { r.Host, r.URL.Host = "", "" }},
		{"Host with a space", func(r *http.Request) { r.Host = "a b" }},
		{"header value with CRLF", func(r *http.Request) { r.Header.Set("X-Note", "a\r\nX-Evil: 1") }},
		{"header value with LF", func(r *http.Request) { r.Header.Set("X-Note", "a\nb") }},
		{"header value with NUL", func(r *http.Request) { r.Header.Set("X-Note", "a\x00b") }},
		{"header name with a space", func(r *http.Request) { r.Header["X Note"] = []string{"1"} }},
		{"header name with a colon", func(r *http.Request) { r.Header["X-Note:"] = []string{"1"} }},
		{"empty header name", func(r *http.Request) { r.Header[""] = []string{"1"} }},
		{"trailer name with a space", func(r *http.Request) { r.Trailer = http.Header{"X Sum": nil} }},
		{"trailer value with CRLF", func(r *http.Request) { r.Trailer = http.Header{"X-Sum": {"1\r\n\r\nGET / HTTP/1.1"}} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, answer(ok200))
			tr, dials := newTransport(t, b, Config{})
			body := &closeRecorder{Reader: strings.NewReader("body")}
			req := newRequest(t, "POST", b, "/", body)
			tt.setup(req)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip got %s, want an error", resp.Status)
			}
			if got := dials.Load(); got != 0 {
				t.Errorf("dials = %d, want 0", got)
			}
			if got := b.naccepted(); got != 0 {
				t.Errorf("backend accepted %d connections, want 0", got)
			}
			if !body.closed.Load() {
				t.Error("request body not closed, want it closed")
			}
		})
	}
}

func TestRequestBodyReadError(t *testing.T) {
	errBoom := errors.New("client went away")
	big := strings.Repeat("x", SyncBodyLimit+10)
	for _, tt := range []struct {
		name   string
		body   io.Reader
		length int64
		want   error
	}{
		{"sized body", io.MultiReader(strings.NewReader("abc"), errReader{errBoom}), 10, errBoom},
		{"sized body over SyncBodyLimit", io.MultiReader(strings.NewReader(big), errReader{errBoom}), 2 * SyncBodyLimit, errBoom},
		{"chunked body", io.MultiReader(strings.NewReader("abc"), errReader{errBoom}), -1, errBoom},
		{"sized body too short", strings.NewReader("abc"), 10, ErrBodyTooShort},
		{"sized body over SyncBodyLimit too short", strings.NewReader(big), 2 * SyncBodyLimit, ErrBodyTooShort},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(sc *srvConn) {
				if _, err := sc.read(); err == nil {
					sc.write(ok200)
				}
			})
			// The timeout ends the wait of a Transport that sends a short
			// body as it is, for a backend that waits for the rest.
			tr, dials := newTransport(t, b, Config{ResponseHeaderTimeout: waitLimit})
			body := &closeRecorder{Reader: tt.body}
			req := newRequest(t, "POST", b, "/", nil)
			req.Body, req.ContentLength = body, tt.length
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip got %s, want an error", resp.Status)
			}
			var be *BodyReadError
			if !errors.As(err, &be) {
				t.Errorf("RoundTrip error %v (%T), want a *BodyReadError", err, err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("RoundTrip error %v, want it to wrap %v", err, tt.want)
			}
			if got := dials.Load(); got != 1 {
				t.Errorf("dials = %d, want 1", got)
			}
			if got := b.nreqs(); got != 0 {
				t.Errorf("backend read %d whole requests, want 0", got)
			}
			if !body.closed.Load() {
				t.Error("request body not closed, want it closed")
			}
			waitFor(t, waitLimit, "the connection to be closed", func() bool { return b.nended() == 1 })
		})
	}
}

// TestRoundTripClosesRequestBody: "RoundTrip closes req.Body", as every
// http.RoundTripper must, also when it succeeds.
func TestRoundTripClosesRequestBody(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   string
		length int64
	}{
		{"sized body", "score me", 8},
		{"sized body over SyncBodyLimit", strings.Repeat("x", SyncBodyLimit+1), SyncBodyLimit + 1},
		{"chunked body", "score me", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, answer(ok200))
			tr, _ := newTransport(t, b, Config{})
			body := &closeRecorder{Reader: strings.NewReader(tt.body)}
			req := newRequest(t, "POST", b, "/", nil)
			req.Body, req.ContentLength = body, tt.length
			do(t, tr, req)
			waitFor(t, time.Second, "the request body to be closed", body.closed.Load)
		})
	}
}

// TestResponseBodyReadAfterEOF: a body read to its end keeps saying so,
// as io.Reader callers (bufio.Reader, for one) expect.
func TestResponseBodyReadAfterEOF(t *testing.T) {
	b := newBackend(t, answer(ok200))
	tr, _ := newTransport(t, b, Config{})
	resp, err := tr.RoundTrip(newRequest(t, "GET", b, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, EOF", n, err)
	}
}

// TestFramingHeadersNotCopied: header names the Transport writes itself
// must not reach the backend a second time under another spelling, where
// they would change the body framing (request smuggling).
func TestFramingHeadersNotCopied(t *testing.T) {
	for _, tt := range []struct{ key, value string }{
		{"transfer-encoding", "chunked"},
		{"content-length", "3"},
		{"host", "evil.example"},
		{"trailer", "X-Evil"},
	} {
		key := tt.key
		t.Run(key, func(t *testing.T) {
			heads := make(chan []string, 1)
			b := newBackend(t, func(sc *srvConn) {
				tp := textproto.NewReader(sc.br)
				var lines []string
				for {
					l, err := tp.ReadLine()
					if err != nil || l == "" {
						break
					}
					lines = append(lines, l)
				}
				heads <- lines
				sc.write("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			})
			tr, _ := newTransport(t, b, Config{})
			req := newRequest(t, "POST", b, "/", strings.NewReader("hello"))
			req.Header[key] = []string{tt.value}
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
			head := recv(t, heads, "the request head")
			for _, l := range head[1:] {
				name, _, _ := strings.Cut(l, ":")
				if strings.EqualFold(name, key) && name != textproto.CanonicalMIMEHeaderKey(key) {
					t.Errorf("request head has %q, want only the Transport's own %s", l, textproto.CanonicalMIMEHeaderKey(key))
				}
			}
		})
	}
}

// duplexServe answers each request after the first line of its body,
// reads the rest of the body, records it, waits for late (if not nil) and
// ends the response.
func duplexServe(late <-chan struct{}) func(*srvConn) {
	return func(sc *srvConn) {
		for {
			req, err := http.ReadRequest(sc.br)
			if err != nil {
				return
			}
			body := bufio.NewReader(req.Body)
			first, err := body.ReadString('\n')
			if err != nil {
				return
			}
			sc.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nearly \r\n")
			rest, err := io.ReadAll(body)
			if err != nil {
				return
			}
			sc.b.mu.Lock()
			sc.b.reqs = append(sc.b.reqs, seen{conn: sc.id, body: first + string(rest), trailer: req.Trailer})
			sc.b.mu.Unlock()
			if late != nil {
				select {
				case <-late:
				case <-sc.b.done:
					return
				}
			}
			sc.write("4\r\nlate\r\n0\r\n\r\n")
		}
	}
}

// startDuplex sends a POST whose body streams from a pipe, writes its first
// line and returns the response, which must come before the body ends.
func startDuplex(t *testing.T, tr *Transport, b *backend) (*http.Request, *http.Response, *io.PipeWriter) {
	t.Helper()
	pr, pw := pipeBody(t)
	req := newRequest(t, "POST", b, "/", nil)
	req.Body, req.ContentLength = pr, -1
	req.Trailer = http.Header{"X-Lines": nil}
	res := goRoundTrip(b, tr, req)
	pw.Write([]byte("first line\n"))
	r := recv(t, res, "the response while the request body is still open")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.resp.StatusCode != 200 {
		t.Errorf("status = %d, want 200", r.resp.StatusCode)
	}
	return req, r.resp, pw
}

// TestDuplex: a backend may answer while the request body still streams.
func TestDuplex(t *testing.T) {
	t.Run("the response arrives before the body ends", func(t *testing.T) {
		const timeout = 100 * time.Millisecond
		late := make(chan struct{})
		b := newBackend(t, duplexServe(late))
		tr, _ := newTransport(t, b, Config{ResponseHeaderTimeout: timeout})
		req, resp, pw := startDuplex(t, tr, b)
		req.Trailer.Set("X-Lines", "2") // as net/http: trailer values may be set until the body ends
		pw.Write([]byte("second line\n"))
		pw.Close()
		waitFor(t, waitLimit, "the whole request body at the backend", func() bool { return b.nreqs() == 1 })
		// The response body may take longer than ResponseHeaderTimeout: the
		// writer that ended after the headers came must not start that clock.
		<-time.After(3 * timeout)
		close(late)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "early late" {
			t.Errorf("response body = %q, %v; want %q, nil", body, err, "early late")
		}
		got := b.requests()
		if got[0].body != "first line\nsecond line\n" {
			t.Errorf("backend read body %q, want the two lines", got[0].body)
		}
		if v := got[0].trailer.Get("X-Lines"); v != "2" {
			t.Errorf("trailer X-Lines = %q, want %q", v, "2")
		}
		closeTransport(t, tr)
		checkNoGoroutines(t)
	})

	t.Run("a body never finished ends with the response", func(t *testing.T) {
		b := newBackend(t, duplexServe(nil))
		tr, _ := newTransport(t, b, Config{})
		_, resp, pw := startDuplex(t, tr, b)
		resp.Body.Close()
		if got := tr.IdleConns(); got != 0 {
			t.Errorf("IdleConns() = %d, want 0", got)
		}
		waitFor(t, waitLimit, "the connection to be closed", func() bool { return b.nended() == 1 })
		pw.CloseWithError(errors.New("client went away"))
		closeTransport(t, tr)
		checkNoGoroutines(t)
	})
}

// TestDuplexConnectionReuse: a connection whose response came before the
// request body ended goes back to the pool once both are done. Under -race
// it also checks that the body writer no longer touches the connection
// once it is pooled (it read conn.headersDone after close(w.done) while
// putIdle wrote it).
func TestDuplexConnectionReuse(t *testing.T) {
	b := newBackend(t, duplexServe(nil))
	tr, dials := newTransport(t, b, Config{ResponseHeaderTimeout: waitLimit})
	for i := range 2 {
		_, resp, pw := startDuplex(t, tr, b)
		pw.Write([]byte("second line\n"))
		pw.Close()
		// Let the writer end, so that the connection is pooled.
		waitFor(t, waitLimit, "the body writer to end", func() bool {
			for _, g := range h1Goroutines() {
				if strings.Contains(g, ".writeBody(") {
					return false
				}
			}
			return true
		})
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "early late" {
			t.Fatalf("request %d: response body = %q, %v; want %q, nil", i, body, err, "early late")
		}
		if got := tr.IdleConns(); got != 1 {
			t.Fatalf("request %d: IdleConns() = %d, want 1", i, got)
		}
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("dials = %d, want 1", got)
	}
}

// TestConcurrentRoundTrips runs requests on many goroutines, for the race
// detector, and checks each gets its own answer.
func TestConcurrentRoundTrips(t *testing.T) {
	b := newBackend(t, func(sc *srvConn) {
		for {
			s, err := sc.read()
			if err != nil {
				return
			}
			sc.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(s.body), s.body))
		}
	})
	tr, _ := newTransport(t, b, Config{MaxIdleConns: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				want := fmt.Sprintf("g%d-i%d", g, i)
				var body io.Reader = strings.NewReader(want)
				length := int64(len(want))
				if i%4 == 0 {
					body, length = io.MultiReader(strings.NewReader(want)), -1 // chunked, by the writer goroutine
				}
				req, _ := http.NewRequest("POST", (&url.URL{Scheme: "http", Host: b.addr, Path: "/"}).String(), body)
				req.ContentLength = length
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Errorf("%s: %v", want, err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(got) != want {
					t.Errorf("response = %q, %v; want %q, nil", got, err, want)
				}
			}
		})
	}
	wg.Wait()
	if got := tr.IdleConns(); got > 4 {
		t.Errorf("IdleConns() = %d, want at most 4", got)
	}
}
