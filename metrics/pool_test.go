package metrics

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPoolMetricsRecord(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	const a, b = "10.0.0.1:5001", "10.0.0.2:5001"

	m.Replicas("default", 2, 2)
	m.Replicas("fraud", 3, 2)
	m.Replicas("fraud", 3, 1) // a later health change
	m.Queued("fraud", 1)
	m.Queued("fraud", 1)
	m.Queued("fraud", -1)
	m.QueueWait("fraud", 0) // admitted at once
	m.QueueWait("fraud", 300*time.Millisecond)
	m.QueueWait("fraud", -time.Millisecond) // counts as 0
	m.AdmissionRefused("fraud", RefusedQueueFull)
	m.AdmissionRefused("fraud", RefusedQueueFull)
	m.AdmissionRefused("default", RefusedNoReplicas)
	m.Outstanding("fraud", a, 1)
	m.Outstanding("fraud", a, 1)
	m.Outstanding("fraud", b, 1)
	m.Outstanding("fraud", b, -1)
	m.ReplicaEjected("fraud")

	for _, tt := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"default replicas", m.replicas.WithLabelValues("default"), 2},
		{"fraud replicas", m.replicas.WithLabelValues("fraud"), 3},
		{"fraud healthy replicas (last call wins)", m.replicasHealthy.WithLabelValues("fraud"), 1},
		{"fraud queue length", m.queueLength.WithLabelValues("fraud"), 1},
		{"default queue length (created by Replicas)", m.queueLength.WithLabelValues("default"), 0},
		{"fraud refused, queue full", m.refused.WithLabelValues("fraud", RefusedQueueFull), 2},
		{"fraud refused, queue timeout (created by Replicas)", m.refused.WithLabelValues("fraud", RefusedQueueTimeout), 0},
		{"default refused, no replicas", m.refused.WithLabelValues("default", RefusedNoReplicas), 1},
		{"outstanding on a", m.outstanding.WithLabelValues("fraud", a), 2},
		{"outstanding on b", m.outstanding.WithLabelValues("fraud", b), 0},
		{"fraud ejections", m.ejections.WithLabelValues("fraud"), 1},
		{"default ejections (created by Replicas)", m.ejections.WithLabelValues("default"), 0},
	} {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Every admitted request is in the histogram, the ones admitted at once
	// with 0.
	count, sum := histogram(t, m.queueWait.WithLabelValues("fraud").(prometheus.Histogram))
	if count != 3 || sum < 0.3-1e-9 || sum > 0.3+1e-9 {
		t.Errorf("fraud queue wait: count %d, sum %v; want 3, 0.3", count, sum)
	}
	// Two services, three reasons each: all six exist from Replicas on.
	if n := testutil.CollectAndCount(m.refused); n != 6 {
		t.Errorf("scoregate_admissions_refused_total has %d series, want 6", n)
	}

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestForgetReplica(t *testing.T) {
	m := New(prometheus.NewRegistry())
	const gone, kept = "10.0.0.1:5001", "10.0.0.2:5001"
	m.Outstanding("fraud", gone, 1)
	m.Outstanding("fraud", gone, -1)
	m.Outstanding("fraud", kept, 1)
	m.Outstanding("other", gone, 1) // the same address in another service

	m.ForgetReplica("fraud", gone)

	if n := testutil.CollectAndCount(m.outstanding); n != 2 {
		t.Errorf("after ForgetReplica, scoregate_replica_outstanding_requests has %d series, want 2", n)
	}
	// Reading must not bring the forgotten series back.
	if got := m.OutstandingRequests("fraud", gone); got != 0 {
		t.Errorf("OutstandingRequests of a forgotten replica = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(m.outstanding); n != 2 {
		t.Errorf("after a read, scoregate_replica_outstanding_requests has %d series, want 2", n)
	}
	if got := m.OutstandingRequests("fraud", kept); got != 1 {
		t.Errorf("OutstandingRequests of the kept replica = %v, want 1", got)
	}
	if got := m.OutstandingRequests("other", gone); got != 1 {
		t.Errorf("OutstandingRequests of the other service's replica = %v, want 1", got)
	}
	m.ForgetReplica("fraud", "never-seen:1") // no such series: nothing happens
}

func TestPoolReadHelpers(t *testing.T) {
	m := New(prometheus.NewRegistry())
	const r = "10.0.0.1:5001"
	m.Replicas("fraud", 1, 1)
	m.AdmissionRefused("fraud", RefusedQueueTimeout)
	m.Queued("fraud", 2)
	m.Outstanding("fraud", r, 3)
	m.QueueWait("fraud", 0)
	m.QueueWait("fraud", time.Second)

	for _, tt := range []struct {
		name      string
		got, want float64
	}{
		{"AdmissionsRefused(queue_timeout)", m.AdmissionsRefused("fraud", RefusedQueueTimeout), 1},
		{"AdmissionsRefused(queue_full)", m.AdmissionsRefused("fraud", RefusedQueueFull), 0},
		{"AdmissionsRefused of an unknown service", m.AdmissionsRefused("nope", RefusedQueueFull), 0},
		{"QueueLength", m.QueueLength("fraud"), 2},
		{"QueueLength of an unknown service", m.QueueLength("nope"), 0},
		{"OutstandingRequests", m.OutstandingRequests("fraud", r), 3},
		{"OutstandingRequests of an unknown replica", m.OutstandingRequests("fraud", "10.0.0.9:5001"), 0},
		{"QueueWaits", float64(m.QueueWaits("fraud")), 2},
		{"QueueWaits of an unknown service", float64(m.QueueWaits("nope")), 0},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// The reads of unknown series created none.
	for _, tt := range []struct {
		name string
		c    prometheus.Collector
		want int
	}{
		{"scoregate_admissions_refused_total", m.refused, 3},
		{"scoregate_queue_length", m.queueLength, 1},
		{"scoregate_replica_outstanding_requests", m.outstanding, 1},
		{"scoregate_queue_wait_seconds", m.queueWait, 1},
	} {
		if n := testutil.CollectAndCount(tt.c); n != tt.want {
			t.Errorf("%s has %d series after the reads, want %d", tt.name, n, tt.want)
		}
	}
}

// TestPoolMetricsConcurrent: many requests taking and releasing a replica
// at once leave the gauges at zero (run with -race).
func TestPoolMetricsConcurrent(t *testing.T) {
	m := New(prometheus.NewRegistry())
	const r = "10.0.0.1:5001"
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			m.Queued("fraud", 1)
			m.Queued("fraud", -1)
			m.QueueWait("fraud", time.Millisecond)
			m.Outstanding("fraud", r, 1)
			_ = m.OutstandingRequests("fraud", r)
			m.Outstanding("fraud", r, -1)
		})
	}
	wg.Wait()
	if got := m.QueueLength("fraud"); got != 0 {
		t.Errorf("QueueLength = %v, want 0", got)
	}
	if got := m.OutstandingRequests("fraud", r); got != 0 {
		t.Errorf("OutstandingRequests = %v, want 0", got)
	}
	if got := m.QueueWaits("fraud"); got != 50 {
		t.Errorf("QueueWaits = %d, want 50", got)
	}
}

func TestNilMetricsPool(t *testing.T) {
	var m *Metrics
	m.Replicas("default", 1, 1)
	m.Queued("default", 1)
	m.QueueWait("default", time.Millisecond)
	m.AdmissionRefused("default", RefusedQueueFull)
	m.Outstanding("default", "10.0.0.1:5001", 1)
	m.ReplicaEjected("default")
	m.ForgetReplica("default", "10.0.0.1:5001")
	if m.AdmissionsRefused("default", RefusedQueueFull) != 0 || m.QueueLength("default") != 0 ||
		m.OutstandingRequests("default", "10.0.0.1:5001") != 0 || m.QueueWaits("default") != 0 {
		t.Error("a nil Metrics read a non-zero value")
	}
}
