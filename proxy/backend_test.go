package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scoregate/scoregate/metrics"
)

// The behaviour tests of the backend seam: each runs over both transports
// (forTransports).

// rawBackend is a plain-HTTP backend on 127.0.0.1 that reads each request
// whole with http.ReadRequest and lets the test write the answer, byte for
// byte, or close the connection instead.
type rawBackend struct {
	ln     net.Listener
	url    string
	answer func(connSeq, reqSeq int, r *http.Request, body []byte, c net.Conn) bool // false: close the connection

	wg sync.WaitGroup

	mu       sync.Mutex
	conns    int      // connections accepted
	closed   int      // connections that ended
	requests []string // "METHOD RequestURI" of every request read whole
}

func startRawBackend(t *testing.T, answer func(connSeq, reqSeq int, r *http.Request, body []byte, c net.Conn) bool) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln, url: "http://" + ln.Addr().String(), answer: answer}
	var open sync.Map // net.Conn → struct{}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns++
			seq := b.conns
			b.mu.Unlock()
			open.Store(c, struct{}{})
			b.wg.Go(func() {
				defer func() {
					c.Close()
					open.Delete(c)
					b.mu.Lock()
					b.closed++
					b.mu.Unlock()
				}()
				br := bufio.NewReader(c)
				for n := 1; ; n++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, err := io.ReadAll(r.Body)
					if err != nil {
						return
					}
					b.mu.Lock()
					b.requests = append(b.requests, r.Method+" "+r.RequestURI)
					b.mu.Unlock()
					if !b.answer(seq, n, r, body, c) {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		b.wg.Wait()
	})
	return b
}

func (b *rawBackend) counts() (conns, closed int, requests []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns, b.closed, append([]string(nil), b.requests...)
}

func answerOK(c net.Conn) bool {
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return err == nil
}

// TestNeverSentTwice: a backend that reads the second request of a
// keep-alive connection whole and dies without answering (a worker killed
// mid-inference). A POST must not reach the model again; a GET, or a POST
// with an idempotency key, is sent again on a new connection, as net/http
// does.
func TestNeverSentTwice(t *testing.T) { forTransports(t, testNeverSentTwice) }

func testNeverSentTwice(t *testing.T, path seamPath) {
	for _, tt := range []struct {
		name, method, header string
		want                 []int
		wantAtBackend        int
	}{
		{"POST", "POST", "", []int{200, 502}, 2},
		{"GET is replayed", "GET", "", []int{200, 200}, 3},
		{"POST with Idempotency-Key is replayed", "POST", "Idempotency-Key", []int{200, 200}, 3},
		{"POST with X-Idempotency-Key is replayed", "POST", "X-Idempotency-Key", []int{200, 200}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			backend := startRawBackend(t, func(_, reqSeq int, r *http.Request, body []byte, c net.Conn) bool {
				return reqSeq < 2 && answerOK(c)
			})
			p := newProxyVia(t, path, backend.url, Config{}, testLog(t))
			for i, want := range tt.want {
				r := httptest.NewRequest(tt.method, "https://"+testCName+"/score", strings.NewReader(`{"n":1}`))
				if tt.header != "" {
					r.Header.Set(tt.header, "key-1")
				}
				w := httptest.NewRecorder()
				p.ServeHTTP(w, r)
				if w.Code != want {
					t.Fatalf("request %d: status = %d, want %d; body %s", i+1, w.Code, want, w.Body)
				}
			}
			if _, _, reqs := backend.counts(); len(reqs) != tt.wantAtBackend {
				t.Errorf("the backend read %d requests %q, want %d", len(reqs), reqs, tt.wantAtBackend)
			}
		})
	}
}

// TestIdleCloseByBackend: a backend with a 300 ms keep-alive timeout
// (gunicorn, waitress, uvicorn) closes the pooled connection between
// requests. No request may fail for it, and none may reach the model twice.
func TestIdleCloseByBackend(t *testing.T) { forTransports(t, testIdleCloseByBackend) }

