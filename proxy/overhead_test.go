package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scoregate/scoregate/metrics"
)

// Figures of TestOverheadExcludesSlowClients.
const (
	// overheadLimit is far above what scoregate takes (microseconds)
	// and far below what the slow clients below make a request last.
	overheadLimit = 50 * time.Millisecond
	largeAnswer   = 5 << 20
	// slowChunk and slowPause make the slow reader take 160 pauses over
	// the large answer; socketBuffer keeps what the kernels can absorb of
	// it to a few hundred KiB, so that the proxy waits for the reader.
	// (16 KiB windows stall loopback TCP on delayed ACKs: 10s for 2 MiB.)
	slowChunk    = 32 << 10
	slowPause    = time.Millisecond
	socketBuffer = 128 << 10
	// lateBody is how long the late clients hold their request body back.
	lateBody = 200 * time.Millisecond
	// minSlow is how long each slow client must make its request last
	// (the server's clock starts a little after the client's), or the
	// case would test nothing: the old overhead, total minus upstream,
	// was as long.
	minSlow = 2 * overheadLimit
)

// TestOverheadExcludesSlowClients: scoregate_proxy_overhead_seconds is the
// time spent in scoregate itself. A client that reads a 5 MiB answer
// slowly, or sends its request body late, makes the request long (the
// request duration shows it), not the overhead.
func TestOverheadExcludesSlowClients(t *testing.T) {
	forTransports(t, testOverheadExcludesSlowClients)
}

func testOverheadExcludesSlowClients(t *testing.T, path seamPath) {
	answer := bytes.Repeat([]byte("0123456789abcdef"), largeAnswer/16)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if r.URL.Path == "/large" {
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			w.Write(answer)
			return
		}
		io.WriteString(w, "{}")
	})
	head := func(method, target string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + testCName + "\r\n"
	}
	for _, tt := range []struct {
		name     string
		request  string // sent at once
		late     string // sent lateBody later, if not empty
		slowRead bool   // read the answer slowly
		wantLen  int    // of the answer
	}{
		{"5 MiB answer read slowly", head("GET", "/large") + "\r\n", "", true, largeAnswer},
		{"small body sent late", head("POST", "/score") + "Content-Length: 2\r\n\r\n", "{}", false, 2},
		{"chunked body sent late", head("POST", "/score") + "Transfer-Encoding: chunked\r\n\r\n", "2\r\n{}\r\n0\r\n\r\n", false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			logs := newLogSink()
			p, err := New(Config{CName: testCName, Backend: mustParse(t, backend.URL)}, logs.logger(), metrics.New(reg))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			setPath(t, p, path)
			front := startSmallBufferFront(t, p)
			c := dialSlowReader(t, front)

			if _, err := io.WriteString(c, tt.request); err != nil {
				t.Fatal(err)
			}
			if tt.late != "" {
				time.Sleep(lateBody) // the client's lateness is the behaviour under test
				if _, err := io.WriteString(c, tt.late); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := readBody(resp.Body, tt.slowRead)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || n != tt.wantLen {
				t.Fatalf("got %d with %d body bytes (%v), want 200 with %d", resp.StatusCode, n, err, tt.wantLen)
			}
			// The metrics are recorded just before the access log line.
			logs.accessLine(t, resp.Header.Get("X-Request-Id"))

			if count, total := histogramOf(t, reg, "scoregate_request_duration_seconds"); count != 1 || total < minSlow {
				t.Fatalf("request duration: %d observations, %v; want 1, at least %v", count, total, minSlow)
			}
			if count, _ := histogramOf(t, reg, "scoregate_upstream_duration_seconds"); count != 1 {
				t.Errorf("upstream duration: %d observations, want 1", count)
			}
			if count, overhead := histogramOf(t, reg, "scoregate_proxy_overhead_seconds"); count != 1 || overhead >= overheadLimit {
				t.Errorf("proxy overhead: %d observations, %v; want 1, under %v", count, overhead, overheadLimit)
			}
		})
	}
}

// TestOverheadCountsForwardedOnly: a request refused before the backend
// records no overhead; a forwarded one records it, whether the backend
// answered or failed.
func TestOverheadCountsForwardedOnly(t *testing.T) { forTransports(t, testOverheadCountsForwardedOnly) }

