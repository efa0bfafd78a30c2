package proxy

import (
	"container/list"
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/scoregate/scoregate/metrics"
	"github.com/scoregate/scoregate/proxy/h1"
)

// ejectAfter is how many connection failures in a row take a replica out
// of rotation until an active check passes again. A connection refused
// costs no client request (it goes to another replica), so the count can be
// small; one is too twitchy for a replica restarting its listener.
const ejectAfter = 3

// replica is one address of a service: what a request is sent to.
type replica struct {
	svc    *service
	addr   string          // host:port dialed: an IP address when the target was a name
	origin *url.URL        // the configured target: scheme, the Host the backend sees, path prefix
	h1     *h1.Transport   // a plain-HTTP replica's connections; nil for https
	tr     *http.Transport // https, and protocol upgrades; dials addr whatever the URL says

	// The health check's own connections when the service has a health
	// URL (on another port); nil: the check goes over tr or h1, as
	// requests do.
	probeTr  *http.Transport
	probeURL string // what the check asks

	// Guarded by the pool's mu.
	outstanding int  // requests admitted to it and not yet done
	fails       int  // connection failures in a row
	ejected     bool // taken out after ejectAfter failures; back when a check passes
	gone        bool // no longer resolved: drained, then closed
	check       metrics.BackendInfo
	// For the busy rule (setCheck): requests answered so far, that count
	// at the last check, and when the replica last answered anything (a
	// request, or a check that passed); zero before its first answer.
	answered        uint64
	answeredAtCheck uint64
	lastAnswer      time.Time
}

// usableLocked reports whether the replica takes requests: not ejected,
// and not failing its active check. A replica not checked yet is usable:
// requests flow from the start, as they did before there were checks.
func (r *replica) usableLocked() bool {
	return !r.ejected && (r.check.CheckedAt.IsZero() || r.check.Ready)
}

// close releases the replica's idle connections and joins its writers.
func (r *replica) close() {
	if r.h1 != nil {
		r.h1.Close()
	}
	r.tr.CloseIdleConnections()
	if r.probeTr != nil {
		r.probeTr.CloseIdleConnections()
	}
}

// errAdmission is a request refused by the admission queue; reason is a
// metrics.Refused* value.
type errAdmission struct{ reason string }

func (e *errAdmission) Error() string { return "admission refused: " + e.reason }

// pool admits a service's requests to its replicas, as Azure ML's front end
// does: each replica takes at most maxPer requests at once; the others wait
// in a first-come, first-served queue of at most maxQueue for at most
// maxWait, and are refused after that (503 with Retry-After). Among the
// replicas with a free slot, the one with the fewest outstanding requests
// gets the request (ties in turn), which suits slow, uneven scoring calls.
// When no replica is usable (all ejected or failing their checks), every
// replica is tried rather than none: a check can be wrong, and a failure
// is answered as it would be without the pool.
type pool struct {
	label    string // the service's metrics label
	maxPer   int
	maxQueue int
	maxWait  time.Duration
	// busyFor is how long after its last answer a replica whose check
	// times out may still count as busy rather than down (see setCheck):
	// the upstream timeout, the longest a request may wait for an answer.
	busyFor time.Duration
	m       *metrics.Metrics

	mu       sync.Mutex
	replicas []*replica          // the current ones, not gone
	draining map[string]*replica // gone, with requests still on them; by address
	usable   int                 // how many of them are usable
	next     int                 // where the next scan starts: ties go round
	queue    list.List           // of *waiter, oldest first
}

// waiter is a request waiting in the queue.
type waiter struct {
	ch      chan *replica // capacity 1: the slot, handed over under mu
	elem    *list.Element // nil once out of the queue; guarded by mu
	exclude *replica      // a replica not to use (the retry of a refused connection)
}