func testIdleCloseByBackend(t *testing.T, path seamPath) {
	var handled atomic.Int64
	closed := make(chan struct{}, 16)
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	backend.Config.IdleTimeout = 300 * time.Millisecond
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)
	p := newProxyVia(t, path, backend.URL, Config{}, testLog(t))
	closes := countCloses(p)
	for i := range 5 {
		if w := serveOne(t, p, "POST", `{"n":1}`); w.Code != 200 {
			t.Fatalf("POST %d: status = %d, want 200; body %s", i+1, w.Code, w.Body)
		}
		// The backend's idle timeout closes the pooled connection before
		// the next request.
		select {
		case <-closed:
		case <-time.After(waitLimit):
			t.Fatal("the backend never closed the idle connection")
		}
		if path == pathReverseProxyNetHTTP {
			// net/http's Transport learns of the close on its read-loop
			// goroutine; a request that comes first fails (a POST is not
			// retried): its race, which h1's check before reuse closes.
			// Wait for it to drop the connection.
			waitUntil(t, "net/http to drop the closed connection", func() bool { return closes() == int64(i+1) })
		}
	}
	if got := handled.Load(); got != 5 {
		t.Errorf("the backend handled %d POSTs, want 5", got)
	}
}

// countCloses makes p's net/http Transport count the backend connections
// it closes, and returns the count.
func countCloses(p *Proxy) func() int64 {
	var n atomic.Int64
	tr := p.dflt.pool.replicas[0].tr
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &closeCounter{Conn: c, n: &n}, nil
	}
	return n.Load
}

type closeCounter struct {
	net.Conn
	once sync.Once
	n    *atomic.Int64
}

func (c *closeCounter) Close() error {
	c.once.Do(func() { c.n.Add(1) })
	return c.Conn.Close()
}

func serveOne(t *testing.T, p *Proxy, method, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "https://"+testCName+"/score", strings.NewReader(body))
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

// slowUpload sends pieces of body through a pipe, waiting gap between
// them, and returns the reader, and a channel that receives the time the
// upload ended. The gaps are the behaviour under test (an upload slower
// than the upstream timeout), not a wait for another goroutine.
func slowUpload(t *testing.T, pieces int, size int, gap time.Duration) (io.Reader, <-chan time.Time) {
	pr, pw := io.Pipe()
	ended := make(chan time.Time, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		piece := strings.Repeat("x", size)
		for i := range pieces {
			if i > 0 {
				time.Sleep(gap)
			}
			if _, err := io.WriteString(pw, piece); err != nil {
				return
			}
		}
		ended <- time.Now()
		pw.Close()
	})
	t.Cleanup(func() { pw.CloseWithError(io.ErrClosedPipe); wg.Wait() })
	return pr, ended
}

// TestUpstreamClockStartsAfterUpload: an upload slower than the upstream
// timeout is the client's business; the backend's clock starts when it has
// the whole request.
func TestUpstreamClockStartsAfterUpload(t *testing.T) {
	forTransports(t, testUpstreamClockStartsAfterUpload)
}

func testUpstreamClockStartsAfterUpload(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%d", n)
	})
	const timeout = 200 * time.Millisecond
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{UpstreamTimeout: timeout}, testLog(t)))
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			body, _ := slowUpload(t, 4, 64<<10, timeout*3/4) // 450 ms in all
			resp, got := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, "POST", "/score", testCName, body), pr.major)
			if resp.StatusCode != 200 || got != fmt.Sprint(4*64<<10) {
				t.Fatalf("got %d %q, want 200 %d", resp.StatusCode, got, 4*64<<10)
			}
		})
	}
}

// TestSilentBackend504AfterUpload: a backend that reads the request and
// never answers gets 504 once the upstream timeout has passed since the end
// of the upload, not since its start.
func TestSilentBackend504AfterUpload(t *testing.T) { forTransports(t, testSilentBackend504AfterUpload) }

