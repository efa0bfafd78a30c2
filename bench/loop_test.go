package bench

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// fakeWorker answers every request at once, except that its call number
// stallAt takes stall. It runs in a synctest bubble, where time.Sleep
// advances a fake clock as soon as every goroutine is blocked, so the
// timings below are exact.
type fakeWorker struct {
	calls   *int // one worker only: no race
	stallAt int
	stall   time.Duration
}

func (w fakeWorker) do(context.Context) outcome {
	*w.calls++
	if *w.calls == w.stallAt {
		time.Sleep(w.stall)
	}
	return outcome{status: 200}
}

// openLoop runs one fake worker at 1,000 requests/s for 1 s, its 101st
// request (due at 100 ms) taking 200 ms.
func openLoop(t *testing.T, timeout time.Duration) *Result {
	t.Helper()
	now := time.Now()
	p := &plan{start: now, mStart: now, mEnd: now.Add(time.Second), rate: 1000, timeout: timeout}
	var calls int
	rec := newRecorder()
	runLoop(t.Context(), p, []worker{fakeWorker{calls: &calls, stallAt: 101, stall: 200 * time.Millisecond}}, rec)
	r := &Result{Scenario: H1}
	rec.fill(r, p.mStart)
	return r
}

// TestOpenLoopChargesStalls is the coordinated-omission test. Timed from
// the send (or in a closed loop), the stall is one slow request in 1,000:
// p99 would not move. Timed from the schedule, the 200 requests due during
// the stall each waited for it, from 200 ms down to 1 ms, so p90 is about
// 100 ms and p99 about 190 ms.
func TestOpenLoopChargesStalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := openLoop(t, time.Minute)
		if r.Requests != 1000 || r.Errors.Total() != 0 {
			t.Errorf("requests = %d, errors = %+v; want 1000 and none", r.Requests, r.Errors)
		}
		for _, c := range []struct {
			name          string
			got, min, max time.Duration
		}{
			{"p50", r.Latency.P50, 0, time.Millisecond},
			{"p90", r.Latency.P90, 95 * time.Millisecond, 105 * time.Millisecond},
			{"p99", r.Latency.P99, 185 * time.Millisecond, 195 * time.Millisecond},
			{"max", r.Latency.Max, 199 * time.Millisecond, 201 * time.Millisecond},
		} {
			if c.got < c.min || c.got > c.max {
				t.Errorf("%s = %v, want between %v and %v", c.name, c.got, c.min, c.max)
			}
		}
		if r.Duration != time.Second-time.Millisecond {
			t.Errorf("duration = %v, want 999ms (the last request is due then and answers at once)", r.Duration)
		}
	})
}

// TestOpenLoopBehindTimesOut: with a 50 ms timeout, the requests due more
// than 50 ms before the stalled worker is free again (due at 101 to 250 ms,
// picked up at 300 ms) are timeouts, not sent; the rest are sent. Every
// scheduled request is accounted for.
func TestOpenLoopBehindTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := openLoop(t, 50*time.Millisecond)
		if r.Requests != 850 || r.Errors.Timeout != 150 || r.Errors.Total() != 150 {
			t.Errorf("requests = %d, errors = %+v; want 850 and 150 timeouts", r.Requests, r.Errors)
		}
		if r.Latency.Max != 200*time.Millisecond+r.Latency.Max%time.Millisecond || r.Latency.Max > 201*time.Millisecond {
			t.Errorf("max = %v, want the stalled request's 200ms", r.Latency.Max)
		}
	})
}
