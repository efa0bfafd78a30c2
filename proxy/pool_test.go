package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scoregate/scoregate/metrics"
)

// The pool's tests: first on a pool built by hand whose replicas are never
// dialed, then end to end, real replicas behind the real TLS front.

// unitLabel is the service label of the pools built by newUnitPool.
const unitLabel = "unit"

// unitPool is a pool of replicas at made-up addresses that nothing dials,
// recording into a registry of its own.
type unitPool struct {
	*pool
	reg *prometheus.Registry
	m   *metrics.Metrics
	svc *service // makes the replicas, and logs for them
}

func newUnitPool(t *testing.T, maxPer, maxQueue int, maxWait time.Duration, addrs ...string) *unitPool {
	t.Helper()
	px := newTestProxy(t, "http://127.0.0.1:9", Config{}, testLog(t))
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	u := &unitPool{
		pool: &pool{label: unitLabel, maxPer: maxPer, maxQueue: maxQueue, maxWait: maxWait, m: m},
		reg:  reg,
		m:    m,
		svc:  px.dflt,
	}
	u.set(addrs...)
	t.Cleanup(u.closeAll)
	return u
}

// set makes addrs the pool's replicas.
func (u *unitPool) set(addrs ...string) {
	u.setReplicas(addrs, func(addr string) *replica { return u.svc.newReplica(addr, u.svc.targets[0]) })
}

// rep returns the current replica at addr.
func (u *unitPool) rep(t *testing.T, addr string) *replica {
	t.Helper()
	for _, r := range u.snapshot() {
		if r.addr == addr {
			return r
		}
	}
	t.Fatalf("no replica %s in %v", addr, addrsOf(u.snapshot()))
	return nil
}

// take acquires a replica, which must be free now: every wait is a
// failure.
func (u *unitPool) take(t *testing.T, exclude *replica) *replica {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	r, err := u.acquire(ctx, exclude)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return r
}

// acquired is the result of acquireAsync.
type acquired struct {
	r   *replica
	err error
}

// acquireAsync acquires on a goroutine of its own, joined when t ends; the
// result arrives on the channel.
func (u *unitPool) acquireAsync(t *testing.T, ctx context.Context, exclude *replica) <-chan acquired {
	ch := make(chan acquired, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		r, err := u.acquire(ctx, exclude)
		ch <- acquired{r, err}
	})
	t.Cleanup(wg.Wait)
	return ch
}

// enqueue starts a waiter and waits until it is in the queue, so that
// waiters started one after another queue in that order.
func (u *unitPool) enqueue(t *testing.T, ctx context.Context, exclude *replica) <-chan acquired {
	t.Helper()
	n := u.queueLen()
	ch := u.acquireAsync(t, ctx, exclude)
	waitUntil(t, fmt.Sprintf("the queue to grow to %d", n+1), func() bool { return u.queueLen() == n+1 })
	return ch
}

func (u *unitPool) queueLen() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.queue.Len()
}

// outstandingOf returns r's outstanding requests as the pool counts them.
func (u *unitPool) outstandingOf(r *replica) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return r.outstanding
}

// receive waits for a waiter's result.
func receive(t *testing.T, ch <-chan acquired, what string) acquired {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(waitLimit):
		t.Fatalf("%s: no result after %v", what, waitLimit)
		return acquired{}
	}
}

// pending fails if the waiter already has a result.
func pending(t *testing.T, ch <-chan acquired, what string) {
	t.Helper()
	select {
	case a := <-ch:
		t.Fatalf("%s got %v, %v; want it still waiting", what, addrOf(a.r), a.err)
	default:
	}
}

func addrOf(r *replica) string {
	if r == nil {
		return "<nil>"
	}
	return r.addr
}

func addrsOf(rs []*replica) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.addr
	}
	return out
}

// refusal returns the reason of an admission refusal, or "" for another
// error.
func refusal(err error) string {
	if ae := (*errAdmission)(nil); errors.As(err, &ae) {
		return ae.reason
	}
	return ""
}

// hasSeries reports whether reg has a series of the named metric with the
// label set to value.
func hasSeries(t *testing.T, reg *prometheus.Registry, name, label, value string) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return true
				}
			}
		}
	}
	return false
}

const (
	addrA = "10.0.0.1:5001"
	addrB = "10.0.0.2:5001"
	addrC = "10.0.0.3:5001"
)

func TestPoolLeastOutstandingWins(t *testing.T) {
	for _, tt := range []struct {
		name        string
		outstanding []int // of A, B, C
		next        int   // where the scan starts
		want        string
	}{
		{"fewest in the middle", []int{2, 0, 1}, 0, addrB},
		{"fewest last", []int{1, 1, 0}, 0, addrC},
		{"fewest first, scan starting after it", []int{0, 3, 1}, 1, addrA},
		{"a full replica is skipped", []int{4, 3, 3}, 0, addrB},
		{"all full: none", []int{4, 4, 4}, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnitPool(t, 4, 8, waitLimit, addrA, addrB, addrC)
			u.mu.Lock()
			for i, r := range u.replicas {
				r.outstanding = tt.outstanding[i]
			}
			u.next = tt.next
			got := u.pickLocked(nil)
			for _, r := range u.replicas {
				r.outstanding = 0
			}
			u.mu.Unlock()
			if got == nil && tt.want != "" || got != nil && got.addr != tt.want {
				t.Errorf("outstanding %v: picked %s, want %q", tt.outstanding, addrOf(got), tt.want)
			}
		})
	}
}

// TestPoolLeastOutstandingHeld: requests held on replicas steer the next
// ones to the replica with the fewest.
func TestPoolLeastOutstandingHeld(t *testing.T) {
	u := newUnitPool(t, 8, 8, waitLimit, addrA, addrB, addrC)
	a := u.take(t, nil)
	b := u.take(t, nil)
	c := u.take(t, nil)
	if got := addrsOf([]*replica{a, b, c}); !slices.Equal(got, []string{addrA, addrB, addrC}) {
		t.Fatalf("three requests on idle replicas went to %v, want one each in turn", got)
	}
	a2 := u.take(t, nil) // all at 1: A, in turn
	u.release(b, outcomeAnswered)
	// A 2, B 0, C 1.
	if got := u.take(t, nil); got != b {
		t.Errorf("with A 2, B 0, C 1 outstanding: picked %s, want %s", got.addr, addrB)
	}
	for _, r := range []*replica{a, a2, b, c} {
		u.release(r, outcomeAnswered)
	}
}

func TestPoolTiesRoundRobin(t *testing.T) {
	u := newUnitPool(t, 4, 8, waitLimit, addrA, addrB, addrC)
	var got []string
	for range 9 {
		r := u.take(t, nil)
		got = append(got, r.addr)
		u.release(r, outcomeAnswered)
	}
	want := []string{addrA, addrB, addrC, addrA, addrB, addrC, addrA, addrB, addrC}
	if !slices.Equal(got, want) {
		t.Errorf("nine requests, one at a time, on idle replicas went to\n%v\nwant\n%v", got, want)
	}
}

