package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// Socket buffers of the slow-reader tests. On loopback the kernel sizes a
// connection's buffers from its 64 KiB segments: an answer nobody reads
// fills megabytes of them (3.7 MiB measured) before a write blocks, more
// than BufferResponseBytes, so a slow reader would never hold anything.
// With these, about 100 KiB of an unread answer is in the kernel (96 KiB
// measured) and the rest waits on the proxy's writes, as it does for a
// client that reads slowly over a real network.
const (
	stalledSendBuffer    = 32 << 10 // the front's side
	stalledReceiveBuffer = 4 << 10  // the client's side
)

// newMeteredProxy is newProxyVia with a registry of its own, returned for
// the test to read.
func newMeteredProxy(t *testing.T, path seamPath, backend string, cfg Config, log zerolog.Logger) (*Proxy, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.CName, cfg.Backend = testCName, mustParse(t, backend)
	p, err := New(cfg, log, metrics.New(reg))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	setPath(t, p, path)
	return p, reg
}

// startStalledFront is startFront with stalledSendBuffer on every
// connection.
func startStalledFront(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = sendBuffers{srv.Listener, stalledSendBuffer}
	startTLS(t, srv)
	t.Cleanup(srv.Close)
	return srv
}

type sendBuffers struct {
	net.Listener
	size int
}

func (l sendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetWriteBuffer(l.size); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, err
}

// dialStalled opens an HTTP/1.1 connection to front with
// stalledReceiveBuffer, for a client that reads nothing until the test
// says so. The connection is closed when t ends.
func dialStalled(t testing.TB, front *httptest.Server) *tls.Conn {
	t.Helper()
	c, err := dialStalledConn(front, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialStalledConn is dialStalled for any goroutine, resuming TLS sessions
// from sessions if not nil; the caller closes the connection.
func dialStalledConn(front *httptest.Server, sessions tls.ClientSessionCache) (*tls.Conn, error) {
	raw, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		return nil, err
	}
	if err := raw.(*net.TCPConn).SetReadBuffer(stalledReceiveBuffer); err != nil {
		raw.Close()
		return nil, err
	}
	cfg := front.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ServerName, _, _ = net.SplitHostPort(raw.RemoteAddr().String()) // as tls.Dial sets it
	cfg.ClientSessionCache = sessions
	c := tls.Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// gaugeSum is the sum of the series of the gauge name in reg.
func gaugeSum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

const (
	gaugeBuffered    = "scoregate_response_buffer_bytes"
	counterFull      = "scoregate_response_buffer_full_total"
	gaugeOutstanding = "scoregate_replica_outstanding_requests"
)

// patterned returns n bytes that differ from one 16 KiB block to the next,
// so that a block sent twice or out of order shows.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/answerBlockSize*7 + i%251)
	}
	return b
}

// TestSlowReaderHoldsNoSlot: with one slot per replica, a client that reads
// nothing of a 256 KiB answer does not keep a second client from its
// answer: the proxy read the answer whole, gave the slot back, and holds
// the rest in its buffers until the reader takes it. Unbuffered (off, over
// BufferResponseBytes, over BufferTotalBytes), the reader holds the slot
// and the second client waits MaxQueueWait for a 503; those cases show the
// test can fail.
func TestSlowReaderHoldsNoSlot(t *testing.T) { forTransports(t, testSlowReaderHoldsNoSlot) }

