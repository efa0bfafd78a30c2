package bench_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/scoregate/scoregate/bench"
)

// Every run here is short: load for well under 2 s per test.
const (
	testDuration = 250 * time.Millisecond
	testWarmup   = 50 * time.Millisecond
)

// tlsBackend starts the synthetic backend (or h) behind TLS on 127.0.0.1,
// with HTTP/2, and returns a Config that targets it as https://example.com
// (the name its certificate has) at its address.
func tlsBackend(t *testing.T, h http.Handler) bench.Config {
	t.Helper()
	if h == nil {
		h = bench.NewBackend(bench.BackendConfig{})
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected in some tests
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return bench.Config{
		URL:      &url.URL{Scheme: "https", Host: "example.com", Path: "/score"},
		Connect:  srv.Listener.Addr().String(),
		RootCAs:  roots(srv),
		Duration: testDuration,
		Warmup:   testWarmup,
	}
}

func roots(srv *httptest.Server) *x509.CertPool {
	return srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

// plainBackend starts the synthetic backend over plain HTTP/1.1 and h2c
// (prior knowledge), as the --dev backend is reached.
func plainBackend(t *testing.T) bench.Config {
	t.Helper()
	srv := httptest.NewUnstartedServer(bench.NewBackend(bench.BackendConfig{}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/score")
	return bench.Config{URL: u, Duration: testDuration, Warmup: testWarmup}
}

func run(t *testing.T, cfg bench.Config) *bench.Result {
	t.Helper()
	r, err := bench.Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func TestRunScenarios(t *testing.T) {
	for _, tt := range []struct {
		name     string
		scenario bench.Scenario
		plain    bool
	}{
		{"full handshakes", bench.Handshake, false},
		{"resumed handshakes", bench.Resume, false},
		{"h1 over TLS", bench.H1, false},
		{"h2 over TLS", bench.H2, false},
		{"h1 plain", bench.H1, true},
		{"h2c prior knowledge", bench.H2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var cfg bench.Config
			if tt.plain {
				cfg = plainBackend(t)
			} else {
				cfg = tlsBackend(t, nil)
			}
			cfg.Scenario = tt.scenario
			cfg.Concurrency, cfg.H2Conns, cfg.H2Streams = 4, 2, 4
			r := run(t, cfg)
			if r.Requests == 0 || r.Errors.Total() != 0 {
				t.Errorf("requests = %d, errors = %+v; want some requests and no errors", r.Requests, r.Errors)
			}
			if r.Throughput <= 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 || len(r.Percentiles) == 0 {
				t.Errorf("throughput %v, latency %+v, %d percentiles: want positive figures", r.Throughput, r.Latency, len(r.Percentiles))
			}
			if r.Duration < testDuration/2 {
				t.Errorf("measured duration = %v, want about %v", r.Duration, testDuration)
			}
			if r.BodyBytes != bench.DefaultBodyBytes {
				t.Errorf("body bytes = %d, want %d", r.BodyBytes, bench.DefaultBodyBytes)
			}
			switch tt.scenario {
			case bench.Handshake:
				if r.ResumedShare != 0 {
					t.Errorf("full handshakes: resumed share = %v, want 0", r.ResumedShare)
				}
			case bench.Resume:
				if r.ResumedShare != 1 {
					t.Errorf("resumed handshakes: resumed share = %v (%d of %d), want 1", r.ResumedShare, r.Resumed, r.Requests)
				}
			}
		})
	}
}

// TestRunProtocols checks that each scenario speaks the protocol it says,
// with SNI and Host from the URL whatever address it connects to.
func TestRunProtocols(t *testing.T) {
	for _, tt := range []struct {
		scenario  bench.Scenario
		wantProto string
		wantClose bool
	}{
		{bench.Handshake, "HTTP/1.1", true},
		{bench.Resume, "HTTP/1.1", true},
		{bench.H1, "HTTP/1.1", false},
		{bench.H2, "HTTP/2.0", false},
	} {
		t.Run(string(tt.scenario), func(t *testing.T) {
			var bad atomic.Value
			cfg := tlsBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got := []any{r.Proto, r.Host, r.TLS.ServerName, r.Close, r.Method, r.URL.Path, r.ContentLength}
				want := []any{tt.wantProto, "example.com", "example.com", tt.wantClose, "POST", "/score", int64(bench.DefaultBodyBytes)}
				if !reflect.DeepEqual(got, want) {
					bad.CompareAndSwap(nil, got)
				}
			}))
			cfg.Scenario, cfg.Concurrency, cfg.H2Conns, cfg.H2Streams = tt.scenario, 2, 1, 2
			cfg.Duration, cfg.Warmup = 50*time.Millisecond, 0
			r := run(t, cfg)
			if got := bad.Load(); got != nil {
				t.Errorf("request seen as (proto, host, SNI, close, method, path, length) = %v", got)
			}
			if r.Requests == 0 {
				t.Errorf("no request succeeded: %+v", r.Errors)
			}
		})
	}
}

func TestOpenLoopRate(t *testing.T) {
	cfg := plainBackend(t)
	cfg.Rate, cfg.Concurrency, cfg.Warmup, cfg.Duration = 400, 4, 0, 500*time.Millisecond
	r := run(t, cfg)
	// Request i is due at i/400 s; those due inside the 0.5 s window are
	// measured, so exactly 200, each a success or an error.
	if got := r.Requests + r.Errors.Total(); got < 199 || got > 201 {
		t.Errorf("requests + errors = %d, want 200 (rate × duration)", got)
	}
	if r.Errors.Total() != 0 {
		t.Errorf("errors = %+v, want none", r.Errors)
	}
	if r.Loop != "open" || r.Rate != 400 {
		t.Errorf("loop, rate = %q, %v; want open, 400", r.Loop, r.Rate)
	}
	if r.Throughput < 300 || r.Throughput > 500 {
		t.Errorf("throughput = %.0f/s, want about 400/s", r.Throughput)
	}
}

// TestOpenLoopStallShows stalls one request at the backend until 100 later
// ones have arrived: at 1,000 requests/s that is about 100 ms after it was
// due (give or take the few places by which 4 workers can reorder
// arrivals), which the p99.9 of 500 requests, their maximum, must show.
func TestOpenLoopStallShows(t *testing.T) {
	const stallAt, releaseAfter = 100, 100
	var n atomic.Int64
	release := make(chan struct{})
	backend := bench.NewBackend(bench.BackendConfig{})
	cfg := tlsBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices a client that leaves
		switch n.Add(1) {
		case stallAt:
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case stallAt + releaseAfter:
			close(release)
		}
		backend.ServeHTTP(w, r)
	}))
	cfg.Scenario, cfg.Rate, cfg.Concurrency, cfg.Warmup, cfg.Duration = bench.H1, 1000, 4, 0, 500*time.Millisecond
	r := run(t, cfg)
	if r.Errors.Total() != 0 {
		t.Fatalf("errors = %+v, want none", r.Errors)
	}
	const stall = releaseAfter * time.Millisecond // 100 requests at 1/ms
	if r.Latency.P999 < stall-10*time.Millisecond {
		t.Errorf("p99.9 = %v, want at least the %v stall", r.Latency.P999, stall)
	}
	if r.Latency.P50 > stall/2 {
		t.Errorf("p50 = %v, want well under the %v stall", r.Latency.P50, stall)
	}
}

