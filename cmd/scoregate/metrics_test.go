package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scoregate/scoregate/certs/certstest"
)

// metricValue returns the value of the series of family name whose labels
// include labels, summed over matching series (0 if there is none).
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// TestServeMetrics sends real requests and handshakes, good and bad, and
// checks what scoregate_* records.
func TestServeMetrics(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL)
	roots := poolOf(t, f.CAFile)
	value := func(name string, labels map[string]string) float64 { return metricValue(t, ts.reg, name, labels) }

	c := ts.client(t, roots, "api.example.com", false)
	for range 2 {
		resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", "https://api.example.com/", nil)
	req.Host = "evil.example.com"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// Failing handshakes: another SNI, no SNI, TLS 1.1, not TLS at all.
	for _, cfg := range []*tls.Config{
		{ServerName: "evil.example.com", InsecureSkipVerify: true},
		{InsecureSkipVerify: true},
		{ServerName: "api.example.com", RootCAs: roots, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10},
	} {
		if conn, err := tls.Dial("tcp", ts.tlsAddr(), cfg); err == nil {
			conn.Close()
			t.Fatalf("handshake with %+v succeeded, want it refused", cfg)
		}
	}
	conn, err := net.Dial("tcp", ts.tlsAddr())
	if err != nil {
		t.Fatal(err)
	}
	// (Plain HTTP gets net/http's own 400 and is not reported to scoregate.)
	io.WriteString(conn, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09")
	io.Copy(io.Discard, conn)
	conn.Close()

	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"scoregate_requests_total", map[string]string{"code": "200", "method": "POST"}, 2},
		{"scoregate_requests_total", map[string]string{"code": "421", "method": "GET"}, 1},
		{"scoregate_request_duration_seconds", nil, 3},
		{"scoregate_upstream_duration_seconds", nil, 2},
		{"scoregate_proxy_overhead_seconds", nil, 2},
		{"scoregate_requests_in_flight", nil, 0},
		{"scoregate_tls_handshakes_total", map[string]string{"result": "ok", "version": "1.3", "resumed": "false"}, 1},
		{"scoregate_tls_handshake_errors_total", map[string]string{"reason": "unrecognized_name"}, 1},
		{"scoregate_tls_handshake_errors_total", map[string]string{"reason": "missing_sni"}, 1},
		{"scoregate_tls_handshake_errors_total", map[string]string{"reason": "protocol_version"}, 1},
		{"scoregate_tls_handshake_errors_total", map[string]string{"reason": "not_tls"}, 1},
		{"scoregate_certificate_reloads_total", map[string]string{"result": "error"}, 0},
		{"scoregate_backend_ready", nil, 1},
		{"scoregate_build_info", nil, 1},
	} {
		// The server counts some failures after the client has seen them.
		deadline := time.Now().Add(5 * time.Second)
		for value(tt.name, tt.labels) != tt.want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := value(tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	notAfter := value("scoregate_certificate_expiry_timestamp_seconds", map[string]string{"source": "file"})
	if want := float64(f.Leaf.Cert.NotAfter.Unix()); notAfter != want {
		t.Errorf("scoregate_certificate_expiry_timestamp_seconds{source=file} = %v, want %v", notAfter, want)
	}

	// /metrics on the metrics listener parses as Prometheus text.
	resp, err = http.Get("http://" + ts.addr("metrics-listen") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil || mfs["scoregate_requests_total"] == nil {
		t.Errorf("GET /metrics: %d families, %v; want Prometheus text with scoregate_requests_total", len(mfs), err)
	}
}

func TestServeBackendDownNotReady(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", closed)
	c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", true)
	resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("POST /score with the backend down = %d, want 502", resp.StatusCode)
	}
	if got := metricValue(t, ts.reg, "scoregate_upstream_errors_total", map[string]string{"reason": "refused"}); got < 1 {
		t.Errorf("scoregate_upstream_errors_total{reason=refused} = %v, want at least 1", got)
	}
	waitFor(t, 5*time.Second, "/readyz to say the backend is not ready", func() bool {
		resp, err := http.Get("http://" + ts.addr("metrics-listen") + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 503 && strings.Contains(string(b), `"reason":"backend not ready`) && strings.Contains(string(b), `"subject"`)
	})
	if got := metricValue(t, ts.reg, "scoregate_backend_ready", nil); got != 0 {
		t.Errorf("scoregate_backend_ready = %v, want 0", got)
	}
}