// TestPoolReplicaAtLimitSkipped: a replica at its limit takes nothing
// more; the request after the last free slot waits for one.
func TestPoolReplicaAtLimitSkipped(t *testing.T) {
	u := newUnitPool(t, 2, 8, waitLimit, addrA, addrB)
	var held []*replica
	for range 4 {
		held = append(held, u.take(t, nil))
	}
	for _, addr := range []string{addrA, addrB} {
		if got := u.outstandingOf(u.rep(t, addr)); got != 2 {
			t.Errorf("%s outstanding = %d, want 2", addr, got)
		}
	}
	w := u.enqueue(t, t.Context(), nil)
	pending(t, w, "the fifth request, with every slot taken,")
	u.release(held[1], outcomeAnswered) // one of B's
	if a := receive(t, w, "the waiter"); a.err != nil || a.r != held[1] {
		t.Fatalf("the waiter got %s, %v; want the freed slot on %s", addrOf(a.r), a.err, held[1].addr)
	}
	for _, addr := range []string{addrA, addrB} {
		if got := u.outstandingOf(u.rep(t, addr)); got > 2 {
			t.Errorf("%s outstanding = %d, over its limit of 2", addr, got)
		}
	}
}

func TestPoolQueueFIFO(t *testing.T) {
	u := newUnitPool(t, 1, 8, 3*waitLimit, addrA)
	held := u.take(t, nil)
	var waiters []<-chan acquired
	for range 5 {
		waiters = append(waiters, u.enqueue(t, t.Context(), nil))
	}
	if got := u.m.QueueLength(unitLabel); got != 5 {
		t.Errorf("scoregate_queue_length = %v, want 5", got)
	}
	for i, w := range waiters {
		u.release(held, outcomeAnswered)
		a := receive(t, w, fmt.Sprintf("waiter %d", i+1))
		if a.err != nil {
			t.Fatalf("waiter %d: %v", i+1, a.err)
		}
		for j, later := range waiters[i+1:] {
			pending(t, later, fmt.Sprintf("waiter %d, after slot %d was freed,", i+j+2, i+1))
		}
		held = a.r
	}
	u.release(held, outcomeAnswered)
	if got := u.m.QueueLength(unitLabel); got != 0 {
		t.Errorf("scoregate_queue_length = %v, want 0", got)
	}
	if got := u.m.QueueWaits(unitLabel); got != 6 {
		t.Errorf("scoregate_queue_wait_seconds count = %d, want 6 (every admitted request)", got)
	}
}

// TestPoolQueueCancelledWaiterLeaves: a waiter whose client leaves is out
// of the queue at once, and the one behind it gets the next slot.
func TestPoolQueueCancelledWaiterLeaves(t *testing.T) {
	u := newUnitPool(t, 1, 8, 3*waitLimit, addrA)
	held := u.take(t, nil)
	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	w1 := u.enqueue(t, ctx1, nil)
	w2 := u.enqueue(t, t.Context(), nil)
	cancel1()
	if a := receive(t, w1, "the cancelled waiter"); !errors.Is(a.err, context.Canceled) || a.r != nil {
		t.Fatalf("the cancelled waiter got %s, %v; want context.Canceled", addrOf(a.r), a.err)
	}
	if got := u.queueLen(); got != 1 {
		t.Errorf("queue length = %d, want 1", got)
	}
	if got := u.m.QueueLength(unitLabel); got != 1 {
		t.Errorf("scoregate_queue_length = %v, want 1", got)
	}
	u.release(held, outcomeAnswered)
	a := receive(t, w2, "the second waiter")
	if a.err != nil || a.r != held {
		t.Fatalf("the second waiter got %s, %v; want %s", addrOf(a.r), a.err, held.addr)
	}
	u.release(a.r, outcomeAnswered)
	if got := u.m.AdmissionsRefused(unitLabel, metrics.RefusedQueueTimeout); got != 0 {
		t.Errorf("queue_timeout refusals = %v, want 0: a client that left was not refused", got)
	}
}

func TestPoolQueueFull(t *testing.T) {
	u := newUnitPool(t, 1, 2, 3*waitLimit, addrA)
	held := u.take(t, nil)
	w1 := u.enqueue(t, t.Context(), nil)
	w2 := u.enqueue(t, t.Context(), nil)
	start := time.Now()
	r, err := u.acquire(t.Context(), nil)
	if got := refusal(err); got != metrics.RefusedQueueFull || r != nil {
		t.Fatalf("acquire with a full queue = %s, %v; want the refusal %q", addrOf(r), err, metrics.RefusedQueueFull)
	}
	if waited := time.Since(start); waited > waitLimit {
		t.Errorf("the refusal took %v; want it at once", waited)
	}
	if got := u.m.AdmissionsRefused(unitLabel, metrics.RefusedQueueFull); got != 1 {
		t.Errorf("queue_full refusals = %v, want 1", got)
	}
	for _, w := range []<-chan acquired{w1, w2} {
		u.release(held, outcomeAnswered)
		a := receive(t, w, "a queued waiter")
		if a.err != nil {
			t.Fatal(a.err)
		}
		held = a.r
	}
	u.release(held, outcomeAnswered)
}

func TestPoolQueueTimeout(t *testing.T) {
	const wait = 20 * time.Millisecond
	u := newUnitPool(t, 1, 8, wait, addrA)
	held := u.take(t, nil)
	start := time.Now()
	r, err := u.acquire(t.Context(), nil)
	if got := refusal(err); got != metrics.RefusedQueueTimeout || r != nil {
		t.Fatalf("acquire with every slot held = %s, %v; want the refusal %q", addrOf(r), err, metrics.RefusedQueueTimeout)
	}
	if waited := time.Since(start); waited < wait {
		t.Errorf("refused after %v, want after the queue wait of %v", waited, wait)
	}
	if got := u.m.AdmissionsRefused(unitLabel, metrics.RefusedQueueTimeout); got != 1 {
		t.Errorf("queue_timeout refusals = %v, want 1", got)
	}
	if got, n := u.m.QueueLength(unitLabel), u.queueLen(); got != 0 || n != 0 {
		t.Errorf("after the refusal: scoregate_queue_length = %v, queue length %d; want 0 and 0", got, n)
	}
	u.release(held, outcomeAnswered)
}

func TestPoolNoReplicasRefused(t *testing.T) {
	u := newUnitPool(t, 1, 8, waitLimit)
	r, err := u.acquire(t.Context(), nil)
	if got := refusal(err); got != metrics.RefusedNoReplicas || r != nil {
		t.Fatalf("acquire without replicas = %s, %v; want the refusal %q", addrOf(r), err, metrics.RefusedNoReplicas)
	}
	if got := u.m.AdmissionsRefused(unitLabel, metrics.RefusedNoReplicas); got != 1 {
		t.Errorf("no_replicas refusals = %v, want 1", got)
	}
}

