package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/scoregate/scoregate/bench"
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