func testSilentBackend504AfterUpload(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	const timeout = 300 * time.Millisecond
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{UpstreamTimeout: timeout}, testLog(t)))
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			body, ended := slowUpload(t, 2, 48<<10, timeout*3/2)
			resp, got := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, "POST", "/score", testCName, body), pr.major)
			answered := time.Now()
			if resp.StatusCode != 504 {
				t.Fatalf("status = %d, want 504; body %s", resp.StatusCode, got)
			}
			if waited := answered.Sub(<-ended); waited < timeout {
				t.Errorf("504 came %v after the upload ended, want at least the %v timeout", waited, timeout)
			}
		})
	}
}

// TestUpgrade: a WebSocket-style protocol switch, echoed by the backend.
func TestUpgrade(t *testing.T) { forTransports(t, testUpgrade) }

func testUpgrade(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want Upgrade: websocket", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
	c := dialFront(t, front)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+testCName+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("got %d, Upgrade %q; want 101, websocket", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	io.WriteString(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
		t.Fatalf("read %q, %v; want %q", line, err, "echo ping\n")
	}
}

// TestH2CUpgradeNotForwarded: an upgrade to anything but WebSocket, h2c
// above all, is answered as the same request without the upgrade, by a
// backend that would accept h2c: the client never gets a tunnel to the
// model past the per-request checks ("h2c smuggling").
func TestH2CUpgradeNotForwarded(t *testing.T) { forTransports(t, testH2CUpgradeNotForwarded) }

func testH2CUpgradeNotForwarded(t *testing.T, path seamPath) {
	type seen struct{ upgrade, settings, connection []string }
	got := make(chan seen, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header["Upgrade"], r.Header["Http2-Settings"], r.Header["Connection"]}
		if !strings.Contains(strings.ToLower(strings.Join(r.Header["Upgrade"], ",")), "h2c") {
			io.WriteString(w, "plain")
			return
		}
		// What an h2c-capable server does: switch, then speak HTTP/2.
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, brw)
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
	for _, tt := range []struct{ name, fields string }{
		{"h2c", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
		{"h2c in upper case", "Connection: Upgrade\r\nUpgrade: H2C\r\n"},
		{"h2c after websocket in one field", "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n"},
		{"h2c in a second field", "Connection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n"},
		{"HTTP2-Settings not listed in Connection", "Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
		{"another protocol", "Connection: Upgrade\r\nUpgrade: echo\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFront(t, front)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testCName+"\r\n"+tt.fields+"\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "plain" {
				t.Errorf("got %d %q; want 200 %q, the request answered without its upgrade", resp.StatusCode, body, "plain")
			}
			select {
			case s := <-got:
				if s.upgrade != nil || s.settings != nil || s.connection != nil {
					t.Errorf("backend got Upgrade %q, HTTP2-Settings %q, Connection %q; want none", s.upgrade, s.settings, s.connection)
				}
			case <-time.After(waitLimit):
				t.Fatal("the backend got no request")
			}
		})
	}
}

// TestUnaskedSwitchNotTunnelled: a backend that answers 101 to a request
// that asked for no upgrade does not get a tunnel to the client.
func TestUnaskedSwitchNotTunnelled(t *testing.T) { forTransports(t, testUnaskedSwitchNotTunnelled) }

func testUnaskedSwitchNotTunnelled(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, brw)
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
	c := dialFront(t, front)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testCName+"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("got %d; want 502: a switch that was not asked for is a broken answer", resp.StatusCode)
	}
}

// dialFront opens an HTTP/1.1 TLS connection to front, for requests
// written by hand.
func dialFront(t *testing.T, front *httptest.Server) *tls.Conn {
	t.Helper()
	cfg := front.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", front.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestInformational: a 103 Early Hints from the backend reaches the client
// before the final response.
func TestInformational(t *testing.T) { forTransports(t, testInformational) }

func testInformational(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</model.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "scored")
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
				return nil
			}}
			ctx := httptrace.WithClientTrace(t.Context(), trace)
			resp, body := do(t, clientFor(t, front, pr.major), newRequest(t, ctx, front, "GET", "/", testCName, nil), pr.major)
			if resp.StatusCode != 200 || body != "scored" {
				t.Fatalf("got %d %q, want 200 scored", resp.StatusCode, body)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := "103 </model.css>; rel=preload"; len(got) != 1 || got[0] != want {
				t.Errorf("1xx responses = %q, want [%q]", got, want)
			}
		})
	}
}