// failOn sends one request to r (the only choice, exclude being the other
// replica) and ends it with o.
func (u *unitPool) failOn(t *testing.T, r, exclude *replica, o outcome) {
	t.Helper()
	if got := u.take(t, exclude); got != r {
		t.Fatalf("acquire excluding %s = %s, want %s", exclude.addr, got.addr, r.addr)
	}
	u.release(r, o)
}

func (u *unitPool) ejected(r *replica) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return r.ejected
}

func TestPoolEjectAfterConnFailures(t *testing.T) {
	u := newUnitPool(t, 4, 8, waitLimit, addrA, addrB)
	a, b := u.rep(t, addrA), u.rep(t, addrB)
	// Failures not in a row do not eject.
	for _, o := range []outcome{outcomeConnFailed, outcomeConnFailed, outcomeAnswered, outcomeConnFailed, outcomeNone, outcomeConnFailed} {
		u.failOn(t, a, b, o)
	}
	if u.ejected(a) {
		t.Fatal("A ejected after failures that an answer interrupted")
	}
	u.failOn(t, a, b, outcomeConnFailed) // the third in a row
	if !u.ejected(a) {
		t.Fatalf("A not ejected after %d connection failures in a row", ejectAfter)
	}
	if got := counterSum(t, u.reg, "scoregate_replica_ejections_total"); got != 1 {
		t.Errorf("scoregate_replica_ejections_total = %v, want 1", got)
	}
	for i := range 6 {
		r := u.take(t, nil)
		if r != b {
			t.Fatalf("request %d after the ejection went to %s, want %s", i+1, r.addr, addrB)
		}
		u.release(r, outcomeAnswered)
	}
	// A check that fails keeps it out; one that passes brings it back.
	u.setCheck(a, metrics.BackendInfo{Ready: false, CheckedAt: time.Now()}, false)
	if !u.ejected(a) {
		t.Fatal("A back in rotation after a failed check")
	}
	u.setCheck(a, metrics.BackendInfo{Ready: true, CheckedAt: time.Now()}, false)
	if u.ejected(a) {
		t.Fatal("A still ejected after a passed check")
	}
	seen := map[string]int{}
	for range 4 {
		r := u.take(t, nil)
		seen[r.addr]++
		u.release(r, outcomeAnswered)
	}
	if seen[addrA] != 2 || seen[addrB] != 2 {
		t.Errorf("four requests after A's return went to %v, want two each", seen)
	}
}

// TestPoolFailOpen: with no replica usable, every replica is a candidate.
func TestPoolFailOpen(t *testing.T) {
	eject := func(t *testing.T, u *unitPool, r, other *replica) {
		for range ejectAfter {
			u.failOn(t, r, other, outcomeConnFailed)
		}
	}
	failCheck := func(u *unitPool, r *replica) {
		u.setCheck(r, metrics.BackendInfo{Ready: false, CheckedAt: time.Now(), Error: "GET / answered 503"}, false)
	}
	for _, tt := range []struct {
		name          string
		outOfRotation func(t *testing.T, u *unitPool, a, b *replica)
	}{
		{"all ejected", func(t *testing.T, u *unitPool, a, b *replica) { eject(t, u, a, b); eject(t, u, b, a) }},
		{"all failing their checks", func(t *testing.T, u *unitPool, a, b *replica) { failCheck(u, a); failCheck(u, b) }},
		{"one ejected, one failing its check", func(t *testing.T, u *unitPool, a, b *replica) { eject(t, u, a, b); failCheck(u, b) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnitPool(t, 4, 8, waitLimit, addrA, addrB)
			a, b := u.rep(t, addrA), u.rep(t, addrB)
			tt.outOfRotation(t, u, a, b)
			seen := map[string]int{}
			for range 4 {
				r := u.take(t, nil)
				seen[r.addr]++
				u.release(r, outcomeNone)
			}
			if seen[addrA] != 2 || seen[addrB] != 2 {
				t.Errorf("four requests with no replica usable went to %v, want two each", seen)
			}
		})
	}
}

// TestPoolFailOpenServesQueue: when the last usable replica fails its
// check, every replica becomes a candidate, and a request already waiting
// gets a free slot on one of them.
func TestPoolFailOpenServesQueue(t *testing.T) {
	u := newUnitPool(t, 1, 8, 2*time.Second, addrA, addrB)
	a, b := u.rep(t, addrA), u.rep(t, addrB)
	u.setCheck(b, metrics.BackendInfo{Ready: false, CheckedAt: time.Now()}, false)
	held := u.take(t, nil)
	if held != a {
		t.Fatalf("with B failing its check, the request went to %s, want %s", held.addr, addrA)
	}
	w := u.enqueue(t, t.Context(), nil) // B is free, but out of rotation
	u.setCheck(a, metrics.BackendInfo{Ready: false, CheckedAt: time.Now()}, false)
	// Now no replica is usable: B, free, is a candidate.
	got := receive(t, w, "the waiter")
	if got.err != nil || got.r != b {
		t.Errorf("the waiter got %s, %v; want %s at once: with no replica usable every replica is a candidate, and B had a free slot", addrOf(got.r), got.err, addrB)
	}
	if got.r != nil {
		u.release(got.r, outcomeAnswered)
	}
	u.release(held, outcomeAnswered)
}

// TestPoolReplicaRemovedDrains: a replica that re-resolution removes takes
// no new request, and is closed (its outstanding series forgotten) only
// after its last one ends.
func TestPoolReplicaRemovedDrains(t *testing.T) {
	u := newUnitPool(t, 2, 8, 3*waitLimit, addrA, addrB)
	a, b := u.rep(t, addrA), u.rep(t, addrB)
	if got := u.take(t, b); got != a {
		t.Fatalf("acquire excluding B = %s, want A", got.addr)
	}
	const series = "scoregate_replica_outstanding_requests"
	u.set(addrB)
	if got := addrsOf(u.snapshot()); !slices.Equal(got, []string{addrB}) {
		t.Fatalf("replicas = %v, want [%s]", got, addrB)
	}
	// A has a free slot, and is gone: requests go to B, then wait for it.
	b1, b2 := u.take(t, nil), u.take(t, nil)
	if b1 != b || b2 != b {
		t.Fatalf("two requests after A's removal went to %s and %s, want %s", b1.addr, b2.addr, addrB)
	}
	w := u.enqueue(t, t.Context(), nil)
	if !hasSeries(t, u.reg, series, "replica", addrA) || u.m.OutstandingRequests(unitLabel, addrA) != 1 {
		t.Errorf("A's outstanding series while its request runs: present %v, value %v; want present with 1",
			hasSeries(t, u.reg, series, "replica", addrA), u.m.OutstandingRequests(unitLabel, addrA))
	}
	u.release(a, outcomeAnswered) // A's last request
	if hasSeries(t, u.reg, series, "replica", addrA) {
		t.Errorf("A's outstanding series still there after its last request")
	}
	pending(t, w, "the waiter, after A's last request,")
	u.release(b1, outcomeAnswered)
	got := receive(t, w, "the waiter")
	if got.err != nil || got.r != b {
		t.Fatalf("the waiter got %s, %v; want %s", addrOf(got.r), got.err, addrB)
	}
	u.release(got.r, outcomeAnswered)
	u.release(b2, outcomeAnswered)
}

