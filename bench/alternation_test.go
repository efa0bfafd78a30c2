package bench_test

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/bench"
)

const us = time.Microsecond

func TestSpreadOf(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []time.Duration
		want bench.Spread
	}{
		{"none", nil, bench.Spread{}},
		{"one", []time.Duration{40 * us}, bench.Spread{Median: 40 * us, Min: 40 * us, Max: 40 * us, Each: []time.Duration{40 * us}}},
		{"odd count, unsorted", []time.Duration{90 * us, 30 * us, 50 * us, 200 * us, 40 * us},
			bench.Spread{Median: 50 * us, Min: 30 * us, Max: 200 * us, Each: []time.Duration{90 * us, 30 * us, 50 * us, 200 * us, 40 * us}}},
		{"even count: mean of the middle two", []time.Duration{10 * us, 40 * us, 20 * us, 30 * us},
			bench.Spread{Median: 25 * us, Min: 10 * us, Max: 40 * us, Each: []time.Duration{10 * us, 40 * us, 20 * us, 30 * us}}},
		{"negative differences: noise larger than the cost", []time.Duration{-20 * us, 15 * us, -5 * us},
			bench.Spread{Median: -5 * us, Min: -20 * us, Max: 15 * us, Each: []time.Duration{-20 * us, 15 * us, -5 * us}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := bench.SpreadOf(in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SpreadOf(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("SpreadOf modified its input: %v, want %v", in, tt.in)
			}
		})
	}
}

func TestAlternated(t *testing.T) {
	res := func(p50, p99, p999 time.Duration) *bench.Result {
		return &bench.Result{Latency: bench.Latency{P50: p50, P99: p99, P999: p999}}
	}
	via := []*bench.Result{res(150*us, 400*us, 900*us), res(140*us, 500*us, 1200*us), res(160*us, 450*us, 800*us)}
	// The last baseline is missing, as after an interrupt: two pairs.
	direct := []*bench.Result{res(100*us, 300*us, 700*us), res(100*us, 300*us, 700*us)}
	a := bench.Alternated("scoregate", "direct backend", via, direct)
	if a.Alternations != 2 || a.Label != "scoregate" || a.Baseline != "direct backend" {
		t.Fatalf("Alternated: %d alternations of %q over %q, want 2 of scoregate over direct backend", a.Alternations, a.Label, a.Baseline)
	}
	for _, tt := range []struct {
		name      string
		got, want bench.Spread
	}{
		{"p50", a.P50, bench.Spread{Median: 45 * us, Min: 40 * us, Max: 50 * us, Each: []time.Duration{50 * us, 40 * us}}},
		{"p99", a.P99, bench.Spread{Median: 150 * us, Min: 100 * us, Max: 200 * us, Each: []time.Duration{100 * us, 200 * us}}},
		{"p99.9", a.P999, bench.Spread{Median: 350 * us, Min: 200 * us, Max: 500 * us, Each: []time.Duration{200 * us, 500 * us}}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %+v, want %+v", tt.name, tt.got, tt.want)
		}
	}

	var b bytes.Buffer
	if err := a.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"scoregate", "adds", "over", "direct", "backend,", "2", "alternations"},
		{"median", "min", "max", "#1", "#2"},
		{"p50", "+45µs", "+40µs", "+50µs", "+50µs", "+40µs"},
		{"p99", "+150µs", "+100µs", "+200µs", "+100µs", "+200µs"},
		{"p99.9", "+350µs", "+200µs", "+500µs", "+200µs", "+500µs"},
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s\nwant %d lines", b.String(), len(want))
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); !slices.Equal(got[:min(len(got), len(w))], w) {
			t.Errorf("table line %d = %q, want it to start with the fields %q", i+1, lines[i], w)
		}
	}
}
