package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const testCName = "api.example.com"

// waitLimit bounds every wait on another goroutine, so that a broken
// proxy fails a test instead of hanging it.
const waitLimit = 10 * time.Second

// logSink is the io.Writer behind a test's zerolog.Logger. zerolog writes
// each event with one Write, so every Write is one JSON line.
type logSink struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	more  chan struct{} // signalled after each Write
}

func newLogSink() *logSink { return &logSink{more: make(chan struct{}, 1)} }

func (s *logSink) Write(b []byte) (int, error) {
	var m map[string]any
	err := json.Unmarshal(b, &m)
	s.mu.Lock()
	s.raw.Write(b)
	if err == nil {
		s.lines = append(s.lines, m)
	}
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (s *logSink) logger() zerolog.Logger { return zerolog.New(s) }

func (s *logSink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

func (s *logSink) all() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.lines...)
}

// waitFor returns the first logged line for which match is true, waiting
// up to waitLimit for it to be written.
func (s *logSink) waitFor(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		for _, l := range s.all() {
			if match(l) {
				return l
			}
		}
		select {
		case <-s.more:
		case <-deadline.C:
			t.Fatalf("no log line with %s after %v; log:\n%s", what, waitLimit, s.text())
			return nil
		}
	}
}

// accessLine waits for the access log line of the request with id.
func (s *logSink) accessLine(t *testing.T, id string) map[string]any {
	t.Helper()
	return s.waitFor(t, "request_id "+id, func(m map[string]any) bool {
		return m["message"] == msgAccess && m[keyRequestID] == id
	})
}

// newTestProxy builds a Proxy for testCName in front of backend, with cfg's
// other fields as given.
func newTestProxy(t testing.TB, backend string, cfg Config, log zerolog.Logger) *Proxy {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CName == "" {
		cfg.CName = testCName
	}
	cfg.Backend = u
	p, err := New(cfg, log, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// testLog is a logger that writes to t's output until t ends and drops
// what comes later: a handler's access log line can be written after its
// client has the answer and the test has moved on.
func testLog(t testing.TB) zerolog.Logger {
	w := &cutoffWriter{w: t.Output()}
	t.Cleanup(w.cut)
	return zerolog.New(w)
}

type cutoffWriter struct {
	mu  sync.Mutex
	w   io.Writer
	off bool
}

func (c *cutoffWriter) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off {
		return len(b), nil
	}
	return c.w.Write(b)
}

func (c *cutoffWriter) cut() {
	c.mu.Lock()
	c.off = true
	c.mu.Unlock()
}

// paths are the implementations of the backend seam that every behaviour
// test runs over, so that they cannot drift apart unnoticed: the direct
// path over h1 (plain-HTTP backends), and ReverseProxy over h1 (a backend
// with a path prefix) and over net/http's Transport (https backends and
// protocol upgrades).
var paths = []struct {
	name string
	path seamPath
}{{"direct", pathDirect}, {"reverseproxy-h1", pathReverseProxyH1}, {"reverseproxy-net-http", pathReverseProxyNetHTTP}}

type seamPath int

const (
	pathDirect seamPath = iota
	pathReverseProxyH1
	pathReverseProxyNetHTTP
)

// forTransports runs test once per path.
func forTransports(t *testing.T, test func(t *testing.T, path seamPath)) {
	for _, tr := range paths {
		t.Run(tr.name, func(t *testing.T) { test(t, tr.path) })
	}
}

// newProxyVia is newTestProxy with the path chosen.
func newProxyVia(t testing.TB, path seamPath, backend string, cfg Config, log zerolog.Logger) *Proxy {
	t.Helper()
	p := newTestProxy(t, backend, cfg, log)
	setPath(t, p, path)
	return p
}

func setPath(t testing.TB, p *Proxy, path seamPath) {
	t.Helper()
	if p.dflt == nil || !p.dflt.direct {
		t.Fatal("an http:// backend without a path does not get the direct path")
	}
	switch path {
	case pathReverseProxyH1:
		p.noDirect = true
	case pathReverseProxyNetHTTP:
		p.noDirect, p.noH1 = true, true
	}
}

// startBackend starts a plain-HTTP backend, as the Azure ML server is.
func startBackend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(h)
	t.Cleanup(b.Close)
	return b
}

// startFront serves p over real TLS with HTTP/2 enabled, as scoregate does.
func startFront(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	startTLS(t, srv)
	t.Cleanup(srv.Close)
	return srv
}

// protos are the client protocols every front-side behaviour is tested
// with.
var protos = []struct {
	name  string
	major int
}{{"HTTP/1.1", 1}, {"HTTP/2", 2}}

// clientFor returns a client of srv that speaks only the given HTTP major
// version, with its own connection pool.
func clientFor(t *testing.T, srv *httptest.Server, major int) *http.Client {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.Protocols = new(http.Protocols)
	if major == 2 {
		tr.Protocols.SetHTTP2(true)
		tr.TLSClientConfig.NextProtos = []string{"h2"}
	} else {
		tr.Protocols.SetHTTP1(true)
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// newRequest makes a request to srv with the Host set to host.
func newRequest(t *testing.T, ctx context.Context, srv *httptest.Server, method, target, host string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	return req
}

// do sends req with a waitLimit deadline and returns the response with its
// body read.
func do(t *testing.T, c *http.Client, req *http.Request, wantMajor int) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), waitLimit)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	if wantMajor != 0 && resp.ProtoMajor != wantMajor {
		t.Fatalf("response proto = %s, want HTTP/%d", resp.Proto, wantMajor)
	}
	return resp, string(b)
}

// errorBody is the JSON every error response carries.
type errorBody struct {
	Error     string `json:"error"`
	RequestID string `json:"request_id"`
}

// checkErrorBody decodes an error response and checks its content type and
// that it carries the response's x-request-id.
func checkErrorBody(t *testing.T, h http.Header, body string) errorBody {
	t.Helper()
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.Error == "" || e.RequestID == "" {
		t.Errorf("error body %q: want both error and request_id", body)
	}
	// The header carries the id as sent; JSON can only carry it as
	// valid UTF-8.
	if got := h.Get("X-Request-Id"); jsonRoundTrip(t, got) != e.RequestID {
		t.Errorf("x-request-id = %q, want the body's request_id %q", got, e.RequestID)
	}
	return e
}

// headerString renders a header for failure messages.
func headerString(h http.Header) string {
	var b strings.Builder
	_ = h.Write(&b)
	return b.String()
}

// jsonRoundTrip returns s as it reads after encoding/json encodes and
// decodes it: invalid UTF-8 bytes become U+FFFD.
func jsonRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