func TestErrorKinds(t *testing.T) {
	status := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
	}
	// hanging is a backend that answers only when the client gives up (an
	// HTTP/1 server notices that once it has read the body) or the test
	// ends.
	hanging := func(t *testing.T) bench.Config {
		stop := make(chan struct{})
		cfg := tlsBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}))
		t.Cleanup(func() { close(stop) }) // runs before the server's Close, which waits for handlers
		return cfg
	}
	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return ln.Addr().String()
	}
	for _, tt := range []struct {
		name     string
		scenario bench.Scenario
		setup    func(*testing.T, *bench.Config)
		want     func(bench.Errors) uint64
	}{
		{"500 is 5xx", bench.H1, func(t *testing.T, c *bench.Config) { *c = tlsBackend(t, status(500)) }, func(e bench.Errors) uint64 { return e.Status5xx }},
		{"404 is 4xx", bench.H2, func(t *testing.T, c *bench.Config) { *c = tlsBackend(t, status(404)) }, func(e bench.Errors) uint64 { return e.Status4xx }},
		{"304 is other status", bench.H1, func(t *testing.T, c *bench.Config) { *c = tlsBackend(t, status(304)) }, func(e bench.Errors) uint64 { return e.StatusOther }},
		{"closed port is dial", bench.Handshake, func(t *testing.T, c *bench.Config) { *c = tlsBackend(t, nil); c.Connect = closedPort(t) }, func(e bench.Errors) uint64 { return e.Dial }},
		{"closed port is dial (h1)", bench.H1, func(t *testing.T, c *bench.Config) { *c = tlsBackend(t, nil); c.Connect = closedPort(t) }, func(e bench.Errors) uint64 { return e.Dial }},
		{"untrusted certificate is tls", bench.Handshake, func(t *testing.T, c *bench.Config) { *c = tlsBackend(t, nil); c.RootCAs = x509.NewCertPool() }, func(e bench.Errors) uint64 { return e.TLS }},
		{"other name is tls", bench.Resume, func(t *testing.T, c *bench.Config) { *c = tlsBackend(t, nil); c.URL.Host = "other.example.net" }, func(e bench.Errors) uint64 { return e.TLS }},
		{"no answer within the timeout", bench.H1, func(t *testing.T, c *bench.Config) { *c = hanging(t); c.Timeout = 20 * time.Millisecond }, func(e bench.Errors) uint64 { return e.Timeout }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var cfg bench.Config
			tt.setup(t, &cfg)
			cfg.Scenario, cfg.Concurrency, cfg.H2Conns, cfg.H2Streams = tt.scenario, 2, 1, 2
			cfg.Duration, cfg.Warmup = 100*time.Millisecond, 0
			r := run(t, cfg)
			if got := tt.want(r.Errors); got == 0 || got != r.Errors.Total() {
				t.Errorf("errors = %+v, want all of them, and some, of the expected kind", r.Errors)
			}
			if r.Requests != 0 || r.Errors.First == "" {
				t.Errorf("requests = %d, first error %q; want 0 and a first error", r.Requests, r.Errors.First)
			}
		})
	}
}