func testSlowReaderHoldsNoSlot(t *testing.T, path seamPath) {
	const size = 256 << 10
	answer := patterned(size)
	served := make(chan struct{}, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/large" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.Write(answer)
		served <- struct{}{}
	})
	for _, tt := range []struct {
		name     string
		cfg      Config
		want     int  // the second client's status
		wantFull bool // counted in scoregate_response_buffer_full_total
	}{
		{"read whole", Config{}, 200, false},
		{"buffering off", Config{BufferResponseBytes: -1}, 503, false},
		{"over BufferResponseBytes", Config{BufferResponseBytes: size - 1}, 503, false},
		{"over BufferTotalBytes", Config{BufferTotalBytes: size - answerBlockSize}, 503, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.MaxConcurrentPerReplica, cfg.MaxQueueWait = 1, 100*time.Millisecond
			p, reg := newMeteredProxy(t, path, backend.URL, cfg, testLog(t))
			front := startStalledFront(t, p)

			c := dialStalled(t, front)
			if _, err := io.WriteString(c, "GET /large HTTP/1.1\r\nHost: "+testCName+"\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-served:
			case <-time.After(waitLimit):
				t.Fatal("the backend got no request")
			}
			if tt.want == 200 {
				waitUntil(t, "the slot to be released", func() bool { return gaugeSum(t, reg, gaugeOutstanding) == 0 })
				if held := gaugeSum(t, reg, gaugeBuffered); held < answerBlockSize {
					t.Errorf("%s = %v while the reader reads nothing, want at least a block", gaugeBuffered, held)
				}
			}
			for _, pr := range protos {
				resp, body := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, "GET", "/small", testCName, nil), pr.major)
				if resp.StatusCode != tt.want {
					t.Errorf("second client over %s: %d %q, want %d", pr.name, resp.StatusCode, body, tt.want)
				}
			}
			if got := counterSum(t, reg, counterFull); got != map[bool]float64{true: 1}[tt.wantFull] {
				t.Errorf("%s = %v, want %v", counterFull, got, tt.wantFull)
			}

			// The reader, once it reads, has the whole answer. (Through
			// the small buffer, delayed ACKs would make that seconds.)
			if err := c.NetConn().(*net.TCPConn).SetReadBuffer(1 << 20); err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(waitLimit))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, answer) {
				t.Fatalf("the slow reader got %d with %d bytes (%v), equal %v; want 200 with the %d bytes sent",
					resp.StatusCode, len(got), err, bytes.Equal(got, answer), len(answer))
			}
			waitUntil(t, "the buffers to be given back", func() bool { return gaugeSum(t, reg, gaugeBuffered) == 0 })
		})
	}
}

// TestManySlowReaders: slowReaders clients that read nothing of their
// answers, on one replica with four slots, while another client gets 200
// for each of its requests; the answers wait in the proxy's buffers, whose
// total stays within BufferTotalBytes, and all of it is given back once
// the readers leave. 1,000 readers (slowhttptest's slow-read attack) take
// 2,000 descriptors and about 4 s with -race on two cores: the direct
// path, the common one, gets 1,000; the ReverseProxy paths, which differ
// only in where the answer is read (modifyResponse), get 250, and -short
// runs 200 on each.
func TestManySlowReaders(t *testing.T) {
	forTransports(t, func(t *testing.T, path seamPath) {
		readers := 1000
		if path != pathDirect {
			readers = 250
		}
		if testing.Short() {
			readers = 200
		}
		// The kernel takes about 100 KiB of each (see stalledSendBuffer),
		// the proxy holds the rest.
		const size = 160 << 10
		answer := patterned(size)
		var mu sync.Mutex
		served := 0
		backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/large" {
				io.WriteString(w, "ok")
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			w.Write(answer)
			mu.Lock()
			served++
			mu.Unlock()
		})
		// Room for every answer less what the kernel takes of it at the
		// least, its send buffer: all of them together would not fit.
		limit := int64(readers) * (size - stalledSendBuffer)
		p, reg := newMeteredProxy(t, path, backend.URL, Config{MaxConcurrentPerReplica: 4, MaxQueueWait: waitLimit, BufferTotalBytes: limit}, zerolog.Nop())
		front := startStalledFront(t, p)

		// The readers resume one TLS session, which costs a fraction of
		// a full handshake: the session ticket comes with the first
		// answer read.
		sessions := tls.NewLRUClientSessionCache(1)
		primer, err := dialStalledConn(front, sessions)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(primer, "GET /small HTTP/1.1\r\nHost: "+testCName+"\r\nConnection: close\r\n\r\n")
		primer.SetDeadline(time.Now().Add(waitLimit))
		if _, err := io.Copy(io.Discard, primer); err != nil {
			t.Fatal(err)
		}
		primer.Close()

		conns := make([]*tls.Conn, readers)
		t.Cleanup(func() {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
		})
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < readers; i += 8 {
					c, err := dialStalledConn(front, sessions)
					if err == nil {
						conns[i] = c
						_, err = io.WriteString(c, "GET /large HTTP/1.1\r\nHost: "+testCName+"\r\n\r\n")
					}
					if err != nil {
						errs <- fmt.Errorf("slow reader %d: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		waitUntil(t, "every slow reader's answer to be read from the backend", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return served == readers && gaugeSum(t, reg, gaugeOutstanding) == 0
		})
		peak := gaugeSum(t, reg, gaugeBuffered)
		if peak < float64(readers*answerBlockSize) {
			t.Fatalf("%s = %v with %d readers stalled, want at least a block each: the test's answers are not held by the proxy", gaugeBuffered, peak, readers)
		}

		c := clientFor(t, front, 2)
		for i := range 20 {
			resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/small", testCName, nil), 2)
			if resp.StatusCode != 200 {
				t.Fatalf("request %d beside %d slow readers: %d %q, want 200", i, readers, resp.StatusCode, body)
			}
			if held := gaugeSum(t, reg, gaugeBuffered); held > float64(limit) {
				t.Fatalf("%s = %v, over BufferTotalBytes %d", gaugeBuffered, held, limit)
			}
		}
		if full := counterSum(t, reg, counterFull); full != 0 {
			t.Errorf("%s = %v, want 0: every answer fit", counterFull, full)
		}
		t.Logf("%d slow readers: %.1f MiB held, %.1f KiB each", readers, peak/(1<<20), peak/float64(readers)/(1<<10))

		for _, c := range conns {
			c.Close()
		}
		waitUntil(t, "the buffers to be given back", func() bool { return gaugeSum(t, reg, gaugeBuffered) == 0 })
	})
}