// TestPoolReplicaReaddedWhileDraining: an address that DNS removes and
// gives back while a request on it still runs (a pod that flaps) is a new
// replica. The old one's drain must not take the new one's outstanding
// series with it.
func TestPoolReplicaReaddedWhileDraining(t *testing.T) {
	u := newUnitPool(t, 2, 8, waitLimit, addrA, addrB)
	old, b := u.rep(t, addrA), u.rep(t, addrB)
	if got := u.take(t, b); got != old {
		t.Fatalf("acquire excluding B = %s, want A", got.addr)
	}
	u.set(addrB)        // A removed: draining its one request
	u.set(addrA, addrB) // and back while it drains
	revived := u.rep(t, addrA)
	if revived != old {
		t.Fatal("the re-added address got a new replica beside the draining one; want the same replica back, with its count")
	}
	if got := u.take(t, b); got != revived {
		t.Fatalf("acquire excluding B = %s, want A", got.addr)
	}
	if got := u.m.OutstandingRequests(unitLabel, addrA); got != 2 {
		t.Errorf("scoregate_replica_outstanding_requests{replica=%q} = %v, want 2", addrA, got)
	}
	u.release(old, outcomeAnswered) // the request from before the removal
	if got := u.m.OutstandingRequests(unitLabel, addrA); got != 1 {
		t.Errorf("scoregate_replica_outstanding_requests{replica=%q} = %v after the first request ended, want 1", addrA, got)
	}
	u.release(revived, outcomeAnswered)
	if got := u.m.OutstandingRequests(unitLabel, addrA); got != 0 {
		t.Errorf("scoregate_replica_outstanding_requests{replica=%q} = %v with nothing outstanding, want 0", addrA, got)
	}
}

func TestPoolExclude(t *testing.T) {
	u := newUnitPool(t, 4, 8, waitLimit, addrA, addrB, addrC)
	a := u.rep(t, addrA)
	for i := range 6 {
		r := u.take(t, a)
		if r == a {
			t.Fatalf("request %d excluding A went to A", i+1)
		}
		u.release(r, outcomeAnswered)
	}
}

// TestPoolExcludedOnlyWaiter: a waiter whose only free choice is the
// replica it excludes (a retry after a refused connection) keeps its place
// and does not hold up the requests behind it.
func TestPoolExcludedOnlyWaiter(t *testing.T) {
	t.Run("slot freed after both queued", func(t *testing.T) {
		u := newUnitPool(t, 1, 8, 3*waitLimit, addrA, addrB)
		a, b := u.rep(t, addrA), u.rep(t, addrB)
		u.take(t, b) // A
		u.take(t, a) // B
		retry := u.enqueue(t, t.Context(), a)
		next := u.enqueue(t, t.Context(), nil)
		u.release(a, outcomeConnFailed)
		if got := receive(t, next, "the request behind the retry"); got.err != nil || got.r != a {
			t.Fatalf("the request behind the retry got %s, %v; want %s", addrOf(got.r), got.err, addrA)
		}
		pending(t, retry, "the retry, with only its excluded replica free,")
		u.release(b, outcomeAnswered)
		if got := receive(t, retry, "the retry"); got.err != nil || got.r != b {
			t.Fatalf("the retry got %s, %v; want %s", addrOf(got.r), got.err, addrB)
		}
		u.release(a, outcomeAnswered)
		u.release(b, outcomeAnswered)
	})
	t.Run("slot already free", func(t *testing.T) {
		// The retry queues while A is free (it excludes A); a request
		// that arrives next must get A at once, not wait behind it.
		const wait = 2 * time.Second
		u := newUnitPool(t, 1, 8, wait, addrA, addrB)
		a, b := u.rep(t, addrA), u.rep(t, addrB)
		u.take(t, a) // B
		retry := u.enqueue(t, t.Context(), a)
		start := time.Now()
		r, err := u.acquire(t.Context(), nil)
		if err != nil || r != a {
			t.Errorf("a request behind a retry that excludes the free A got %s, %v after %v; want %s at once",
				addrOf(r), err, time.Since(start).Round(time.Millisecond), addrA)
		}
		if r != nil {
			u.release(r, outcomeAnswered)
		}
		u.release(b, outcomeAnswered)
		if got := receive(t, retry, "the retry"); got.r != nil {
			u.release(got.r, outcomeAnswered)
		}
	})
}

// End to end: real replicas behind the real TLS front.

// newPoolProxy builds a Proxy for testCName with cfg, recording into a
// fresh registry, its requests on path.
func newPoolProxy(t *testing.T, path seamPath, cfg Config) (*Proxy, *metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	cfg.CName = testCName
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	p, err := New(cfg, testLog(t), m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	setPath(t, p, path)
	return p, m, reg
}

func urls(t *testing.T, ss ...string) []*url.URL {
	t.Helper()
	out := make([]*url.URL, len(ss))
	for i, s := range ss {
		out[i] = mustParse(t, s)
	}
	return out
}

// gate holds a backend's handlers until the test opens it. Tests open it
// with defer as well, so that a test that fails early lets the servers
// shut down (httptest's Close waits for active handlers).
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// wait blocks until the gate opens or r's client leaves.
func (g *gate) wait(r *http.Request) {
	select {
	case <-g.ch:
	case <-r.Context().Done():
	}
}

// answer is a response read on another goroutine.
type answer struct {
	status int
	header http.Header
	body   string
	err    error
}

// send does req and reads the answer, without t: it runs on goroutines of
// its own.
func send(c *http.Client, req *http.Request) answer {
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func await(t *testing.T, ch <-chan answer, what string) answer {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("%s: %v", what, a.err)
		}
		return a
	case <-time.After(waitLimit):
		t.Fatalf("%s: no answer after %v", what, waitLimit)
		return answer{}
	}
}

// scoreOnly counts the requests to /score: the health checks (GET /) are
// not the test's.
func scoreOnly(r *http.Request) bool { return r.URL.Path == "/score" }