func testOverheadCountsForwardedOnly(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			panic(http.ErrAbortHandler) // the connection closes without an answer: 502
		}
		io.WriteString(w, "{}")
	})
	reg := prometheus.NewRegistry()
	p, err := New(Config{CName: testCName, Backend: mustParse(t, backend.URL)}, testLog(t), metrics.New(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	setPath(t, p, path)
	front := startFront(t, p)
	c := clientFor(t, front, 1)
	for i, tt := range []struct {
		name, host, target string
		wantStatus         int
		wantOverhead       uint64 // observations after this request
	}{
		{"refused: other Host", "evil.example.com", "/score", 421, 0},
		{"answered", testCName, "/score", 200, 1},
		{"backend failed", testCName, "/fail", 502, 2},
	} {
		resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", tt.target, tt.host, nil), 1)
		if resp.StatusCode != tt.wantStatus {
			t.Fatalf("%s: status = %d, want %d; body %s", tt.name, resp.StatusCode, tt.wantStatus, body)
		}
		// ServeHTTP records the request after the client has its answer.
		waitUntil(t, "the request to be recorded", func() bool {
			return counterSum(t, reg, "scoregate_requests_total") == float64(i+1)
		})
		if got, _ := histogramOf(t, reg, "scoregate_proxy_overhead_seconds"); got != tt.wantOverhead {
			t.Errorf("%s: overhead observations = %d, want %d", tt.name, got, tt.wantOverhead)
		}
	}
}

// readBody reads b to its end and returns how many bytes it had. A slow
// reader takes slowChunk bytes at a time with a pause after each.
func readBody(b io.Reader, slow bool) (int, error) {
	if !slow {
		n, err := io.Copy(io.Discard, b)
		return int(n), err
	}
	buf := make([]byte, slowChunk)
	total := 0
	for {
		n, err := io.ReadFull(b, buf)
		total += n
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		time.Sleep(slowPause) // the client's slowness is the behaviour under test
	}
}

// startSmallBufferFront is startFront for HTTP/1.1 with small socket send
// buffers, so that a client that reads slowly holds up the proxy's writes
// instead of the kernel taking the whole answer.
func startSmallBufferFront(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallSendBuffers{srv.Listener}
	startTLS(t, srv)
	t.Cleanup(srv.Close)
	return srv
}

type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetWriteBuffer(socketBuffer); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, err
}

// dialSlowReader is dialFront with a small socket receive buffer.
func dialSlowReader(t *testing.T, front *httptest.Server) *tls.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if err := raw.(*net.TCPConn).SetReadBuffer(socketBuffer); err != nil {
		t.Fatal(err)
	}
	cfg := front.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ServerName, _, _ = net.SplitHostPort(raw.RemoteAddr().String()) // as tls.Dial sets it
	c := tls.Client(raw, cfg)
	c.SetDeadline(time.Now().Add(waitLimit))
	if err := c.HandshakeContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// histogramOf returns the number of observations and their sum, as a
// duration, of the histogram name in reg.
func histogramOf(t *testing.T, reg *prometheus.Registry, name string) (uint64, time.Duration) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), time.Duration(h.GetSampleSum() * float64(time.Second))
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0, 0
}

// TestStatusRecorderRelay: the overhead's second part runs from the end of
// the wait for the backend to the final response header, interim
// responses and the body aside, and only for a forwarded request.
func TestStatusRecorderRelay(t *testing.T) {
	const ago = time.Hour // upstreamEnd is set this far back: relay is at least this
	for _, tt := range []struct {
		name      string
		forwarded bool
		write     func(w *statusRecorder)
		wantRelay bool
	}{
		{"not forwarded", false, func(w *statusRecorder) { w.WriteHeader(502) }, false},
		{"final header", true, func(w *statusRecorder) { w.WriteHeader(200) }, true},
		{"interim response only", true, func(w *statusRecorder) { w.WriteHeader(http.StatusEarlyHints) }, false},
		{"interim, then final", true, func(w *statusRecorder) { w.WriteHeader(http.StatusEarlyHints); w.WriteHeader(200) }, true},
		{"implicit header by the first write", true, func(w *statusRecorder) { w.Write([]byte("ok")) }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &statusRecorder{ResponseWriter: httptest.NewRecorder()}
			if tt.forwarded {
				w.upstreamEnd = time.Now().Add(-ago)
			}
			tt.write(w)
			if got := w.relay >= ago; got != tt.wantRelay {
				t.Errorf("relay = %v; measured %v, want %v", w.relay, got, tt.wantRelay)
			}
			if w.status == 0 {
				return // no final header yet
			}
			// Later writes do not move it: the body is not overhead.
			before := w.relay
			w.WriteHeader(500)
			w.Write([]byte("more"))
			if w.relay != before {
				t.Errorf("relay after more writes = %v, want %v", w.relay, before)
			}
		})
	}
}