// TestResponseFraming: every way a backend can frame its answer, twice
// each, over one backend connection when the framing allows reuse.
func TestResponseFraming(t *testing.T) { forTransports(t, testResponseFraming) }

func testResponseFraming(t *testing.T, path seamPath) {
	backend := startRawBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		var resp string
		switch r.URL.Query().Get("kind") {
		case "chunked":
			resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\npart1,\r\n5\r\npart2\r\n0\r\n\r\n"
		case "nocontent":
			resp = "HTTP/1.1 204 No Content\r\n\r\n"
		case "untilclose":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
			return false
		default: // sized, and HEAD
			resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
			if r.Method != "HEAD" {
				resp += "hello"
			}
		}
		_, err := io.WriteString(c, resp)
		return err == nil
	})
	for _, tt := range []struct {
		name, method, kind string
		wantCode           int
		wantBody           string
		reusable           bool
	}{
		{"sized", "GET", "", 200, "hello", true},
		{"chunked", "GET", "chunked", 200, "part1,part2", true},
		{"204", "GET", "nocontent", 204, "", true},
		{"HEAD", "HEAD", "", 200, "", true},
		{"close-delimited", "GET", "untilclose", 200, "until close", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxyVia(t, path, backend.url, Config{}, testLog(t))
			before, _, _ := backend.counts()
			for range 2 {
				r := httptest.NewRequest(tt.method, "https://"+testCName+"/x?kind="+tt.kind, nil)
				w := httptest.NewRecorder()
				p.ServeHTTP(w, r)
				if w.Code != tt.wantCode || w.Body.String() != tt.wantBody {
					t.Fatalf("%s ?kind=%s: %d %q, want %d %q", tt.method, tt.kind, w.Code, w.Body, tt.wantCode, tt.wantBody)
				}
			}
			after, _, _ := backend.counts()
			if opened := after - before; tt.reusable && opened != 1 || !tt.reusable && opened != 2 {
				t.Errorf("two requests opened %d backend connections; reusable = %v", opened, tt.reusable)
			}
		})
	}
}

// TestConnectionCloseHonoured: a backend's Connection: close keeps the
// connection out of the pool, and the header away from the client.
func TestConnectionCloseHonoured(t *testing.T) { forTransports(t, testConnectionCloseHonoured) }

func testConnectionCloseHonoured(t *testing.T, path seamPath) {
	backend := startRawBackend(t, func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
		return true // keep reading: the proxy must close it
	})
	p := newProxyVia(t, path, backend.url, Config{}, testLog(t))
	for i := range 3 {
		w := serveOne(t, p, "GET", "")
		if w.Code != 200 || w.Header().Get("Connection") != "" {
			t.Fatalf("request %d: %d, Connection %q; want 200 and no Connection header", i, w.Code, w.Header().Get("Connection"))
		}
	}
	if conns, _, _ := backend.counts(); conns != 3 {
		t.Errorf("backend connections = %d, want 3 (Connection: close is honoured)", conns)
	}
}

// TestBrokenResponseNotReused: a backend that stalls mid-body: when the
// client gives up, the backend connection is closed, never pooled, and the
// next request gets a new one.
func TestBrokenResponseNotReused(t *testing.T) { forTransports(t, testBrokenResponseNotReused) }

