package bench

import (
	"context"
	"errors"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what one run measured. Only requests inside the measured window
// count: those started (closed loop) or scheduled (open loop) after the
// warm-up and before the window's end. Latencies are those of the
// successful requests.
type Result struct {
	Label       string   `json:"label"`   // Config.Label
	URL         string   `json:"url"`     // the target, without user info
	Connect     string   `json:"connect"` // the address dialled
	Scenario    Scenario `json:"scenario"`
	Loop        string   `json:"loop"`           // "closed" or "open"
	Rate        float64  `json:"rate,omitempty"` // open loop: the scheduled requests per second
	Concurrency int      `json:"concurrency"`    // workers (H2: H2Conns × H2Streams)
	H2Conns     int      `json:"h2_conns,omitempty"`
	H2Streams   int      `json:"h2_streams,omitempty"`
	Method      string   `json:"method"`
	Path        string   `json:"path"`
	BodyBytes   int      `json:"body_bytes"` // sent with each request (0 for GET and HEAD)

	Start       time.Time     `json:"start"`       // when the measured window began
	Duration    time.Duration `json:"duration_ns"` // from Start to the last measured request's end
	Requests    uint64        `json:"requests"`    // successful (2xx) requests
	Throughput  float64       `json:"throughput"`  // Requests per second of Duration
	Latency     Latency       `json:"latency"`
	Percentiles []Percentile  `json:"percentiles,omitempty"` // the latency by percentile, for plots
	Errors      Errors        `json:"errors"`
	// Resumed counts the successful requests whose connection resumed a
	// TLS session, and ResumedShare is its share of Requests; both are
	// measured for Handshake and Resume only (Handshake should get 0,
	// Resume 1).
	Resumed      uint64  `json:"resumed"`
	ResumedShare float64 `json:"resumed_share"`
	// Interrupted is set when the context ended the run before its
	// measured window did; the figures cover the part that ran.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Latency summarises the latency of the successful requests.
type Latency struct {
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p99_9_ns"`
	Max  time.Duration `json:"max_ns"`
}

// Percentile is one point of a latency-by-percentile curve: Percentile of
// the successful requests took at most Latency.
type Percentile struct {
	Percentile float64       `json:"percentile"` // 0 to 100
	Latency    time.Duration `json:"latency_ns"`
}

// Errors counts the failed requests by kind. Each request counts once, in
// the first kind that applies, in field order.
type Errors struct {
	Timeout     uint64 `json:"timeout"`      // the request exceeded Config.Timeout, or an I/O deadline passed
	Dial        uint64 `json:"dial"`         // the TCP connection failed (refused, unreachable)
	TLS         uint64 `json:"tls"`          // the TLS handshake failed (certificate, SNI refused, protocol)
	Status4xx   uint64 `json:"status_4xx"`   // a 4xx answer
	Status5xx   uint64 `json:"status_5xx"`   // a 5xx answer
	StatusOther uint64 `json:"status_other"` // a 1xx or 3xx answer
	Other       uint64 `json:"other"`        // anything else: a reset connection, a malformed answer, ...
	// First is the first error seen, as a clue to the others.
	First string `json:"first,omitempty"`
}

// Total returns the number of failed requests.
func (e Errors) Total() uint64 {
	return e.Timeout + e.Dial + e.TLS + e.Status4xx + e.Status5xx + e.StatusOther + e.Other
}

// errorKind indexes recorder.errs, in the order of Errors' fields.
type errorKind int

const (
	kindTimeout errorKind = iota
	kindDial
	kindTLS
	kind4xx
	kind5xx
	kindStatusOther
	kindOther
	numKinds
)

// phaseError marks an error with the connection phase it happened in, so
// that classify can tell a refused TCP connection from a refused handshake.
type phaseError struct {
	kind errorKind // kindDial or kindTLS
	err  error
}

func (e *phaseError) Error() string { return e.err.Error() }
func (e *phaseError) Unwrap() error { return e.err }

// outcome is what one request produced: a status code, or an error.
type outcome struct {
	status  int   // the response's status; 0 if there was none
	err     error // why there was no (complete) response
	resumed bool  // the connection resumed a TLS session
}

// classify returns the kind of a failed outcome, and false for a success.
func classify(o outcome) (errorKind, bool) {
	if o.err == nil {
		switch {
		case o.status >= 200 && o.status < 300:
			return 0, false
		case o.status >= 400 && o.status < 500:
			return kind4xx, true
		case o.status >= 500 && o.status < 600:
			return kind5xx, true
		default:
			return kindStatusOther, true
		}
	}
	var ne net.Error
	if errors.Is(o.err, context.DeadlineExceeded) || errors.Is(o.err, os.ErrDeadlineExceeded) || errors.As(o.err, &ne) && ne.Timeout() {
		return kindTimeout, true
	}
	if pe := (*phaseError)(nil); errors.As(o.err, &pe) {
		return pe.kind, true
	}
	return kindOther, true
}

// Histogram range: 1 µs to 60 s, with 3 significant figures, in
// microseconds.
const (
	histMin     = 1
	histMax     = 60_000_000
	histSigFigs = 3
)

// recorder collects the measured requests. It is safe for concurrent use.
type recorder struct {
	ok      atomic.Uint64
	resumed atomic.Uint64
	errs    [numKinds]atomic.Uint64
	all     atomic.Uint64 // every finished request, warm-up included, for the progress line

	mu       sync.Mutex
	hist     *hdrhistogram.Histogram // microseconds
	lastEnd  time.Time               // the latest end of a measured request
	firstErr error
}

func newRecorder() *recorder {
	return &recorder{hist: hdrhistogram.New(histMin, histMax, histSigFigs)}
}

// record counts a measured request that took d and ended at end.
func (r *recorder) record(d time.Duration, end time.Time, o outcome) {
	r.all.Add(1)
	kind, failed := classify(o)
	if failed {
		r.errs[kind].Add(1)
	} else {
		r.ok.Add(1)
		if o.resumed {
			r.resumed.Add(1)
		}
	}
	us := min(max(d.Microseconds(), histMin), histMax)
	r.mu.Lock()
	defer r.mu.Unlock()
	if failed {
		if r.firstErr == nil {
			r.firstErr = o.err
			if r.firstErr == nil {
				r.firstErr = errors.New("HTTP status " + strconv.Itoa(o.status))
			}
		}
	} else {
		r.hist.RecordValue(us) // cannot fail: us is in range
	}
	if end.After(r.lastEnd) {
		r.lastEnd = end
	}
}

// plotPercentiles are the points of Result.Percentiles: evenly spaced on
// the log scale of 1/(1-p) that HdrHistogram plots use, from 0 to 99.99.
var plotPercentiles = func() []float64 {
	var ps []float64
	for i := 0; i <= 80; i++ {
		ps = append(ps, 100*(1-math.Pow(10, -float64(i)/20)))
	}
	return ps
}()

// fill sets r's counts and latencies from the recorder; mStart is when
// the measured window began (with its monotonic clock reading).
func (rec *recorder) fill(r *Result, mStart time.Time) {
	r.Requests = rec.ok.Load()
	e := &r.Errors
	for i, p := range []*uint64{&e.Timeout, &e.Dial, &e.TLS, &e.Status4xx, &e.Status5xx, &e.StatusOther, &e.Other} {
		*p = rec.errs[i].Load()
	}
	if r.Scenario == Handshake || r.Scenario == Resume {
		r.Resumed = rec.resumed.Load()
		if r.Requests > 0 {
			r.ResumedShare = float64(r.Resumed) / float64(r.Requests)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.firstErr != nil {
		e.First = rec.firstErr.Error()
	}
	if rec.lastEnd.After(mStart) {
		r.Duration = rec.lastEnd.Sub(mStart)
	}
	if r.Duration > 0 {
		r.Throughput = float64(r.Requests) / r.Duration.Seconds()
	}
	h := rec.hist
	if h.TotalCount() == 0 {
		return
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	r.Latency = Latency{
		Mean: time.Duration(h.Mean() * float64(time.Microsecond)),
		P50:  us(h.ValueAtPercentile(50)),
		P90:  us(h.ValueAtPercentile(90)),
		P99:  us(h.ValueAtPercentile(99)),
		P999: us(h.ValueAtPercentile(99.9)),
		Max:  us(h.Max()),
	}
	vals := h.ValueAtPercentilesSlice(plotPercentiles)
	r.Percentiles = make([]Percentile, len(vals))
	for i, v := range vals {
		r.Percentiles[i] = Percentile{Percentile: plotPercentiles[i], Latency: us(v)}
	}
}

// Added returns how much latency r adds over baseline, percentile by
// percentile (r minus baseline): with r measured through a proxy and
// baseline straight to its backend, the latency the proxy adds.
func Added(r, baseline *Result) Latency {
	a, b := r.Latency, baseline.Latency
	return Latency{
		Mean: a.Mean - b.Mean,
		P50:  a.P50 - b.P50,
		P90:  a.P90 - b.P90,
		P99:  a.P99 - b.P99,
		P999: a.P999 - b.P999,
		Max:  a.Max - b.Max,
	}
}