// TestPoolLeastOutstandingSkewedLatency: while a request is stuck on the
// slow replica, every new one goes to the fast one, though the slow one
// has free slots.
func TestPoolLeastOutstandingSkewedLatency(t *testing.T) {
	forTransports(t, testLeastOutstandingSkewedLatency)
}

func testLeastOutstandingSkewedLatency(t *testing.T, path seamPath) {
	g := newGate()
	var slowGot, fastGot atomic.Int64
	slowIn := make(chan struct{}, 8)
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if scoreOnly(r) {
			slowGot.Add(1)
			slowIn <- struct{}{}
			g.wait(r)
		}
		io.WriteString(w, "slow")
	})
	fast := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if scoreOnly(r) {
			fastGot.Add(1)
		}
		io.WriteString(w, "fast")
	})
	p, _, _ := newPoolProxy(t, path, Config{Backends: urls(t, slow.URL, fast.URL), MaxConcurrentPerReplica: 4})
	front := startFront(t, p)
	c := clientFor(t, front, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer g.open()

	// One request at a time until one is stuck on the slow replica: the
	// first or the second, as ties go in turn.
	var stuck chan answer
	for i := 0; stuck == nil; i++ {
		if i == 2 {
			t.Fatal("two requests on idle replicas, and neither reached the slow one")
		}
		done := make(chan answer, 1)
		req := newRequest(t, t.Context(), front, "GET", "/score", testCName, nil)
		wg.Go(func() { done <- send(c, req) })
		select {
		case <-slowIn:
			stuck = done
		case a := <-done:
			if a.err != nil || a.status != 200 || a.body != "fast" {
				t.Fatalf("request %d: %d %q, %v; want 200 fast", i+1, a.status, a.body, a.err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("request %d: no answer, and nothing at the slow replica", i+1)
		}
	}
	const n = 20
	before := fastGot.Load()
	for i := range n {
		resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/score", testCName, nil), 2)
		if resp.StatusCode != 200 || body != "fast" {
			t.Fatalf("request %d with one stuck on the slow replica: %d %q, want 200 fast", i+1, resp.StatusCode, body)
		}
	}
	if got := fastGot.Load() - before; got != n {
		t.Errorf("the fast replica got %d of the %d requests, want all", got, n)
	}
	if got := slowGot.Load(); got != 1 {
		t.Errorf("the slow replica got %d requests, want only the stuck one", got)
	}
	g.open()
	if a := await(t, stuck, "the stuck request"); a.status != 200 || a.body != "slow" {
		t.Errorf("the stuck request: %d %q, want 200 slow", a.status, a.body)
	}
}

// TestQueueLikeAzureML: two replicas that take one request each, a
// 500 ms queue wait: of six concurrent requests two run and four get 503
// with Retry-After once the wait is over, while the two still run.
func TestQueueLikeAzureML(t *testing.T) { forTransports(t, testQueueLikeAzureML) }

func testQueueLikeAzureML(t *testing.T, path seamPath) {
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			g := newGate()
			model := func(w http.ResponseWriter, r *http.Request) {
				if scoreOnly(r) {
					io.Copy(io.Discard, r.Body)
					g.wait(r)
				}
				io.WriteString(w, `{"score":0.5}`)
			}
			a, b := startBackend(t, model), startBackend(t, model)
			p, m, _ := newPoolProxy(t, path, Config{
				Backends:                urls(t, a.URL, b.URL),
				MaxConcurrentPerReplica: 1,
				MaxQueueWait:            500 * time.Millisecond,
			})
			front := startFront(t, p)
			c := clientFor(t, front, pr.major)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer g.open()

			answers := make(chan answer, 6)
			for range 6 {
				req := newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader(`{"data":[[1,2,3]]}`))
				wg.Go(func() { answers <- send(c, req) })
			}
			for i := range 4 {
				a := await(t, answers, fmt.Sprintf("refusal %d", i+1))
				if a.status != 503 {
					t.Fatalf("answer %d before the model was released: %d %q, want 503", i+1, a.status, a.body)
				}
				if got := a.header.Get("Retry-After"); got != "1" {
					t.Errorf("503 Retry-After = %q, want 1 (the queue wait, rounded up to a second)", got)
				}
				if e := checkErrorBody(t, a.header, a.body); e.Error != msgQueueTimeout {
					t.Errorf("503 error = %q, want %q", e.Error, msgQueueTimeout)
				}
			}
			g.open()
			for i := range 2 {
				if a := await(t, answers, fmt.Sprintf("admitted request %d", i+1)); a.status != 200 || a.body != `{"score":0.5}` {
					t.Errorf("admitted request %d: %d %q, want 200", i+1, a.status, a.body)
				}
			}
			if got := m.AdmissionsRefused(DefaultServiceLabel, metrics.RefusedQueueTimeout); got != 4 {
				t.Errorf("queue_timeout refusals = %v, want 4", got)
			}
			if got := m.QueueLength(DefaultServiceLabel); got != 0 {
				t.Errorf("scoregate_queue_length = %v, want 0", got)
			}
		})
	}
}

// startBackendAt starts a plain-HTTP backend listening on addr.
func startBackendAt(t *testing.T, ln net.Listener, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// replicaInfo returns the default service's replica at addr as Health
// shows it.
func replicaInfo(p *Proxy, addr string) (metrics.BackendInfo, bool) {
	for _, si := range p.Health() {
		for _, bi := range si.Replicas {
			if bi.Address == addr {
				return bi, true
			}
		}
	}
	return metrics.BackendInfo{}, false
}

// runProxy runs p's health checks and re-resolution until the test ends.
func runProxy(t *testing.T, p *Proxy) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// TestReplicaKilledAndRestarted: a replica whose server dies costs no
// client request (a refused connection goes to the other replica); after
// three refusals in a row it is ejected and no longer tried; restarted on
// the same address, it is back once a health check passes.
func TestReplicaKilledAndRestarted(t *testing.T) { forTransports(t, testReplicaKilledAndRestarted) }

func testReplicaKilledAndRestarted(t *testing.T, path seamPath) {
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) { testReplicaKilledAndRestartedOver(t, path, pr.major) })
	}
}

