package bench

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Spread summarises one percentile's added latency over several
// alternations: the median of the per-alternation differences and their
// range, which is the noise of the machine that measured them.
type Spread struct {
	Median time.Duration   `json:"median_ns"`
	Min    time.Duration   `json:"min_ns"`
	Max    time.Duration   `json:"max_ns"`
	Each   []time.Duration `json:"each_ns"` // one difference per alternation, in run order
}

// SpreadOf returns the median, minimum and maximum of ds; with an even
// number of values the median is the mean of the middle two. ds is not
// modified. The zero Spread stands for no values.
func SpreadOf(ds []time.Duration) Spread {
	if len(ds) == 0 {
		return Spread{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	median := s[n/2]
	if n%2 == 0 {
		median = s[n/2-1] + (s[n/2]-s[n/2-1])/2
	}
	return Spread{Median: median, Min: s[0], Max: s[n-1], Each: slices.Clone(ds)}
}

// AddedSpread is the latency one target adds over a baseline measured
// alternately with it (target, baseline, target, baseline, ...), each
// percentile summarised over the alternations.
type AddedSpread struct {
	Label        string `json:"label"`    // the target, such as "scoregate"
	Baseline     string `json:"baseline"` // such as "direct backend"
	Alternations int    `json:"alternations"`
	P50          Spread `json:"p50"`
	P99          Spread `json:"p99"`
	P999         Spread `json:"p99_9"`
}

// Alternated pairs runs[i] with baselines[i], the run made right after it,
// and summarises Added over the pairs; label and baseline name the two
// targets. Runs beyond the shorter slice (an interrupted series) are left
// out.
func Alternated(label, baseline string, runs, baselines []*Result) AddedSpread {
	n := min(len(runs), len(baselines))
	a := AddedSpread{Label: label, Baseline: baseline, Alternations: n}
	var p50, p99, p999 []time.Duration
	for i := range n {
		d := Added(runs[i], baselines[i])
		p50, p99, p999 = append(p50, d.P50), append(p99, d.P99), append(p999, d.P999)
	}
	a.P50, a.P99, a.P999 = SpreadOf(p50), SpreadOf(p99), SpreadOf(p999)
	return a
}

// WriteTable writes a as a table: a row per percentile, with the median,
// minimum and maximum of the added latency, then each alternation's.
func (a AddedSpread) WriteTable(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "%s adds over %s, %d alternations (spread: this machine's noise):\n", a.Label, a.Baseline, a.Alternations); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 0, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-8s\t  median\t  min\t  max\t", "")
	for i := range a.Alternations {
		fmt.Fprintf(tw, "  #%d\t", i+1)
	}
	fmt.Fprintln(tw)
	for _, row := range []struct {
		name string
		s    Spread
	}{{"p50", a.P50}, {"p99", a.P99}, {"p99.9", a.P999}} {
		fmt.Fprintf(tw, "%-8s\t  %s\t  %s\t  %s\t", row.name, fmtSigned(row.s.Median), fmtSigned(row.s.Min), fmtSigned(row.s.Max))
		for _, d := range row.s.Each {
			fmt.Fprintf(tw, "  %s\t", fmtSigned(d))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