// acquire admits a request and returns its replica, which the caller must
// release. exclude, if not nil, is not chosen. It waits in the queue when
// no slot is free, until ctx is done (ctx.Err()) or maxWait passes
// (*errAdmission).
func (p *pool) acquire(ctx context.Context, exclude *replica) (*replica, error) {
	p.mu.Lock()
	if p.queue.Len() == 0 {
		if r := p.pickLocked(exclude); r != nil {
			r.outstanding++
			p.mu.Unlock()
			p.admitted(r, 0)
			return r, nil
		}
	}
	switch {
	case len(p.replicas) == 0:
		p.mu.Unlock()
		return nil, p.refuse(metrics.RefusedNoReplicas)
	case p.queue.Len() >= p.maxQueue:
		p.mu.Unlock()
		return nil, p.refuse(metrics.RefusedQueueFull)
	}
	w := &waiter{ch: make(chan *replica, 1), exclude: exclude}
	w.elem = p.queue.PushBack(w)
	// A slot may be free that the waiters ahead cannot take (each can
	// only have the replica it excludes): this one may.
	p.dispatchLocked()
	p.mu.Unlock()
	p.m.Queued(p.label, 1)
	defer p.m.Queued(p.label, -1)

	start := time.Now()
	timer := time.NewTimer(p.maxWait)
	defer timer.Stop()
	var err error
	select {
	case r := <-w.ch:
		p.admitted(r, time.Since(start))
		return r, nil
	case <-timer.C:
		err = &errAdmission{metrics.RefusedQueueTimeout}
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	if w.elem != nil {
		p.queue.Remove(w.elem)
		w.elem = nil
		p.mu.Unlock()
		if ae := (*errAdmission)(nil); errors.As(err, &ae) {
			p.m.AdmissionRefused(p.label, ae.reason)
		}
		return nil, err
	}
	p.mu.Unlock()
	// A slot was handed over as the wait ended: take it, unless the
	// client left.
	r := <-w.ch
	if ctx.Err() != nil {
		p.m.Outstanding(p.label, r.addr, 1) // release takes it back
		p.release(r, outcomeNone)
		return nil, ctx.Err()
	}
	p.admitted(r, time.Since(start))
	return r, nil
}

func (p *pool) admitted(r *replica, waited time.Duration) {
	p.m.Outstanding(p.label, r.addr, 1)
	p.m.QueueWait(p.label, waited)
}

func (p *pool) refuse(reason string) error {
	p.m.AdmissionRefused(p.label, reason)
	return &errAdmission{reason}
}

// outcome is what a request's end says about its replica.
type outcome int

const (
	outcomeNone       outcome = iota // nothing: the client left, or its body failed
	outcomeAnswered                  // the replica answered (any status)
	outcomeConnFailed                // no connection, or it broke before an answer
)

// release ends a request's use of r and hands the slot to the oldest
// waiter that can take it.
func (p *pool) release(r *replica, o outcome) {
	p.mu.Lock()
	r.outstanding--
	ejected := false
	switch o {
	case outcomeAnswered:
		r.fails = 0
		r.answered++
		r.lastAnswer = time.Now()
	case outcomeConnFailed:
		r.fails++
		if r.fails >= ejectAfter && !r.ejected {
			r.ejected, ejected = true, true
			p.recountLocked()
		}
	}
	// The metrics under mu: a replica's series is forgotten once its last
	// request is done, and may be created again by a replica for the same
	// address that DNS gives back.
	p.m.Outstanding(p.label, r.addr, -1)
	drained := r.gone && r.outstanding == 0
	if drained {
		delete(p.draining, r.addr)
		p.m.ForgetReplica(p.label, r.addr)
	}
	p.dispatchLocked()
	p.mu.Unlock()
	if ejected {
		p.m.ReplicaEjected(p.label)
		r.svc.px.log.Warn().Str(keyService, r.svc.label).Str(keyReplica, r.addr).Int("failures", ejectAfter).
			Msg("replica taken out of rotation after connection failures in a row; it returns when a health check passes")
		p.reportReplicas()
	}
	if drained {
		r.close()
	}
}

// pickLocked returns the usable replica with a free slot and the fewest
// outstanding requests, the next in turn among equals; nil if none. When
// no replica is usable, all are candidates.
func (p *pool) pickLocked(exclude *replica) *replica {
	n := len(p.replicas)
	var best *replica
	bestAt := 0
	for i := range n {
		at := p.next + i
		if at >= n {
			at -= n
		}
		r := p.replicas[at]
		if r == exclude || r.outstanding >= p.maxPer || (p.usable > 0 && !r.usableLocked()) {
			continue
		}
		if best == nil || r.outstanding < best.outstanding {
			best, bestAt = r, at
		}
	}
	if best != nil {
		p.next = bestAt + 1
		if p.next == n {
			p.next = 0
		}
	}
	return best
}

// dispatchLocked hands free slots to waiters, oldest first. A waiter that
// can take none of them (its only choice is the replica it excludes) keeps
// its place while those behind it are served.
func (p *pool) dispatchLocked() {
	for e := p.queue.Front(); e != nil; {
		next := e.Next()
		w := e.Value.(*waiter)
		r := p.pickLocked(w.exclude)
		if r == nil {
			if w.exclude == nil || p.pickLocked(nil) == nil {
				return // no slot anywhere
			}
			e = next
			continue
		}
		p.queue.Remove(e)
		w.elem = nil
		r.outstanding++
		w.ch <- r
		e = next
	}
}

// recountLocked recomputes usable after a replica's state changed.
func (p *pool) recountLocked() {
	p.usable = 0
	for _, r := range p.replicas {
		if r.usableLocked() {
			p.usable++
		}
	}
}

// reportReplicas updates the replica gauges.
func (p *pool) reportReplicas() {
	p.mu.Lock()
	total, usable := len(p.replicas), p.usable
	p.mu.Unlock()
	p.m.Replicas(p.label, total, usable)
}

// setReplicas makes want the pool's replicas: those already there stay
// (with their connections and counts), new ones are made by mk, and those
// no longer wanted stop taking requests and are closed once their last one
// is done. It reports what changed.
func (p *pool) setReplicas(want []string, mk func(addr string) *replica) (added, removed []string) {
	p.mu.Lock()
	have := make(map[string]*replica, len(p.replicas))
	for _, r := range p.replicas {
		have[r.addr] = r
	}
	keep := make([]*replica, 0, len(want))
	seen := make(map[string]bool, len(want))
	for _, addr := range want {
		if seen[addr] {
			continue
		}
		seen[addr] = true
		if r := have[addr]; r != nil {
			keep = append(keep, r)
			continue
		}
		added = append(added, addr)
		if r := p.draining[addr]; r != nil {
			// Given back while draining: the same replica, its
			// connections and counts, takes requests again.
			delete(p.draining, addr)
			r.gone = false
			keep = append(keep, r)
			continue
		}
		keep = append(keep, mk(addr))
	}
	var closeNow []*replica
	for _, r := range p.replicas {
		if seen[r.addr] {
			continue
		}
		r.gone = true
		removed = append(removed, r.addr)
		if r.outstanding == 0 {
			closeNow = append(closeNow, r)
			p.m.ForgetReplica(p.label, r.addr)
			continue
		}
		if p.draining == nil {
			p.draining = map[string]*replica{}
		}
		p.draining[r.addr] = r
	}
	p.replicas = keep
	p.next = 0
	p.recountLocked()
	p.dispatchLocked()
	p.mu.Unlock()
	for _, r := range closeNow {
		r.close()
	}
	p.reportReplicas()
	return added, removed
}

// snapshot returns the current replicas.
func (p *pool) snapshot() []*replica {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*replica(nil), p.replicas...)
}