func testReplicaKilledAndRestartedOver(t *testing.T, path seamPath, major int) {
	var gotA, gotB atomic.Int64
	handler := func(n *atomic.Int64) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if scoreOnly(r) {
				n.Add(1)
			}
			io.WriteString(w, "ok")
		}
	}
	a := startBackend(t, handler(&gotA))
	b := startBackend(t, handler(&gotB))
	aAddr := a.Listener.Addr().String()
	p, _, reg := newPoolProxy(t, path, Config{Backends: urls(t, a.URL, b.URL), ProbeInterval: 20 * time.Millisecond})
	front := startFront(t, p)
	c := clientFor(t, front, major)
	var failed []string
	get := func(what string) {
		t.Helper()
		resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/score", testCName, nil), major)
		if resp.StatusCode != 200 {
			failed = append(failed, fmt.Sprintf("%s: %d %s", what, resp.StatusCode, strings.TrimSpace(body)))
		}
	}
	for i := 0; gotA.Load() == 0 || gotB.Load() == 0; i++ {
		if i == 4 {
			t.Fatalf("4 requests reached A %d and B %d times, want both", gotA.Load(), gotB.Load())
		}
		get("request before the kill")
	}
	if len(failed) > 0 {
		t.Fatalf("with both replicas up: %q", failed)
	}

	a.Close() // its listener and its connections
	for i := 0; ; i++ {
		if info, _ := replicaInfo(p, aAddr); info.Ejected {
			break
		}
		if i == 4*ejectAfter {
			t.Fatalf("A not ejected after %d requests with it down", i)
		}
		get(fmt.Sprintf("request %d after the kill", i+1))
	}
	if got := counterSum(t, reg, "scoregate_replica_ejections_total"); got != 1 {
		t.Errorf("scoregate_replica_ejections_total = %v, want 1", got)
	}
	// Ejected, A is not even tried: its failure count stays.
	aRep := replicaAt(t, p.dflt, aAddr)
	for i := range 4 {
		get(fmt.Sprintf("request %d with A ejected", i+1))
	}
	p.dflt.pool.mu.Lock()
	fails := aRep.fails
	p.dflt.pool.mu.Unlock()
	if fails != ejectAfter {
		t.Errorf("A's connection failures = %d after 4 requests with it ejected, want %d: an ejected replica is not tried", fails, ejectAfter)
	}

	ln, err := net.Listen("tcp", aAddr)
	if err != nil {
		t.Fatalf("restarting A on %s: %v", aAddr, err)
	}
	startBackendAt(t, ln, handler(&gotA))
	runProxy(t, p)
	waitUntil(t, "A to pass a health check and return", func() bool {
		info, _ := replicaInfo(p, aAddr)
		return info.Ready && !info.Ejected
	})
	before := gotA.Load()
	for i := 0; gotA.Load() == before; i++ {
		if i == 4 {
			t.Fatalf("A back in rotation, and 4 requests did not reach it")
		}
		get("request after A's return")
	}
	if len(failed) > 0 {
		t.Errorf("%d client-visible failures after the kill, want none (a refused connection goes to the other replica):\n%s", len(failed), strings.Join(failed, "\n"))
	}
}

// countingListener counts the connections accepted and open at once.
type countingListener struct {
	net.Listener

	mu                sync.Mutex
	open, most, total int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.total++
	l.most = max(l.most, l.open)
	l.mu.Unlock()
	return &countedConn{Conn: c, l: l}, nil
}

func (l *countingListener) counts() (most, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.most, l.total
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// startWideFront is startFront with room for streams HTTP/2 streams at
// once on a connection (net/http's default is 250), and a count of the
// client connections it accepted.
func startWideFront(t *testing.T, h http.Handler, streams int) (*httptest.Server, func() int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: streams}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	startTLS(t, srv)
	t.Cleanup(srv.Close)
	return srv, conns.Load
}

// TestStreams400OneConnection: 400 concurrent HTTP/2 streams on one client
// connection reach a replica through at most MaxConcurrentPerReplica
// connections (one more for the health check), and all are answered.
func TestStreams400OneConnection(t *testing.T) { forTransports(t, testStreams400OneConnection) }

func testStreams400OneConnection(t *testing.T, path seamPath) {
	const streams, perReplica = 400, 8
	g := newGate()
	full := make(chan struct{})
	var fullOnce sync.Once
	var mu sync.Mutex
	inflight, most := 0, 0
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if scoreOnly(r) {
			mu.Lock()
			inflight++
			most = max(most, inflight)
			n := inflight
			mu.Unlock()
			if n == perReplica {
				fullOnce.Do(func() { close(full) })
			}
			g.wait(r)
			mu.Lock()
			inflight--
			mu.Unlock()
		}
		io.WriteString(w, "ok")
	}))
	ln := &countingListener{Listener: backend.Listener}
	backend.Listener = ln
	backend.Start()
	t.Cleanup(backend.Close)

	p, _, _ := newPoolProxy(t, path, Config{
		Backend:                 mustParse(t, backend.URL),
		MaxConcurrentPerReplica: perReplica,
		MaxQueueWait:            3 * waitLimit,
		MaxQueueLength:          streams,
		// Checks run throughout, and each ends well within its
		// timeout (the interval): a check cut off would close its
		// connection, and the count would see the replica notice late.
		ProbeInterval: 200 * time.Millisecond,
	})
	runProxy(t, p)
	front, frontConns := startWideFront(t, p, 2*streams)
	c := clientFor(t, front, 2)
	c.Transport.(*http.Transport).HTTP2 = &http.HTTP2Config{StrictMaxConcurrentRequests: true}
	// One request first, so that the client has its connection and the
	// front's stream limit before the 400 start: they would each dial.
	if resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/", testCName, nil), 2); resp.StatusCode != 200 {
		t.Fatalf("GET /: %d %s", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitLimit)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	defer g.open()

	answers := make(chan answer, streams)
	for range streams {
		req := newRequest(t, ctx, front, "GET", "/score", testCName, nil)
		wg.Go(func() { answers <- send(c, req) })
	}
	select {
	case <-full:
	case <-time.After(waitLimit):
		mu.Lock()
		n := inflight
		mu.Unlock()
		t.Fatalf("%d requests in flight at the replica after %v, want %d", n, waitLimit, perReplica)
	}
	g.open()
	codes := map[int]int{}
	for i := range streams {
		a := <-answers // each ends by ctx's deadline at the latest
		if a.err != nil {
			t.Fatalf("stream %d: %v", i+1, a.err)
		}
		codes[a.status]++
	}
	if codes[200] != streams {
		t.Errorf("statuses %v, want %d × 200", codes, streams)
	}
	mu.Lock()
	gotMost := most
	mu.Unlock()
	if gotMost != perReplica {
		t.Errorf("at most %d requests in flight at the replica, want %d", gotMost, perReplica)
	}
	conns, total := ln.counts()
	t.Logf("replica connections: at most %d open at once, %d in all", conns, total)
	if conns > perReplica+1 {
		t.Errorf("the replica had %d connections open at once (%d in all), want at most %d", conns, total, perReplica+1)
	}
	if got := frontConns(); got != 1 {
		t.Errorf("the client opened %d connections to the front, want 1", got)
	}
}

// replicaAt returns the service's current replica at addr.
func replicaAt(t *testing.T, s *service, addr string) *replica {
	t.Helper()
	reps := s.pool.snapshot()
	i := slices.IndexFunc(reps, func(r *replica) bool { return r.addr == addr })
	if i < 0 {
		t.Fatalf("no replica %s in %v", addr, addrsOf(reps))
	}
	return reps[i]
}

