package certs_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The counters that certs records in metrics.Metrics, which are the only
// count of handshakes, refusals, reloads and ACME orders.
const (
	handshakesTotal      = "scoregate_tls_handshakes_total"       // result, version, resumed
	handshakeErrorsTotal = "scoregate_tls_handshake_errors_total" // reason
	reloadsTotal         = "scoregate_certificate_reloads_total"  // result
	acmeOrdersTotal      = "scoregate_acme_orders_total"          // first certificates this instance obtained
	acmeRenewalsTotal    = "scoregate_acme_renewals_total"
	acmeFailuresTotal    = "scoregate_acme_failures_total"
)

// counter returns the sum of the series of the counter name in reg whose
// labels include all of labels (nil matches every series). A counter with
// no series yet, such as a label set never recorded, reads as 0.
func counter(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		if f.GetType() != dto.MetricType_COUNTER {
			t.Fatalf("%s is a %s, not a counter", name, f.GetType())
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// hasLabels reports whether m has every label in want, with its value.
func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