func TestRunInvalidConfig(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		name string
		cfg  bench.Config
		want string
	}{
		{"no URL", bench.Config{}, "no URL"},
		{"ftp URL", bench.Config{URL: u("ftp://example.com/")}, "want https://"},
		{"handshake over http", bench.Config{URL: u("http://example.com/"), Scenario: bench.Handshake}, "needs an https URL"},
		{"unknown scenario", bench.Config{URL: u("https://example.com/"), Scenario: "h3"}, `scenario "h3"`},
		{"negative concurrency", bench.Config{URL: u("https://example.com/"), Concurrency: -1}, "concurrency -1"},
		{"negative rate", bench.Config{URL: u("https://example.com/"), Rate: -5}, "rate -5"},
		{"negative duration", bench.Config{URL: u("https://example.com/"), Duration: -time.Second}, "duration -1s"},
		{"connect without port", bench.Config{URL: u("https://example.com/"), Connect: "127.0.0.1"}, "host:port"},
		{"relative path", bench.Config{URL: u("https://example.com/"), Path: "score"}, "must start with /"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bench.Run(t.Context(), tt.cfg, nil)
			if !errors.Is(err, bench.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: error = %v, want ErrInvalidConfig containing %q", err, tt.want)
			}
		})
	}
}

func TestRunInterrupted(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	backend := bench.NewBackend(bench.BackendConfig{})
	cfg := tlsBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		backend.ServeHTTP(w, r)
	}))
	cfg.Duration, cfg.Concurrency = time.Hour, 2
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan *bench.Result, 1)
	go func() {
		r, _ := bench.Run(ctx, cfg, nil)
		done <- r
	}()
	<-started
	cancel()
	select {
	case r := <-done:
		if !r.Interrupted {
			t.Errorf("Interrupted = false, want true")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context's end")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	cfg := tlsBackend(t, nil)
	cfg.Scenario, cfg.Concurrency, cfg.Duration, cfg.Warmup = bench.Resume, 2, 100*time.Millisecond, 20*time.Millisecond
	r := run(t, cfg)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got bench.Result
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, r) {
		t.Errorf("after a JSON round trip:\n got %+v\nwant %+v", got, *r)
	}
	for _, key := range []string{`"p99_ns":`, `"resumed_share":`, `"status_5xx":`, `"percentiles":[{"percentile":0,`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON %s: want it to contain %s", b, key)
		}
	}
}