// firstPick makes the service's next pick among idle replicas the one at
// addr: ties go in turn from pool.next.
func firstPick(t *testing.T, s *service, addr string) {
	t.Helper()
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	i := slices.IndexFunc(s.pool.replicas, func(r *replica) bool { return r.addr == addr })
	if i < 0 {
		t.Fatalf("no replica %s", addr)
	}
	s.pool.next = i
}

// startResettingReplica starts a replica that reads each request whole
// and then resets the connection: a worker killed mid-inference.
func startResettingReplica(t *testing.T) (string, func() int) {
	raw := startRawBackend(t, func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool {
		c.(*net.TCPConn).SetLinger(0) // Close sends RST
		return false
	})
	return raw.url, func() int {
		_, _, reqs := raw.counts()
		return len(reqs)
	}
}

// nothingListening is a replica address that refuses connections.
func nothingListening(t *testing.T) (string, func() int) {
	return "http://" + closedPort(t), func() int { return 0 }
}

// TestRetryOnlyUnsent: a request goes to a second replica only when it
// reached no replica at all. One whose bytes reached A, which then reset
// the connection, is never sent to B (the model may have run); one whose
// connection A refused reaches B exactly once.
func TestRetryOnlyUnsent(t *testing.T) { forTransports(t, testRetryOnlyUnsent) }

func testRetryOnlyUnsent(t *testing.T, path seamPath) {
	for _, tt := range []struct {
		name         string
		method, body string
		startA       func(t *testing.T) (url string, read func() int) // read: the requests A read whole
		wantCode     int
		wantAtA      int
		wantAtB      int64
	}{
		{"POST whose body reached A, which reset the connection", "POST", `{"n":1}`, startResettingReplica, 502, 1, 0},
		{"POST, A refused the connection", "POST", `{"n":1}`, nothingListening, 200, 0, 1},
		{"GET, A refused the connection", "GET", "", nothingListening, 200, 0, 1},
	} {
		for _, pr := range protos {
			t.Run(tt.name+"/"+pr.name, func(t *testing.T) {
				aURL, readAtA := tt.startA(t)
				var gotB atomic.Int64
				b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
					if scoreOnly(r) {
						gotB.Add(1)
					}
					io.Copy(io.Discard, r.Body)
					io.WriteString(w, "b")
				})
				p, _, _ := newPoolProxy(t, path, Config{Backends: urls(t, aURL, b.URL)})
				firstPick(t, p.dflt, mustParse(t, aURL).Host)
				front := startFront(t, p)
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req := newRequest(t, t.Context(), front, tt.method, "/score", testCName, body)
				resp, got := do(t, clientFor(t, front, pr.major), req, pr.major)
				if resp.StatusCode != tt.wantCode {
					t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantCode, got)
				}
				if tt.wantCode != 200 {
					checkErrorBody(t, resp.Header, got)
				}
				if got := readAtA(); got != tt.wantAtA {
					t.Errorf("A read %d requests, want %d", got, tt.wantAtA)
				}
				if got := gotB.Load(); got != tt.wantAtB {
					t.Errorf("B got the request %d times, want %d", got, tt.wantAtB)
				}
			})
		}
	}
}

// TestRetryRefusedSingleReplica502AtOnce: with one replica there is no
// other to retry on: a refused connection is 502 at once (Config.DialTimeout
// says so), not after a wait in the queue for a replica that cannot exist,
// and it is not counted as a queue timeout.
func TestRetryRefusedSingleReplica502AtOnce(t *testing.T) {
	forTransports(t, testRetryRefusedSingleReplica502AtOnce)
}

func testRetryRefusedSingleReplica502AtOnce(t *testing.T, path seamPath) {
	const wait = time.Second // far longer than a refusal takes
	p, m, _ := newPoolProxy(t, path, Config{Backend: mustParse(t, "http://"+closedPort(t)), MaxQueueWait: wait})
	front := startFront(t, p)
	start := time.Now()
	resp, body := do(t, clientFor(t, front, 2), newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader("{}")), 2)
	took := time.Since(start)
	if resp.StatusCode != 502 {
		t.Fatalf("status = %d, want 502; body %s", resp.StatusCode, body)
	}
	if got := m.AdmissionsRefused(DefaultServiceLabel, metrics.RefusedQueueTimeout); got != 0 {
		t.Errorf("queue_timeout refusals = %v, want 0: the retry of a refused connection waited in the queue for a second replica that does not exist", got)
	}
	if took >= wait {
		t.Errorf("502 after %v, want it at once, not after the queue wait of %v", took.Round(time.Millisecond), wait)
	}
}

// TestFairQueueOrder: requests that wait for the one slot of the one
// replica reach it in the order they arrived.
func TestFairQueueOrder(t *testing.T) { forTransports(t, testFairQueueOrder) }

func testFairQueueOrder(t *testing.T, path seamPath) {
	const n = 5
	arrived := make(chan string, n+1)
	next := make(chan struct{})
	stop := make(chan struct{})
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		seq := r.Header.Get("X-Seq")
		if scoreOnly(r) {
			arrived <- seq
			select {
			case <-next:
			case <-stop:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, seq)
	})
	p, m, _ := newPoolProxy(t, path, Config{Backend: mustParse(t, backend.URL), MaxConcurrentPerReplica: 1, MaxQueueWait: 3 * waitLimit})
	front := startFront(t, p)
	c := clientFor(t, front, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)

	answers := make([]chan answer, n+1)
	start := func(i int) {
		req := newRequest(t, t.Context(), front, "GET", "/score", testCName, nil)
		req.Header.Set("X-Seq", strconv.Itoa(i))
		answers[i] = make(chan answer, 1)
		wg.Go(func() { answers[i] <- send(c, req) })
	}
	arrival := func(what string) string {
		t.Helper()
		select {
		case s := <-arrived:
			return s
		case <-time.After(waitLimit):
			t.Fatalf("%s: nothing reached the replica after %v", what, waitLimit)
			return ""
		}
	}
	free := func() {
		t.Helper()
		select {
		case next <- struct{}{}:
		case <-time.After(waitLimit):
			t.Fatalf("no request at the replica to release after %v", waitLimit)
		}
	}
	start(0)
	if got := arrival("request 0"); got != "0" {
		t.Fatalf("first at the replica: %q, want 0", got)
	}
	for i := 1; i <= n; i++ {
		start(i)
		waitUntil(t, fmt.Sprintf("request %d to queue", i), func() bool { return m.QueueLength(DefaultServiceLabel) == float64(i) })
	}
	for i := 1; i <= n; i++ {
		free()
		if got := arrival(fmt.Sprintf("request %d", i)); got != strconv.Itoa(i) {
			t.Fatalf("after %d releases the replica got request %s, want %d", i, got, i)
		}
	}
	free()
	for i, ch := range answers {
		if a := await(t, ch, fmt.Sprintf("request %d", i)); a.status != 200 || a.body != strconv.Itoa(i) {
			t.Errorf("request %d: %d %q, want 200 %d", i, a.status, a.body, i)
		}
	}
}

