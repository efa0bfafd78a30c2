package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// defaultGCPercent is the GC target of `serve` unless GOGC is set, while
// the live heap is small.
const defaultGCPercent = 400

// maxGCHeadroom bounds the garbage serve lets accumulate beyond the live
// heap. A proxy's live heap is a few MiB under load, where 400 % costs a
// few tens of MiB and saves most of the GC's CPU; thousands of idle
// connections make it large (about 6 KiB each), and 400 % of that would
// be resident memory spent on garbage (27 KB per idle connection instead
// of 16 KB, measured with 10,000).
const maxGCHeadroom = 64 << 20

// gcPercentFor is the GC target that gives a live heap of live bytes the
// headroom of defaultGCPercent, or maxGCHeadroom if that is less, but never
// less than Go's default of 100 %.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return defaultGCPercent
	}
	return int(min(max(maxGCHeadroom*100/live, 100), defaultGCPercent))
}

// tuneGC sets the GC target from the live heap measured by the last
// collection, every interval, until ctx is done.
func tuneGC(ctx context.Context, interval time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := -1
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := gcPercentFor(sample[0].Value.Uint64()); p != last {
				debug.SetGCPercent(p)
				last = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