func TestWriteHTML(t *testing.T) {
	via := run(t, func() bench.Config { c := tlsBackend(t, nil); c.Concurrency = 2; return c }())
	direct := run(t, func() bench.Config { c := plainBackend(t); c.Concurrency, c.Label = 2, "direct <backend>"; return c }())
	var buf bytes.Buffer
	if err := bench.WriteHTML(&buf, "h1 & friends", via, direct); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("html.Parse: %v", err)
	}
	var svgs, series int
	var texts []string
	var walk func(n *html.Node, inSVG bool)
	walk = func(n *html.Node, inSVG bool) {
		if n.Type == html.ElementNode && n.Data == "svg" {
			svgs++
			inSVG = true
		}
		if inSVG && n.Type == html.ElementNode && n.Data == "path" {
			for _, a := range n.Attr {
				if a.Key == "class" && a.Val == "series" {
					series++
				}
				if a.Key == "d" && !strings.HasPrefix(a.Val, "M") {
					t.Errorf("path d = %q, want it to start with M", a.Val)
				}
			}
		}
		if n.Type == html.TextNode {
			texts = append(texts, n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inSVG)
		}
	}
	walk(doc, false)
	if svgs != 1 || series != 2 {
		t.Errorf("HTML has %d <svg> and %d series paths, want 1 and 2", svgs, series)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"h1 & friends", "direct <backend>", "99.9%", "p99.9"} {
		if !strings.Contains(all, want) {
			t.Errorf("HTML text does not contain %q", want)
		}
	}
	if bytes.Contains(buf.Bytes(), []byte("<script")) || bytes.Contains(buf.Bytes(), []byte("http://cdn")) {
		t.Errorf("HTML loads something: want it self-contained")
	}
}

func TestWriteTable(t *testing.T) {
	via := &bench.Result{Label: "scoregate", Scenario: bench.H1, Loop: "closed", Concurrency: 32, Requests: 12345, Throughput: 4115.2,
		Duration: 3 * time.Second, Latency: bench.Latency{P50: 1500 * time.Microsecond, P99: 4 * time.Millisecond},
		Errors: bench.Errors{Status5xx: 2, First: "HTTP status 502"}}
	direct := &bench.Result{Label: "direct", Scenario: bench.H1, Loop: "closed", Concurrency: 32, Requests: 20000, Throughput: 6666.6,
		Duration: 3 * time.Second, Latency: bench.Latency{P50: 1200 * time.Microsecond, P99: 3500 * time.Microsecond}}
	var buf bytes.Buffer
	if err := bench.WriteTable(&buf, via, direct); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"scoregate", "direct", "added", "12,345", "4,115/s", "1.50ms", "+300µs", "+500µs", "5xx", "scoregate: first error: HTTP status 502"} {
		if !strings.Contains(out, want) {
			t.Errorf("table:\n%s\nwant it to contain %q", out, want)
		}
	}
	if strings.Contains(out, "resumed") {
		t.Errorf("table:\n%s\nwant no resumed row for h1", out)
	}
}
