package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestResponseBuffer: the buffered bytes go up and down with each
// reservation and release, answers that found no room are counted, and a
// nil Metrics records nothing.
func TestResponseBuffer(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.ResponseBuffer(64 << 10)
	m.ResponseBuffer(16 << 10)
	m.ResponseBuffer(-16 << 10)
	m.ResponseBufferFull()
	for _, tt := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"scoregate_response_buffer_bytes", m.responseBuffer, 64 << 10},
		{"scoregate_response_buffer_full_total", m.responseBufFull, 1},
	} {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	var none *Metrics
	none.ResponseBuffer(1)
	none.ResponseBufferFull()
}