// TestStreamedAnswerHoldsSlot: an answer that is not read whole holds its
// replica slot until the client has it, and one that streams reaches the
// client event by event: a second request gets 503 while the first is
// under way, and 200 after it.
func TestStreamedAnswerHoldsSlot(t *testing.T) { forTransports(t, testStreamedAnswerHoldsSlot) }

func testStreamedAnswerHoldsSlot(t *testing.T, path seamPath) {
	const one, two = "data: one\n\n", "data: two\n\n"
	const bound = 1000 // BufferResponseBytes
	type kind struct {
		name     string
		header   func(h http.Header)
		tail     string // sent after two
		eventful bool   // the first event reaches the client before the second is sent
		trailer  bool
	}
	sized := func(n int) func(h http.Header) {
		return func(h http.Header) { h.Set("Content-Length", strconv.Itoa(n)) }
	}
	over := strings.Repeat(".", bound)
	kinds := []kind{
		{"chunked", func(h http.Header) {}, "", true, false},
		{"event stream", func(h http.Header) { h.Set("Content-Type", "text/event-stream") }, "", true, false},
		{"event stream with a Content-Length", func(h http.Header) {
			h.Set("Content-Type", "Text/Event-Stream; charset=utf-8")
			sized(len(one + two))(h)
		}, "", true, false},
		{"trailers", func(h http.Header) { h.Set("Trailer", "X-Checksum") }, "", true, true},
		{"over BufferResponseBytes", sized(len(one + two + over)), over, false, false},
	}
	release := make(chan struct{})
	reached := make(chan struct{}, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			io.WriteString(w, "ok")
			return
		}
		i, _ := strconv.Atoi(r.URL.Query().Get("kind"))
		k := kinds[i]
		k.header(w.Header())
		io.WriteString(w, one)
		http.NewResponseController(w).Flush()
		reached <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, two+k.tail)
		if k.trailer {
			w.Header().Set("X-Checksum", "2")
		}
	})
	cfg := Config{MaxConcurrentPerReplica: 1, MaxQueueWait: 50 * time.Millisecond, BufferResponseBytes: bound}
	p, reg := newMeteredProxy(t, path, backend.URL, cfg, testLog(t))
	front := startFront(t, p)
	for i, k := range kinds {
		for _, pr := range protos {
			t.Run(k.name+"/"+pr.name, func(t *testing.T) {
				c := clientFor(t, front, pr.major)
				req := newRequest(t, t.Context(), front, "GET", "/stream?kind="+strconv.Itoa(i), testCName, nil)
				type result struct {
					first, rest string
					err         error
				}
				firstRead := make(chan struct{})
				done := make(chan result, 1)
				go func() {
					var res result
					defer func() { done <- res }()
					resp, err := c.Do(req)
					if err != nil {
						res.err = err
						close(firstRead)
						return
					}
					defer resp.Body.Close()
					if k.eventful {
						b := make([]byte, len(one))
						_, res.err = io.ReadFull(resp.Body, b)
						res.first = string(b)
						close(firstRead)
						if res.err != nil {
							return
						}
					}
					rest, err := io.ReadAll(resp.Body)
					res.rest, res.err = string(rest), err
				}()
				select {
				case <-reached:
				case <-time.After(waitLimit):
					t.Fatal("the backend got no request")
				}
				if k.eventful {
					select {
					case <-firstRead:
					case <-time.After(waitLimit):
						release <- struct{}{}
						t.Fatal("the first event did not reach the client before the second was sent")
					}
				}
				resp, body := do(t, clientFor(t, front, 1), newRequest(t, t.Context(), front, "GET", "/small", testCName, nil), 1)
				if resp.StatusCode != 503 {
					t.Errorf("while the stream is under way: %d %q, want 503 (the stream holds the slot)", resp.StatusCode, body)
				}
				release <- struct{}{}
				res := <-done
				if res.err != nil {
					t.Fatal(res.err)
				}
				if got := res.first + res.rest; got != one+two+k.tail {
					t.Errorf("body = %q, want %q", got, one+two+k.tail)
				}
				waitUntil(t, "the slot to be released", func() bool { return gaugeSum(t, reg, gaugeOutstanding) == 0 })
				if resp, body := do(t, clientFor(t, front, 1), newRequest(t, t.Context(), front, "GET", "/small", testCName, nil), 1); resp.StatusCode != 200 {
					t.Errorf("after the stream: %d %q, want 200", resp.StatusCode, body)
				}
				if held := gaugeSum(t, reg, gaugeBuffered); held != 0 {
					t.Errorf("%s = %v, want 0: nothing of a stream is buffered", gaugeBuffered, held)
				}
			})
		}
	}
}