// setCheck records the result of r's active health check, and returns it
// as recorded and whether r's readiness (or, apart, its busy state)
// changed. A replica that passes comes
// back into rotation if it was ejected.
//
// A check that timed out (timedOut: no answer, or no connection slot,
// within the check's time) counts as busy, not down, when the replica is
// working: it has requests outstanding, or answered one since the check
// before, and it answered something (a request or a check) within busyFor.
// A one-worker model server (gunicorn's sync worker, Azure ML's default
// WORKER_COUNT=1) answers nothing else while it scores, its health check
// included. A busy replica stays in rotation and ready (info.Busy); it is
// not brought back from ejection. Any other failure, and a timeout while
// the replica is idle or has answered nothing for longer than busyFor, is
// down.
func (p *pool) setCheck(r *replica, info metrics.BackendInfo, timedOut bool) (rec metrics.BackendInfo, readyChanged, busyChanged bool) {
	now := time.Now()
	p.mu.Lock()
	before := r.usableLocked()
	wasReady, wasBusy, wasChecked := r.check.Ready, r.check.Busy, !r.check.CheckedAt.IsZero()
	working := r.outstanding > 0 || r.answered != r.answeredAtCheck
	recent := !r.lastAnswer.IsZero() && now.Sub(r.lastAnswer) <= p.busyFor
	if !info.Ready && timedOut && working && recent {
		info.Ready, info.Busy = true, true
	}
	r.answeredAtCheck = r.answered
	r.check = info
	if info.Ready && !info.Busy {
		r.lastAnswer = now
		if r.ejected {
			r.ejected, r.fails = false, 0
		}
	}
	p.recountLocked()
	if before != r.usableLocked() {
		// Either r takes requests again, or it was the last usable
		// one and every replica is a candidate now.
		p.dispatchLocked()
	}
	p.mu.Unlock()
	p.reportReplicas()
	return info, !wasChecked || wasReady != info.Ready, wasBusy != info.Busy
}

// closeAll closes every replica's idle connections.
func (p *pool) closeAll() {
	for _, r := range p.snapshot() {
		r.close()
	}
}

// hasOther reports whether the pool has a replica other than r to try.
func (p *pool) hasOther(r *replica) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.replicas) > 1 || (len(p.replicas) == 1 && p.replicas[0] != r)
}
