package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/html"

	"github.com/scoregate/scoregate/bench"
	"github.com/scoregate/scoregate/metrics"
)

// benchLoad keeps every run short: well under 2 s of load per test.
var benchLoad = []string{"--duration", "200ms", "--warmup", "50ms", "--concurrency", "4", "--h2-conns", "2", "--h2-streams", "2"}

func noEnv(string) (string, bool) { return "", false }

// runBenchJSON runs `scoregate bench args... --json` and decodes its report.
func runBenchJSON(t *testing.T, getenv func(string) (string, bool), args ...string) benchReport {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(append([]string{"bench", "--json"}, benchLoad...), args...)
	if code := run(t.Context(), args, getenv, &stdout, &stderr); code != exitOK {
		t.Fatalf("scoregate %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, stderr.String())
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", stdout.String(), err)
	}
	return rep
}

func checkResult(t *testing.T, r *bench.Result, scenario bench.Scenario) {
	t.Helper()
	if r.Scenario != scenario || r.Requests == 0 || r.Errors.Total() != 0 {
		t.Errorf("%s: scenario %s, %d requests, errors %+v; want %s, some requests and no errors", r.Label, r.Scenario, r.Requests, r.Errors, scenario)
	}
}

// TestBenchInProcess runs each scenario with no --url: through an
// in-process scoregate and, for h1 and h2, straight to its backend.
func TestBenchInProcess(t *testing.T) {
	for _, tt := range []struct {
		scenario    bench.Scenario
		wantResults int
	}{
		{bench.Handshake, 1},
		{bench.Resume, 1},
		{bench.H1, 2},
		{bench.H2, 2},
	} {
		t.Run(string(tt.scenario), func(t *testing.T) {
			rep := runBenchJSON(t, noEnv, "--scenario", string(tt.scenario))
			if len(rep.Results) != tt.wantResults {
				t.Fatalf("%d results, want %d", len(rep.Results), tt.wantResults)
			}
			for _, r := range rep.Results {
				checkResult(t, r, tt.scenario)
			}
			via := rep.Results[0]
			if via.Label != "scoregate" || !strings.HasPrefix(via.URL, "https://localhost:") || !strings.HasPrefix(via.Connect, "127.0.0.1:") {
				t.Errorf("first result: label %q, URL %q, connect %q; want scoregate at https://localhost, 127.0.0.1", via.Label, via.URL, via.Connect)
			}
			switch tt.scenario {
			case bench.Handshake:
				if via.ResumedShare != 0 {
					t.Errorf("resumed share = %v, want 0", via.ResumedShare)
				}
			case bench.Resume:
				if via.ResumedShare != 1 {
					t.Errorf("resumed share = %v, want 1", via.ResumedShare)
				}
			default:
				if direct := rep.Results[1]; direct.Label != "direct backend" || !strings.HasPrefix(direct.URL, "http://127.0.0.1:") {
					t.Errorf("second result: label %q, URL %q; want the direct backend over http", direct.Label, direct.URL)
				}
				if rep.Added == nil || *rep.Added != bench.Added(via, rep.Results[1]) {
					t.Errorf("added = %+v, want scoregate's latency minus the direct backend's", rep.Added)
				}
			}
		})
	}
}

// TestBenchURL measures an HTTPS server given by URL, connecting by
// address, trusting a CA file, with a plain-HTTP baseline, settings from
// the environment, and an HTML report.
func TestBenchURL(t *testing.T) {
	srv := httptest.NewUnstartedServer(bench.NewBackend(bench.BackendConfig{}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	direct := httptest.NewUnstartedServer(bench.NewBackend(bench.BackendConfig{}))
	direct.Config.Protocols = new(http.Protocols)
	direct.Config.Protocols.SetUnencryptedHTTP2(true) // h2 straight to a backend is h2c
	direct.Start()
	t.Cleanup(direct.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	htmlFile := filepath.Join(dir, "report.html")
	env := map[string]string{"SCOREGATE_SCENARIO": "h2", "SCOREGATE_CA_FILE": caFile}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	rep := runBenchJSON(t, getenv, "--url", "https://example.com/score", "--connect", srv.Listener.Addr().String(),
		"--compare-url", direct.URL+"/score", "--html", htmlFile)
	if len(rep.Results) != 2 || rep.Added == nil {
		t.Fatalf("%d results, added %v; want 2 and the added latency", len(rep.Results), rep.Added)
	}
	checkResult(t, rep.Results[0], bench.H2)
	checkResult(t, rep.Results[1], bench.H2)
	if got := rep.Results[0].Label; got != "example.com" {
		t.Errorf("label = %q, want the URL's host", got)
	}

	b, err := os.ReadFile(htmlFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("--html: %v", err)
	}
	var series int
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "path" {
			for _, a := range n.Attr {
				if a.Key == "class" && a.Val == "series" {
					series++
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if series != 2 {
		t.Errorf("--html report has %d series, want 2", series)
	}
}

// TestBenchTable checks the default output: the table, then the added
// latency in one sentence.
func TestBenchTable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := append([]string{"bench", "--scenario", "h1"}, benchLoad...)
	if code := run(t.Context(), args, noEnv, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"scoregate", "direct backend", "added", "p99.9", "throughput", "scoregate adds p50 "} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout:\n%s\nwant it to contain %q", out, want)
		}
	}
	if !strings.Contains(stderr.String(), "scoregate h1 ") && stderr.Len() > 0 {
		t.Errorf("stderr = %q, want only progress lines", stderr.String())
	}
}

// TestBenchNothingSucceeds: a run in which no request succeeds is a
// failure, exit 1, with the first error in one line.
func TestBenchNothingSucceeds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stdout, stderr bytes.Buffer
	args := append([]string{"bench", "--url", "https://example.com/score", "--connect", addr, "--insecure", "--scenario", "handshake"}, benchLoad...)
	if code := run(context.Background(), args, noEnv, &stdout, &stderr); code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	if got := stderr.String(); !strings.Contains(got, "scoregate: bench: no request to https://example.com/score succeeded; first error: ") || !strings.Contains(got, "connection refused") {
		t.Errorf("stderr = %q, want the failure and its first error", got)
	}
	if !strings.Contains(stdout.String(), "dial") {
		t.Errorf("stdout:\n%s\nwant the table with the dial errors", stdout.String())
	}
}

// TestBenchAlternations: with --alternations 3 the in-process targets take
// turns, and the output ends with the added latency's median and spread
// at p50, p99 and p99.9; --json carries the same. No timing is asserted.
func TestBenchAlternations(t *testing.T) {
	alt := []string{"--scenario", "h1", "--rate", "200", "--alternations", "3"}

	var stdout, stderr bytes.Buffer
	args := append(append([]string{"bench"}, benchLoad...), alt...)
	if code := run(t.Context(), args, noEnv, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"scoregate #1", "direct backend #1", "scoregate #3", "direct backend #3"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout:\n%s\nwant it to contain %q", out, want)
		}
	}
	_, table, ok := strings.Cut(out, "scoregate adds over direct backend, 3 alternations")
	if !ok {
		t.Fatalf("stdout:\n%s\nwant the added-latency table", out)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 {
		t.Fatalf("added-latency table:\n%s\nwant a title, a header and 3 rows", table)
	}
	if got, want := strings.Fields(lines[1]), []string{"median", "min", "max", "#1", "#2", "#3"}; !slices.Equal(got, want) {
		t.Errorf("header = %q, want %q", got, want)
	}
	for i, name := range []string{"p50", "p99", "p99.9"} {
		f := strings.Fields(lines[2+i])
		if len(f) != 7 || f[0] != name {
			t.Errorf("row %q, want %s and 6 latencies", lines[2+i], name)
			continue
		}
		var d [6]time.Duration
		for j, s := range f[1:] {
			var err error
			if d[j], err = time.ParseDuration(s); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if median, lo, hi := d[0], d[1], d[2]; lo > median || median > hi {
			t.Errorf("%s: median %s outside min %s .. max %s", name, median, lo, hi)
		}
	}

	rep := runBenchJSON(t, noEnv, alt...)
	if len(rep.Results) != 6 || rep.Added != nil || rep.Alternated == nil {
		t.Fatalf("--json: %d results, added %v, alternated %v; want 6, none, and the summary", len(rep.Results), rep.Added, rep.Alternated)
	}
	for i, r := range rep.Results {
		checkResult(t, r, bench.H1)
		want := fmt.Sprintf("%s #%d", []string{"scoregate", "direct backend"}[i%2], i/2+1)
		if r.Label != want {
			t.Errorf("result %d: label %q, want %q", i, r.Label, want)
		}
	}
	a := rep.Alternated
	if a.Alternations != 3 || len(a.P50.Each) != 3 || len(a.P999.Each) != 3 {
		t.Errorf("alternated: %d alternations, %d and %d p50 and p99.9 differences; want 3 each", a.Alternations, len(a.P50.Each), len(a.P999.Each))
	}
	if got, want := a.P99.Each[1], bench.Added(rep.Results[2], rep.Results[3]).P99; got != want {
		t.Errorf("alternation 2's p99 difference = %s, want %s (run 3 minus run 4)", got, want)
	}
}

// TestBenchIdle holds idle connections to a real TLS server in this
// process and measures this process: its RSS with --server-pid, its Go
// heap and stacks with --server-metrics, from a real scoregate /metrics
// page (metrics.New registers the Go collector).
func TestBenchIdle(t *testing.T) {
	srv := httptest.NewTLSServer(bench.NewBackend(bench.BackendConfig{}))
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	ms := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(ms.Close)
	args := []string{"bench", "--url", srv.URL + "/", "--insecure", "--idle", "50", "--duration", "200ms",
		"--server-pid", strconv.Itoa(os.Getpid()), "--server-metrics", ms.URL + "/metrics"}

	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), append(args, "--json"), noEnv, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var rep bench.IdleReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", stdout.String(), err)
	}
	// Samples at 0 and at 200ms: the first as soon as all are open, the
	// last at the end of --duration.
	if rep.Connections != 50 || rep.Samples != 2 || rep.ServerPID != os.Getpid() || rep.ServerMetrics != ms.URL+"/metrics" || rep.Interrupted {
		t.Errorf("report %+v; want 50 connections, 2 samples, this process and its metrics, not interrupted", rep)
	}
	if rep.Held < 200*time.Millisecond {
		t.Errorf("held %s, want at least --duration 200ms", rep.Held)
	}
	for _, q := range []struct {
		name string
		g    *bench.MemoryGrowth
	}{{"rss", rep.RSS}, {"go_heap_inuse", rep.HeapInuse}, {"go_stack_inuse", rep.StackInuse}} {
		if q.g == nil || q.g.Before == 0 || q.g.During == 0 {
			t.Errorf("%s = %+v, want both readings", q.name, q.g)
			continue
		}
		if want := int64(math.Round((float64(q.g.During) - float64(q.g.Before)) / 50)); q.g.PerConn != want {
			t.Errorf("%s: %d bytes per connection, want %d", q.name, q.g.PerConn, want)
		}
	}
	if !strings.HasPrefix(stderr.String(), "50 idle connections open to 127.0.0.1:") {
		t.Errorf("stderr = %q, want the progress line", stderr.String())
	}

	stdout.Reset()
	if code := run(t.Context(), args, noEnv, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"50 idle connections to " + srv.URL, "median of 2 samples", "per connection", "RSS", "Go heap in use", "Go stacks"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout:\n%s\nwant it to contain %q", stdout.String(), want)
		}
	}
}

// TestBenchIdleLost: connections the server closes while they are held
// (its idle timeout, say) fail the run: figures divided by connections no
// longer held would be wrong. The server here closes them all as soon as
// all are idle, well within the hold.
func TestBenchIdleLost(t *testing.T) {
	const n = 20
	srv := httptest.NewUnstartedServer(bench.NewBackend(bench.BackendConfig{}))
	var mu sync.Mutex
	idle := map[net.Conn]bool{}
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if st != http.StateIdle {
			return
		}
		idle[c] = true
		if len(idle) == n {
			for c := range idle {
				c.Close()
			}
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"bench", "--url", srv.URL + "/", "--insecure", "--idle", strconv.Itoa(n), "--duration", "1s"}, noEnv, &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "of the 20 idle connections ended while held") {
		t.Fatalf("exit %d, stderr %q; want %d and the lost connections named", code, stderr.String(), exitFailure)
	}
}

