package main

import "testing"

// TestGCPercentFor: 400 % while the live heap is small, the headroom held
// to 64 MiB once it is large, never under 100 %.
func TestGCPercentFor(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, 400},
		{4 << 20, 400},   // a proxy under load
		{16 << 20, 400},  // 64 MiB is exactly 400 %
		{32 << 20, 200},  // 64 MiB of headroom
		{60 << 20, 106},  // 10,000 idle connections
		{128 << 20, 100}, // never under Go's default
		{1 << 30, 100},
	} {
		if got := gcPercentFor(tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tt.live>>20, got, tt.want)
		}
	}
}