// TestStreamHeadBeforeBody: the header of an answer of unknown length or
// of an event stream reaches the client as soon as the backend sent it,
// while the backend has not sent its first body byte (a model thinking
// before its first token).
func TestStreamHeadBeforeBody(t *testing.T) { forTransports(t, testStreamHeadBeforeBody) }

func testStreamHeadBeforeBody(t *testing.T, path seamPath) {
	// headLimit bounds the wait for the header: milliseconds when it
	// works, forever when it does not (the backend waits for the test).
	const headLimit = 3 * time.Second
	const token = "data: token\n\n"
	kinds := []struct {
		name   string
		header func(h http.Header)
	}{
		{"unknown length", func(h http.Header) {}},
		{"event stream", func(h http.Header) { h.Set("Content-Type", "text/event-stream") }},
		{"event stream with a Content-Length", func(h http.Header) {
			h.Set("Content-Type", "text/event-stream")
			h.Set("Content-Length", strconv.Itoa(len(token)))
		}},
	}
	release := make(chan struct{})
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Query().Get("kind"))
		kinds[i].header(w.Header())
		w.Header().Set("X-Model", "thinking")
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, token)
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
	for i, k := range kinds {
		for _, pr := range protos {
			t.Run(k.name+"/"+pr.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
				defer cancel()
				req := newRequest(t, ctx, front, "GET", "/generate?kind="+strconv.Itoa(i), testCName, nil)
				c := clientFor(t, front, pr.major)
				type result struct {
					resp *http.Response
					err  error
				}
				got := make(chan result, 1)
				go func() {
					resp, err := c.Do(req)
					got <- result{resp, err}
				}()
				var res result
				select {
				case res = <-got:
				case <-time.After(headLimit):
					release <- struct{}{}
					if res = <-got; res.err == nil {
						res.resp.Body.Close()
					}
					t.Fatalf("no response header within %v while the backend holds its first body byte", headLimit)
				}
				if res.err != nil {
					t.Fatal(res.err)
				}
				defer res.resp.Body.Close()
				if res.resp.Header.Get("X-Model") != "thinking" {
					t.Errorf("header = %v, want the backend's X-Model", res.resp.Header)
				}
				release <- struct{}{}
				if b, err := io.ReadAll(res.resp.Body); err != nil || string(b) != token {
					t.Errorf("body = %q, %v; want the token", b, err)
				}
			})
		}
	}
}

// TestBufferedAnswerIntact: answers read whole reach the client exactly as
// the backend sent them, whatever their size against the block size, with
// their Content-Length; HEAD, 204 and 304 answers as well; and every block
// is given back.
func TestBufferedAnswerIntact(t *testing.T) { forTransports(t, testBufferedAnswerIntact) }

