package proxy

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scoregate/scoregate/metrics"
)

// benchPool is a pool of n idle replicas that records into a registry of
// its own, as a service's pool does. Its limits leave room for every
// goroutine of RunParallel, so that no request waits: the pick itself is
// measured, not the queue.
func benchPool(n int) *pool {
	p := &pool{
		label:    "bench",
		maxPer:   max(DefaultMaxConcurrentPerReplica, runtime.GOMAXPROCS(0)),
		maxQueue: DefaultMaxQueueLength,
		maxWait:  DefaultMaxQueueWait,
		m:        metrics.New(prometheus.NewRegistry()),
	}
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.%d.%d:5001", i/256, i%256)
	}
	// The replicas are never dialed, nor closed: no transports.
	p.setReplicas(addrs, func(addr string) *replica { return &replica{addr: addr} })
	return p
}

// BenchmarkPick is one request's admission and release on an uncontended
// pool: the pick (least outstanding, ties in turn) and the metrics that
// go with it, serially and from every P at once.
func BenchmarkPick(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{2, 8, 64} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			p := benchPool(n)
			b.ReportAllocs()
			for b.Loop() {
				r, err := p.acquire(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				p.release(r, outcomeAnswered)
			}
		})
		b.Run(fmt.Sprintf("replicas=%d/parallel", n), func(b *testing.B) {
			p := benchPool(n)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := p.acquire(ctx, nil)
					if err != nil {
						b.Error(err) // not Fatal: this is not the benchmark's goroutine
						return
					}
					p.release(r, outcomeAnswered)
				}
			})
		})
	}
}
