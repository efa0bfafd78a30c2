package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The replica pool's metrics. Every series has a service label: the
// service's name as configured, or "default" for the unnamed service of a
// plain --backend. The pool's admission control follows Azure ML's front
// end: each replica takes a bounded number of concurrent requests
// (max_concurrent_requests_per_instance); the others wait in a bounded
// FIFO queue for at most a maximum wait (max_queue_wait_ms) and are
// otherwise refused with 503 and Retry-After. A replica's address may be a
// label value, unlike a client's: the operator chooses the set, and it is
// small.

// queueWaitBuckets suit a maximum queue wait of 500 ms by default, and
// reach 30 s for operators who allow longer.
var queueWaitBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Admission refusal reasons (label values of
// scoregate_admissions_refused_total), for AdmissionRefused.
const (
	RefusedQueueFull    = "queue_full"    // the queue was at its maximum length
	RefusedQueueTimeout = "queue_timeout" // no replica slot within the maximum queue wait
	RefusedNoReplicas   = "no_replicas"   // the service has no replicas (DNS gave none)
)

// Replicas records the service's replicas after a resolution or a health
// change: total known (scoregate_replicas) and healthy, that is in
// rotation (scoregate_replicas_healthy). It also creates the service's
// counters and queue length at zero, so that rate() and increase() see
// their first change.
func (m *Metrics) Replicas(service string, total, healthy int) {
	if m == nil {
		return
	}
	m.replicas.WithLabelValues(service).Set(float64(total))
	m.replicasHealthy.WithLabelValues(service).Set(float64(healthy))
	m.queueLength.WithLabelValues(service)
	m.ejections.WithLabelValues(service)
	for _, r := range []string{RefusedQueueFull, RefusedQueueTimeout, RefusedNoReplicas} {
		m.refused.WithLabelValues(service, r)
	}
}

// Queued adds delta to the service's requests waiting for a replica slot,
// scoregate_queue_length: +1 when a request joins the queue, -1 when it
// leaves it, admitted or refused.
func (m *Metrics) Queued(service string, delta int) {
	if m != nil {
		m.queueLength.WithLabelValues(service).Add(float64(delta))
	}
}

// QueueWait records how long an admitted request waited for a replica
// slot, scoregate_queue_wait_seconds. The caller records 0 for a request
// admitted at once, so that the histogram's count is every admitted
// request, and records nothing for a refused one (AdmissionRefused counts
// it). A negative d counts as 0.
func (m *Metrics) QueueWait(service string, d time.Duration) {
	if m != nil {
		m.queueWait.WithLabelValues(service).Observe(max(d, 0).Seconds())
	}
}

// AdmissionRefused records a request refused with 503 before it reached a
// replica, scoregate_admissions_refused_total; reason is one of the
// Refused* constants.
func (m *Metrics) AdmissionRefused(service, reason string) {
	if m != nil {
		m.refused.WithLabelValues(service, reason).Inc()
	}
}

// Outstanding adds delta to the requests sent to replica (its address)
// and not yet finished, scoregate_replica_outstanding_requests: +1 when a
// request is handed to it, -1 when it is done with it.
func (m *Metrics) Outstanding(service, replica string, delta int) {
	if m != nil {
		m.outstanding.WithLabelValues(service, replica).Add(float64(delta))
	}
}

// ReplicaEjected records a replica taken out of rotation after consecutive
// connection failures, scoregate_replica_ejections_total.
func (m *Metrics) ReplicaEjected(service string) {
	if m != nil {
		m.ejections.WithLabelValues(service).Inc()
	}
}

// ForgetReplica deletes the series labelled with replica, for a replica
// that re-resolution removed from the service, so that /metrics does not
// keep showing it. Call it once the replica's last request has finished:
// a later Outstanding would create the series again.
func (m *Metrics) ForgetReplica(service, replica string) {
	if m != nil {
		m.outstanding.DeleteLabelValues(service, replica)
	}
}

// AdmissionsRefused returns scoregate_admissions_refused_total for the
// service and reason (one of the Refused* constants): the requests
// refused since New. Like the other read helpers below, it is for tests
// and the summaries the process logs itself, returns 0 for a series that
// does not exist or a nil Metrics, and never creates a series.
func (m *Metrics) AdmissionsRefused(service, reason string) float64 {
	if m == nil {
		return 0
	}
	return find(m.refused, "service", service, "reason", reason).GetCounter().GetValue()
}

// QueueLength returns scoregate_queue_length for the service: the
// requests waiting for a replica slot now.
func (m *Metrics) QueueLength(service string) float64 {
	if m == nil {
		return 0
	}
	return find(m.queueLength, "service", service).GetGauge().GetValue()
}

// OutstandingRequests returns scoregate_replica_outstanding_requests for
// the service's replica: the requests it has not finished yet.
func (m *Metrics) OutstandingRequests(service, replica string) float64 {
	if m == nil {
		return 0
	}
	return find(m.outstanding, "service", service, "replica", replica).GetGauge().GetValue()
}

// QueueWaits returns the count of scoregate_queue_wait_seconds for the
// service: the requests admitted since New, at once or after a wait.
func (m *Metrics) QueueWaits(service string) uint64 {
	if m == nil {
		return 0
	}
	return find(m.queueWait, "service", service).GetHistogram().GetSampleCount()
}

// find returns c's series whose labels are exactly the name, value pairs
// given, or nil. It collects rather than calling WithLabelValues, which
// would create a missing series: reading a replica's gauge after
// ForgetReplica must not bring it back to /metrics. The dto getters
// return zero values on nil.
func find(c prometheus.Collector, pairs ...string) *dto.Metric {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var found *dto.Metric
	for s := range ch { // to the end, so that the goroutine returns
		var pb dto.Metric
		if found == nil && s.Write(&pb) == nil && labelsAre(pb.GetLabel(), pairs) {
			found = &pb
		}
	}
	return found
}

// labelsAre reports whether got holds exactly the name, value pairs.
func labelsAre(got []*dto.LabelPair, pairs []string) bool {
	if len(got)*2 != len(pairs) {
		return false
	}
	for _, lp := range got {
		ok := false
		for i := 0; i+1 < len(pairs); i += 2 {
			if lp.GetName() == pairs[i] {
				ok = lp.GetValue() == pairs[i+1]
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