func testBufferedAnswerIntact(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
			return
		case "/304":
			w.WriteHeader(304)
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Method != "HEAD" {
			w.Write(patterned(n))
		}
	})
	p, reg := newMeteredProxy(t, path, backend.URL, Config{}, testLog(t))
	front := startFront(t, p)
	type tc struct {
		name, method, target string
		status, n            int
	}
	cases := []tc{
		{"HEAD", "HEAD", "/?n=100000", 200, 0},
		{"204", "GET", "/204", 204, 0},
		{"304", "GET", "/304", 304, 0},
	}
	for _, n := range []int{0, 1, answerBlockSize - 1, answerBlockSize, answerBlockSize + 1, 5*answerBlockSize + 77, DefaultBufferResponseBytes} {
		cases = append(cases, tc{fmt.Sprintf("%d bytes", n), "GET", fmt.Sprintf("/?n=%d", n), 200, n})
	}
	for _, tt := range cases {
		for _, pr := range protos {
			t.Run(tt.name+"/"+pr.name, func(t *testing.T) {
				resp, body := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, tt.method, tt.target, testCName, nil), pr.major)
				if resp.StatusCode != tt.status || body != string(patterned(tt.n)) {
					t.Errorf("got %d with %d bytes, want %d with the %d bytes sent", resp.StatusCode, len(body), tt.status, tt.n)
				}
				if tt.method == "GET" && tt.status == 200 && resp.ContentLength != int64(tt.n) {
					t.Errorf("Content-Length = %d, want %d", resp.ContentLength, tt.n)
				}
				waitUntil(t, "the buffers to be given back", func() bool { return gaugeSum(t, reg, gaugeBuffered) == 0 })
			})
		}
	}
}

// TestBufferedAnswerBrokenOff: an answer read whole that breaks off before
// its Content-Length is a 502 to the client, an error answer instead of
// one cut off, logged with that status; its slot and buffers are given
// back, and the next request is answered.
func TestBufferedAnswerBrokenOff(t *testing.T) { forTransports(t, testBufferedAnswerBrokenOff) }

func testBufferedAnswerBrokenOff(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/broken" {
			io.WriteString(w, "ok")
			return
		}
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n")
		bw.Write(patterned(20000))
		bw.Flush()
	})
	logs := newLogSink()
	p, reg := newMeteredProxy(t, path, backend.URL, Config{MaxConcurrentPerReplica: 1}, logs.logger())
	front := startFront(t, p)
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			id := "broken-" + pr.name
			req := newRequest(t, t.Context(), front, "GET", "/broken", testCName, nil)
			req.Header.Set("X-Request-Id", id)
			resp, body := do(t, clientFor(t, front, pr.major), req, pr.major)
			if resp.StatusCode != 502 {
				t.Fatalf("got %d with %d bytes, want 502", resp.StatusCode, len(body))
			}
			checkErrorBody(t, resp.Header, body)
			line := logs.accessLine(t, id)
			if line[keyStatus] != 502.0 || line[keyAborted] != nil {
				t.Errorf("access log %s = %v, %s = %v; want 502, none", keyStatus, line[keyStatus], keyAborted, line[keyAborted])
			}
			if resp, body := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, "GET", "/next", testCName, nil), pr.major); resp.StatusCode != 200 {
				t.Errorf("next request: %d %q, want 200", resp.StatusCode, body)
			}
			waitUntil(t, "the buffers to be given back", func() bool { return gaugeSum(t, reg, gaugeBuffered) == 0 })
		})
	}
}

// TestOverheadExcludesBackendTransfer: an answer read whole from a backend
// that pauses in the middle of its body makes the request long, not the
// proxy overhead: the body's transfer is the backend's time. The access
// log's upstream_duration_ms stays the wait for the header.
func TestOverheadExcludesBackendTransfer(t *testing.T) {
	forTransports(t, func(t *testing.T, path seamPath) {
		const pause = 200 * time.Millisecond
		backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "4")
			io.WriteString(w, "ab")
			http.NewResponseController(w).Flush()
			time.Sleep(pause) // the backend's slowness is the behaviour under test
			io.WriteString(w, "cd")
		})
		logs := newLogSink()
		p, reg := newMeteredProxy(t, path, backend.URL, Config{}, logs.logger())
		front := startFront(t, p)
		resp, body := do(t, clientFor(t, front, 1), newRequest(t, t.Context(), front, "GET", "/", testCName, nil), 1)
		if resp.StatusCode != 200 || body != "abcd" {
			t.Fatalf("got %d %q, want 200 abcd", resp.StatusCode, body)
		}
		line := logs.accessLine(t, resp.Header.Get("X-Request-Id"))
		if ms, _ := line[keyDuration].(float64); ms < milliseconds(pause) {
			t.Errorf("%s = %v, want at least %v", keyDuration, line[keyDuration], milliseconds(pause))
		}
		if ms, _ := line[keyUpstreamDuration].(float64); ms >= milliseconds(pause) {
			t.Errorf("%s = %v, want under %v: the wait for the header only", keyUpstreamDuration, line[keyUpstreamDuration], milliseconds(pause))
		}
		if count, overhead := histogramOf(t, reg, "scoregate_proxy_overhead_seconds"); count != 1 || overhead >= overheadLimit {
			t.Errorf("proxy overhead: %d observations, %v; want 1, under %v", count, overhead, overheadLimit)
		}
	})
}

