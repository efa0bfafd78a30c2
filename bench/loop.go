package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// worker sends one request at a time. do must return when ctx ends.
type worker interface {
	do(ctx context.Context) outcome
}

// plan is a run's timeline: warm-up from start to mStart, then the measured
// window [mStart, mEnd).
type plan struct {
	start, mStart, mEnd time.Time
	rate                float64       // requests per second: open loop if positive
	timeout             time.Duration // per request
}

// errBehind is the error of an open-loop request that no worker could send
// within the timeout of its scheduled time.
var errBehind = fmt.Errorf("open loop fell behind: request not sent within the timeout of its scheduled time (add workers or lower the rate): %w", context.DeadlineExceeded)

// scheduled returns the time at which open-loop request i is due.
func (p *plan) scheduled(i int64) time.Time {
	return p.start.Add(time.Duration(float64(i) * float64(time.Second) / p.rate))
}

// runLoop runs the workers until the measured window ends (closed loop: no
// worker starts a request after it; open loop: every request scheduled
// before it has been sent), or ctx ends. It returns once every worker has.
func runLoop(ctx context.Context, p *plan, workers []worker, rec *recorder) {
	var next atomic.Int64 // the next open-loop request to take
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { p.work(ctx, w, &next, rec) })
	}
	wg.Wait()
}

func (p *plan) work(ctx context.Context, w worker, next *atomic.Int64, rec *recorder) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for ctx.Err() == nil {
		var due time.Time // latency is measured from here
		if p.rate > 0 {
			due = p.scheduled(next.Add(1) - 1)
			if !due.Before(p.mEnd) {
				return
			}
			now := time.Now()
			if d := due.Sub(now); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			} else if now.Sub(due) >= p.timeout {
				// Sending it now could only add a late answer to a queue
				// that is already behind; it is a timeout either way.
				if !due.Before(p.mStart) {
					rec.record(p.timeout, now, outcome{err: errBehind})
				}
				continue
			}
		} else {
			due = time.Now()
			if !due.Before(p.mEnd) {
				return
			}
		}
		rctx, cancel := context.WithTimeout(ctx, p.timeout)
		o := w.do(rctx)
		cancel()
		end := time.Now()
		if ctx.Err() != nil {
			return // interrupted: neither a success nor the target's error
		}
		if due.Before(p.mStart) {
			rec.all.Add(1) // warm-up: shown in the progress line only
			continue
		}
		rec.record(end.Sub(due), end, o)
	}
}
