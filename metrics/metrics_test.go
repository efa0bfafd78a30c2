package metrics

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMetricsRecord(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)

	m.Request(200, "POST", 30*time.Millisecond, 28*time.Millisecond)
	m.Request(200, "POST", 10*time.Millisecond, 9*time.Millisecond)
	m.Request(421, "GET", time.Millisecond, -1) // refused before the backend
	m.Request(200, "BREW", time.Millisecond, 0)
	m.Overhead(3 * time.Millisecond)
	m.Overhead(time.Millisecond)
	m.Overhead(-time.Millisecond) // counts as 0
	m.HandshakeOK(TLSVersion(tls.VersionTLS13), false)
	m.HandshakeOK(TLSVersion(tls.VersionTLS13), true)
	m.HandshakeError(HandshakeUnrecognizedName)
	m.HandshakeError(HandshakeTimeout)
	m.CertLoaded("file", time.Unix(2000000000, 0), false)
	m.CertLoaded("file", time.Unix(2100000000, 0), true)
	m.CertReloadFailed()
	m.UpstreamError(UpstreamRefused)
	m.AuthFailure()
	m.BackendReady(true)
	m.InFlight(1)

	for _, tt := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"POST 200", m.requests.WithLabelValues("200", "POST"), 2},
		{"GET 421", m.requests.WithLabelValues("421", "GET"), 1},
		{"unknown method", m.requests.WithLabelValues("200", "OTHER"), 1},
		{"full TLS 1.3 handshakes", m.handshakes.WithLabelValues(ResultOK, "1.3", "false"), 1},
		{"resumed TLS 1.3 handshakes", m.handshakes.WithLabelValues(ResultOK, "1.3", "true"), 1},
		{"failed handshakes", m.handshakes.WithLabelValues(ResultError, "", "false"), 2},
		{"unrecognized_name errors", m.handshakeErrors.WithLabelValues(HandshakeUnrecognizedName), 1},
		{"timeout errors", m.handshakeErrors.WithLabelValues(HandshakeTimeout), 1},
		{"missing_sni errors (pre-created)", m.handshakeErrors.WithLabelValues(HandshakeMissingSNI), 0},
		{"expiry", m.certExpiry.WithLabelValues("file"), 2100000000},
		{"reloads ok", m.certReloads.WithLabelValues(ResultOK), 1},
		{"reloads error", m.certReloads.WithLabelValues(ResultError), 1},
		{"upstream refused", m.upstreamErrors.WithLabelValues(UpstreamRefused), 1},
		{"auth failures", m.authFailures, 1},
		{"backend ready", m.backendReady, 1},
		{"in flight", m.inFlight, 1},
	} {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Histograms: every request in the duration one; only forwarded ones in
	// the upstream one; the overhead one holds what Overhead was given,
	// whatever the totals were.
	for _, tt := range []struct {
		name      string
		h         prometheus.Histogram
		wantCount uint64
		wantSum   float64
	}{
		{"request duration", m.requestDuration, 4, 0.042},
		{"upstream duration", m.upstreamDuration, 3, 0.037},
		{"overhead", m.overhead, 3, 0.004},
	} {
		count, sum := histogram(t, tt.h)
		if count != tt.wantCount || sum < tt.wantSum-1e-9 || sum > tt.wantSum+1e-9 {
			t.Errorf("%s: count %d, sum %v; want %d, %v", tt.name, count, sum, tt.wantCount, tt.wantSum)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != 3 {
		t.Errorf("scoregate_requests_total has %d series, want 3", n)
	}
	if v := m.certLastReloadOK; testutil.ToFloat64(v) < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last reload success timestamp = %v, want about now", testutil.ToFloat64(v))
	}

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func histogram(t *testing.T, h prometheus.Histogram) (uint64, float64) {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	h.Collect(ch)
	var pb dto.Metric
	if err := (<-ch).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetHistogram().GetSampleCount(), pb.GetHistogram().GetSampleSum()
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *Metrics
	m.Request(200, "GET", time.Second, time.Second)
	m.Overhead(time.Millisecond)
	m.InFlight(1)
	m.ConnState(nil, http.StateNew)
	m.HandshakeOK("1.3", false)
	m.HandshakeError(HandshakeEOF)
	m.CertLoaded("file", time.Now(), true)
	m.CertReloadFailed()
	m.AuthKeyReload(false)
	m.UpstreamError(UpstreamOther)
	m.AuthFailure()
	m.BackendReady(false)
	m.ACMEOrder()
	m.ACMERenewal()
	m.ACMEFailure()
}

func TestMetricsEndpointParses(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Request(200, "POST", time.Millisecond, time.Millisecond/2)
	m.Overhead(time.Millisecond / 4)
	srv := httptest.NewServer(NewMux(HealthConfig{Gatherer: reg}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	for _, name := range []string{"scoregate_requests_total", "scoregate_proxy_overhead_seconds", "scoregate_build_info", "go_goroutines", "process_cpu_seconds_total"} {
		if families[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
}