// TestUpgradeStatusRecorded: an upgraded WebSocket is logged with status
// 101 and counted as code="101", not as 0 and "other".
func TestUpgradeStatusRecorded(t *testing.T) { forTransports(t, testUpgradeStatusRecorded) }

func testUpgradeStatusRecorded(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		if line, err := brw.ReadString('\n'); err == nil {
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	})
	logs := newLogSink()
	p, reg := newMeteredProxy(t, path, backend.URL, Config{}, logs.logger())
	front := startFront(t, p)
	c := dialFront(t, front)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+testCName+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Request-Id: ws-1\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("got %d, want 101", resp.StatusCode)
	}
	io.WriteString(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
		t.Fatalf("read %q, %v; want %q", line, err, "echo ping\n")
	}
	c.Close() // the tunnel ends, and with it the request
	line := logs.accessLine(t, "ws-1")
	if line[keyStatus] != 101.0 || line[keyAborted] != nil {
		t.Errorf("access log %s = %v, %s = %v; want 101, none", keyStatus, line[keyStatus], keyAborted, line[keyAborted])
	}
	if got, err := counterValue(reg, "scoregate_requests_total", map[string]string{"code": "101", "method": "GET"}); err != nil || got != 1 {
		t.Errorf(`scoregate_requests_total{code="101",method="GET"} = %v, %v; want 1`, got, err)
	}
	if got, err := counterValue(reg, "scoregate_requests_total", map[string]string{"code": "other"}); err != nil || got != 0 {
		t.Errorf(`scoregate_requests_total{code="other"} = %v, %v; want 0`, got, err)
	}
	if count, _ := histogramOf(t, reg, "scoregate_proxy_overhead_seconds"); count != 1 {
		t.Errorf("proxy overhead: %d observations, want 1", count)
	}
}

// TestNewBufferConfig: the buffer settings' zero values select the
// defaults, a negative BufferResponseBytes turns buffering off, and a
// negative total is refused naming the field.
func TestNewBufferConfig(t *testing.T) {
	for _, tt := range []struct {
		name               string
		perAnswer, total   int64
		wantMax, wantTotal int64
		wantErr            string
	}{
		{"defaults", 0, 0, DefaultBufferResponseBytes, DefaultBufferTotalBytes, ""},
		{"set", 4096, 1 << 20, 4096, 1 << 20, ""},
		{"off", -1, 0, -1, DefaultBufferTotalBytes, ""},
		{"negative total", 0, -1, 0, 0, "BufferTotalBytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(Config{CName: testCName, Backend: mustParse(t, "http://127.0.0.1:1"), BufferResponseBytes: tt.perAnswer, BufferTotalBytes: tt.total}, zerolog.Nop(), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.answers.max != tt.wantMax || p.answers.total != tt.wantTotal {
				t.Errorf("per answer, total = %d, %d; want %d, %d", p.answers.max, p.answers.total, tt.wantMax, tt.wantTotal)
			}
		})
	}
}

// TestIsEventStream: the media type decides, in any case and with
// parameters, as ReverseProxy's mime.ParseMediaType does.
func TestIsEventStream(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		want bool
	}{
		{"text/event-stream", true},
		{"Text/Event-Stream", true},
		{"text/event-stream; charset=utf-8", true},
		{"text/event-stream ;charset=utf-8", true},
		{" text/event-stream", true},
		{"text/event-streams", false},
		{"text/event", false},
		{"application/json", false},
		{"", false},
	} {
		h := http.Header{}
		if tt.ct != "" {
			h.Set("Content-Type", tt.ct)
		}
		if got := isEventStream(h); got != tt.want {
			t.Errorf("isEventStream(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}