func testBrokenResponseNotReused(t *testing.T, path seamPath) {
	backend := startRawBackend(t, func(connSeq, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		if r.URL.Path == "/stall" {
			// Chunked, so that the proxy flushes the first bytes to
			// the client at once; then nothing more.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nonly ten b\r\n")
			return true // and read on: the next thing is the proxy's close
		}
		return answerOK(c)
	})
	front := startFront(t, newProxyVia(t, path, backend.url, Config{}, testLog(t)))
	c := clientFor(t, front, 2)
	ctx, cancel := context.WithCancel(t.Context())
	resp, err := c.Do(newRequest(t, ctx, front, "GET", "/stall", testCName, nil))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("reading the first bytes: %v", err)
	}
	cancel() // the client gives up on the rest
	resp.Body.Close()
	waitUntil(t, "the proxy to close the stalled backend connection", func() bool {
		_, closed, _ := backend.counts()
		return closed == 1
	})
	if resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/next", testCName, nil), 2); resp.StatusCode != 200 {
		t.Fatalf("next request: %d %s", resp.StatusCode, body)
	}
	if conns, _, _ := backend.counts(); conns != 2 {
		t.Errorf("backend connections = %d, want 2 (the broken one not reused)", conns)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// TestClientBodyFaults: a malformed, stalled or never-sent request body is
// the client's fault: 400 or 408, no backend connection taken for a body
// that never started, and nothing counted as a backend error.
func TestClientBodyFaults(t *testing.T) { forTransports(t, testClientBodyFaults) }

func testClientBodyFaults(t *testing.T, path seamPath) {
	backend := startRawBackend(t, func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool { return answerOK(c) })
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	u := mustParse(t, backend.url)
	p, err := New(Config{CName: testCName, Backend: u, BodyReadTimeout: 200 * time.Millisecond}, testLog(t), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	setPath(t, p, path)
	front := startFront(t, p)
	head := "POST /score HTTP/1.1\r\nHost: " + testCName + "\r\n"
	for _, tt := range []struct {
		name, raw string
		want      int
	}{
		{"chunk size overflows", head + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk extension ended by a bare LF", head + "Transfer-Encoding: chunked\r\n\r\n5;ext\nhello\r\n0\r\n\r\n", 400},
		{"small body announced, never sent", head + "Content-Length: 10\r\n\r\n", 408},
		{"1 MiB announced, never sent", head + "Content-Length: 1048576\r\n\r\n", 408},
		{"chunked body announced, never sent", head + "Transfer-Encoding: chunked\r\n\r\n", 408},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFront(t, front)
			io.WriteString(c, tt.raw)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.want, body)
			}
			checkErrorBody(t, resp.Header, string(body))
		})
	}
	t.Run("HTTP/2 body announced, never sent", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		req := newRequest(t, t.Context(), front, "POST", "/score", testCName, pr)
		req.ContentLength = 10
		resp, body := do(t, clientFor(t, front, 2), req, 2)
		if resp.StatusCode != 408 {
			t.Fatalf("status = %d, want 408; body %s", resp.StatusCode, body)
		}
	})
	t.Run("HTTP/2 body stalls midway", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go io.WriteString(pw, strings.Repeat("x", 40<<10))
		req := newRequest(t, t.Context(), front, "POST", "/score", testCName, pr)
		req.ContentLength = 1 << 20
		resp, body := do(t, clientFor(t, front, 2), req, 2)
		if resp.StatusCode != 408 {
			t.Fatalf("status = %d, want 408; body %s", resp.StatusCode, body)
		}
	})
	if conns, _, reqs := backend.counts(); len(reqs) != 0 {
		t.Errorf("the backend read %d whole requests (%q) over %d connections, want none", len(reqs), reqs, conns)
	}
	if n := counterSum(t, reg, "scoregate_upstream_errors_total"); n != 0 {
		t.Errorf("scoregate_upstream_errors_total = %v, want 0: client faults are not backend errors", n)
	}
}

// TestUnsentBodyTakesNoConnection: a client that announces a body and
// sends nothing holds no backend connection while it stalls.
func TestUnsentBodyTakesNoConnection(t *testing.T) { forTransports(t, testUnsentBodyTakesNoConnection) }

func testUnsentBodyTakesNoConnection(t *testing.T, path seamPath) {
	backend := startRawBackend(t, func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool { return answerOK(c) })
	front := startFront(t, newProxyVia(t, path, backend.url, Config{BodyReadTimeout: time.Hour}, testLog(t)))
	for _, length := range []string{"10", "1048576"} {
		c := dialFront(t, front)
		io.WriteString(c, "POST /score HTTP/1.1\r\nHost: "+testCName+"\r\nContent-Length: "+length+"\r\n\r\n")
	}
	// A request sent after the stalled ones, on its own connection, is
	// answered: the stalled ones hold nothing the backend needs.
	c := dialFront(t, front)
	io.WriteString(c, "POST /score HTTP/1.1\r\nHost: "+testCName+"\r\nContent-Length: 2\r\n\r\n{}")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the request after the stalled ones: %v, %v; want 200", resp, err)
	}
	if conns, _, _ := backend.counts(); conns != 1 {
		t.Errorf("backend connections = %d, want 1: the stalled requests took none", conns)
	}
}