// testDNS is a DNS server over TCP that answers A questions for one name
// from a set the test changes, and has no other records.
type testDNS struct {
	name string // fully qualified
	addr string

	mu  sync.Mutex
	ips []net.IP
}

func startTestDNS(t *testing.T, name string) *testDNS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{name: dns.Fqdn(name), addr: ln.Addr().String()}
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		for _, question := range q.Question {
			if !strings.EqualFold(question.Name, d.name) {
				m.Rcode = dns.RcodeNameError
				continue
			}
			if question.Qtype != dns.TypeA {
				continue
			}
			d.mu.Lock()
			for _, ip := range d.ips {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   ip,
				})
			}
			d.mu.Unlock()
		}
		w.WriteMsg(m)
	})}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ActivateAndServe() })
	t.Cleanup(func() {
		srv.Shutdown()
		wg.Wait()
	})
	return d
}

// set makes ips the name's addresses.
func (d *testDNS) set(ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ips = d.ips[:0]
	for _, s := range ips {
		d.ips = append(d.ips, net.ParseIP(s))
	}
}

// resolver asks only d, over TCP.
func (d *testDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", d.addr)
	}}
}

// listenPair listens on 127.0.0.2 and 127.0.0.3 with one port: two
// replicas of one name and port.
func listenPair(t *testing.T) (ln2, ln3 net.Listener, port string) {
	t.Helper()
	for range 5 {
		ln2, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatalf("listening on 127.0.0.2: %v", err)
		}
		_, port, _ := net.SplitHostPort(ln2.Addr().String())
		ln3, err := net.Listen("tcp", net.JoinHostPort("127.0.0.3", port))
		if err == nil {
			return ln2, ln3, port
		}
		ln2.Close()
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3 in 5 tries")
	return nil, nil, ""
}

func replicaAddrs(p *Proxy) []string {
	return addrsOf(p.dflt.pool.snapshot())
}

// TestResolveAddsAndDrainsReplicas: a backend given by name follows DNS: a
// new address becomes a replica that gets requests; a removed one takes no
// new request, and the one it was serving completes.
func TestResolveAddsAndDrainsReplicas(t *testing.T) {
	forTransports(t, testResolveAddsAndDrainsReplicas)
}

func testResolveAddsAndDrainsReplicas(t *testing.T, path seamPath) {
	ln2, ln3, port := listenPair(t)
	addr2, addr3 := ln2.Addr().String(), ln3.Addr().String()
	g := newGate()
	held := make(chan struct{}, 1)
	var got2, got3 atomic.Int64
	replicaHandler := func(id string, n *atomic.Int64) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if scoreOnly(r) {
				n.Add(1)
				if id == "2" && r.Header.Get("X-Hold") != "" {
					held <- struct{}{}
					g.wait(r)
				}
			}
			io.WriteString(w, id)
		}
	}
	startBackendAt(t, ln2, replicaHandler("2", &got2))
	startBackendAt(t, ln3, replicaHandler("3", &got3))
	d := startTestDNS(t, "model.test")
	d.set("127.0.0.2")

	const series = "scoregate_replica_outstanding_requests"
	p, m, reg := newPoolProxy(t, path, Config{
		Backends:        urls(t, "http://model.test:"+port),
		Resolver:        d.resolver(),
		ResolveInterval: 50 * time.Millisecond,
	})
	if got := replicaAddrs(p); !slices.Equal(got, []string{addr2}) {
		t.Fatalf("replicas after New = %v, want [%s]", got, addr2)
	}
	runProxy(t, p)
	front := startFront(t, p)
	c := clientFor(t, front, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer g.open()
	get := func(what string) string {
		t.Helper()
		resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/score", testCName, nil), 2)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s, want 200", what, resp.StatusCode, body)
		}
		return body
	}
	get("request with one address")

	d.set("127.0.0.2", "127.0.0.3")
	waitUntil(t, "the second address to become a replica", func() bool { return len(replicaAddrs(p)) == 2 })
	for i := 0; got2.Load() == 0 || got3.Load() == 0; i++ {
		if i == 8 {
			t.Fatalf("8 requests reached 127.0.0.2 %d and 127.0.0.3 %d times, want both", got2.Load(), got3.Load())
		}
		get("request with two addresses")
	}

	// A request held on 127.0.0.2: the first of at most two, as ties go
	// in turn.
	var stuck chan answer
	for i := 0; stuck == nil; i++ {
		if i == 2 {
			t.Fatal("two requests on idle replicas, and neither was held on 127.0.0.2")
		}
		done := make(chan answer, 1)
		req := newRequest(t, t.Context(), front, "GET", "/score", testCName, nil)
		req.Header.Set("X-Hold", "1")
		wg.Go(func() { done <- send(c, req) })
		select {
		case <-held:
			stuck = done
		case a := <-done:
			if a.err != nil || a.status != 200 || a.body != "3" {
				t.Fatalf("request to hold: %d %q, %v; want it held on 127.0.0.2 or 200 from 127.0.0.3", a.status, a.body, a.err)
			}
		case <-time.After(waitLimit):
			t.Fatal("the request to hold neither reached 127.0.0.2 nor got an answer")
		}
	}

	d.set("127.0.0.3")
	waitUntil(t, "127.0.0.2 to be removed", func() bool { return slices.Equal(replicaAddrs(p), []string{addr3}) })
	before2 := got2.Load()
	for i := range 6 {
		if body := get(fmt.Sprintf("request %d after the removal", i+1)); body != "3" {
			t.Errorf("request %d after the removal answered by %q, want 3", i+1, body)
		}
	}
	if got := got2.Load(); got != before2 {
		t.Errorf("127.0.0.2 got %d requests after its removal, want none", got-before2)
	}
	if !hasSeries(t, reg, series, "replica", addr2) {
		t.Errorf("127.0.0.2's outstanding series gone while its request still runs")
	}
	if info, ok := replicaInfo(p, addr2); ok {
		t.Errorf("Health still lists the removed replica: %+v", info)
	}

	g.open()
	if a := await(t, stuck, "the request held on the removed replica"); a.status != 200 || a.body != "2" {
		t.Errorf("the request held on the removed replica: %d %q, want 200 2 (drained, not cut)", a.status, a.body)
	}
	waitUntil(t, "the drained replica's series to go", func() bool { return !hasSeries(t, reg, series, "replica", addr2) })
	if got := m.OutstandingRequests(DefaultServiceLabel, addr3); got != 0 {
		t.Errorf("127.0.0.3 outstanding = %v, want 0", got)
	}
}