// TestBenchIdleErrors: a server that cannot be read before the connections
// are opened is a usage error, one line naming the flag.
func TestBenchIdleErrors(t *testing.T) {
	noGo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "scoregate_requests_total 1")
	}))
	t.Cleanup(noGo.Close)
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	gone := strconv.Itoa(pidMax + 1) // no process can have it
	// Never dialled: the baseline reading fails first.
	target := []string{"--url", "https://127.0.0.1:1/", "--idle", "10"}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no such process", slices.Concat(target, []string{"--server-pid", gone}),
			"--server-pid " + gone + ": no such process (open /proc/" + gone + "/status: no such file or directory)"},
		{"no Go collector", slices.Concat(target, []string{"--server-metrics", noGo.URL + "/metrics"}),
			"--server-metrics: " + noGo.URL + "/metrics: no go_memstats_heap_inuse_bytes or go_memstats_stack_inuse_bytes (is the Go collector registered?)"},
		{"pid zero", slices.Concat(target, []string{"--server-pid", "0"}), "--server-pid 0: want the server's process ID"},
		{"metrics not a URL", slices.Concat(target, []string{"--server-metrics", "127.0.0.1:9464"}),
			`--server-metrics "127.0.0.1:9464": want an http:// URL such as http://127.0.0.1:9464/metrics`},
		{"pid without idle", []string{"--server-pid", "1"}, "--server-pid needs --idle"},
		{"metrics without idle", []string{"--server-metrics", noGo.URL}, "--server-metrics needs --idle"},
		{"negative idle", []string{"--idle", "-1"}, "--idle -1: want a number of connections"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), append([]string{"bench"}, tt.args...), noEnv, &stdout, &stderr); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if got, want := stderr.String(), "scoregate: "+tt.want+"\n"; got != want {
				t.Errorf("stderr = %q, want %q", got, want)
			}
		})
	}
}

// TestBenchIdleMetricsFailWhileHeld: metrics that stop answering while
// the connections are held fail the run, exit 1, naming the flag.
func TestBenchIdleMetricsFailWhileHeld(t *testing.T) {
	srv := httptest.NewTLSServer(bench.NewBackend(bench.BackendConfig{}))
	t.Cleanup(srv.Close)
	var scrapes atomic.Int32
	ms := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if scrapes.Add(1) > 1 {
			http.Error(w, "gone", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "go_memstats_heap_inuse_bytes 4096\ngo_memstats_stack_inuse_bytes 8192")
	}))
	t.Cleanup(ms.Close)
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "--url", srv.URL + "/", "--insecure", "--idle", "5", "--duration", "200ms", "--server-metrics", ms.URL}
	if code := run(t.Context(), args, noEnv, &stdout, &stderr); code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	want := "scoregate: while holding the idle connections: --server-metrics: GET " + ms.URL + ": status 500 Internal Server Error, want 200\n"
	if got := stderr.String(); !strings.HasSuffix(got, want) {
		t.Errorf("stderr = %q, want it to end with %q", got, want)
	}
}