// TestRequestLine: what reaches the backend's request line is one request
// line: a query's spaces and other bytes outside RFC 9112's request-target
// are escaped, a method that is not a token and control characters are
// refused.
func TestRequestLine(t *testing.T) { forTransports(t, testRequestLine) }

func testRequestLine(t *testing.T, path seamPath) {
	backend := startRawBackend(t, func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool { return answerOK(c) })
	p := newProxyVia(t, path, backend.url, Config{}, testLog(t))
	front := startFront(t, p)
	t.Run("HTTP/2 query with spaces", func(t *testing.T) {
		req := newRequest(t, t.Context(), front, "GET", "/", testCName, nil)
		req.URL.Opaque = "/score?x=1 HTTP/1.1 a b{|}\"é"
		resp, body := do(t, clientFor(t, front, 2), req, 2)
		if resp.StatusCode != 200 {
			t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
		}
		_, _, reqs := backend.counts()
		want := "GET /score?x=1%20HTTP/1.1%20a%20b%7B%7C%7D%22%C3%A9"
		if len(reqs) == 0 || reqs[len(reqs)-1] != want {
			t.Errorf("backend request line = %q, want %q", reqs, want)
		}
	})
	for _, tt := range []struct {
		name, method, rawQuery string
	}{
		{"method with a space", "GET /smuggled", ""},
		{"method with a tab", "GET\t", ""},
		{"empty method", "", ""},
		{"tab in the query", "GET", "x=1\tHTTP/1.1"},
		{"CR LF in the query", "GET", "x=1\r\nX-Injected: 1"},
		{"DEL in the query", "GET", "x=\x7f"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, before := backend.counts()
			r := httptest.NewRequest("GET", "https://"+testCName+"/score", nil)
			r.Method, r.URL.RawQuery = tt.method, tt.rawQuery
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			if w.Code != 400 {
				t.Fatalf("status = %d, want 400; body %s", w.Code, w.Body)
			}
			checkErrorBody(t, w.Header(), w.Body.String())
			if _, _, after := backend.counts(); len(after) != len(before) {
				t.Errorf("the request reached the backend: %q", after[len(before):])
			}
		})
	}
}

// TestNoClientGoroutinesAfterClose: a body writer still waiting for the
// client when the backend has answered ends with the request, and Close
// leaves none of the client's goroutines behind.
func TestNoClientGoroutinesAfterClose(t *testing.T) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		// Answers after the first bytes, without waiting for the rest.
		http.NewResponseController(w).EnableFullDuplex()
		buf := make([]byte, 1)
		io.ReadFull(r.Body, buf)
		io.WriteString(w, "early")
	})
	p := newTestProxy(t, backend.URL, Config{}, testLog(t))
	front := startFront(t, p)
	c := clientFor(t, front, 2)
	for range 3 {
		pr, pw := io.Pipe()
		go io.WriteString(pw, "first bytes")
		// The pipe itself, not hidden: the client closes it when it
		// gives up on the rest of the body.
		resp, body := do(t, c, newRequest(t, t.Context(), front, "POST", "/score", testCName, pr), 2)
		if resp.StatusCode != 200 || body != "early" {
			t.Fatalf("got %d %q, want 200 early", resp.StatusCode, body)
		}
		pw.CloseWithError(io.ErrClosedPipe) // the client never finishes its body
	}
	p.Close()
	waitUntil(t, "h1's goroutines to end", func() bool { return !goroutinesIn("scoregate/proxy/h1.") })
}

// goroutinesIn reports whether any goroutine runs code whose function
// names contain pkg.
func goroutinesIn(pkg string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), pkg)
}

// counterSum adds up every series of the named counter in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
