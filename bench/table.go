package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes r as a table (see the package function WriteTable).
func (r *Result) WriteTable(w io.Writer) error {
	return WriteTable(w, r)
}

// WriteTable writes results side by side as a table, one column each. With
// exactly two results it adds a column with the latency the first adds over
// the second (see Added): give the run through the proxy first and the run
// straight to its backend second.
func WriteTable(w io.Writer, results ...*Result) error {
	// Right-aligned numbers; the names, padded to one width, stay left.
	tw := tabwriter.NewWriter(w, 0, 0, 0, ' ', tabwriter.AlignRight)
	added := len(results) == 2
	row := func(name string, cell func(r *Result) string, extra string) {
		fmt.Fprintf(tw, "%-12s\t", name)
		for _, r := range results {
			fmt.Fprintf(tw, "  %s\t", cell(r))
		}
		if added {
			fmt.Fprintf(tw, "  %s\t", extra)
		}
		fmt.Fprintln(tw)
	}
	head := ""
	if added {
		head = "added"
	}
	row("", func(r *Result) string { return r.Label }, head)
	row("scenario", func(r *Result) string { return string(r.Scenario) }, "")
	row("load", loadText, "")
	row("measured", func(r *Result) string { return fmtSeconds(r.Duration) }, "")
	row("requests ok", func(r *Result) string { return group(r.Requests) }, "")
	row("throughput", func(r *Result) string { return group(uint64(r.Throughput+0.5)) + "/s" }, "")
	var a Latency
	if added {
		a = Added(results[0], results[1])
	}
	for _, l := range []struct {
		name string
		get  func(Latency) time.Duration
	}{
		{"latency mean", func(l Latency) time.Duration { return l.Mean }},
		{"p50", func(l Latency) time.Duration { return l.P50 }},
		{"p90", func(l Latency) time.Duration { return l.P90 }},
		{"p99", func(l Latency) time.Duration { return l.P99 }},
		{"p99.9", func(l Latency) time.Duration { return l.P999 }},
		{"max", func(l Latency) time.Duration { return l.Max }},
	} {
		extra := ""
		if added {
			extra = fmtSigned(l.get(a))
		}
		row(l.name, func(r *Result) string { return fmtLatency(l.get(r.Latency)) }, extra)
	}
	for _, r := range results {
		if r.Scenario == Handshake || r.Scenario == Resume {
			row("resumed", func(r *Result) string {
				if r.Scenario != Handshake && r.Scenario != Resume {
					return "-"
				}
				return strconv.FormatFloat(100*r.ResumedShare, 'f', 1, 64) + "%"
			}, "")
			break
		}
	}
	row("errors", func(r *Result) string { return group(r.Errors.Total()) }, "")
	for _, k := range []struct {
		name string
		get  func(Errors) uint64
	}{
		{"timeout", func(e Errors) uint64 { return e.Timeout }},
		{"dial", func(e Errors) uint64 { return e.Dial }},
		{"tls", func(e Errors) uint64 { return e.TLS }},
		{"4xx", func(e Errors) uint64 { return e.Status4xx }},
		{"5xx", func(e Errors) uint64 { return e.Status5xx }},
		{"other status", func(e Errors) uint64 { return e.StatusOther }},
		{"other", func(e Errors) uint64 { return e.Other }},
	} {
		seen := false
		for _, r := range results {
			seen = seen || k.get(r.Errors) > 0
		}
		if seen {
			row("  "+k.name, func(r *Result) string { return group(k.get(r.Errors)) }, "")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		var notes []string
		if r.Errors.First != "" {
			notes = append(notes, "first error: "+r.Errors.First)
		}
		if r.Interrupted {
			notes = append(notes, "interrupted before the end of the measured window")
		}
		for _, n := range notes {
			if _, err := fmt.Fprintf(w, "%s: %s\n", r.Label, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadText describes the load of a run in a few words.
func loadText(r *Result) string {
	var s string
	switch {
	case r.Scenario == H2:
		s = fmt.Sprintf("%d conns × %d streams", r.H2Conns, r.H2Streams)
	case r.Scenario == H1:
		s = fmt.Sprintf("%d conns", r.Concurrency)
	default:
		s = fmt.Sprintf("%d workers", r.Concurrency)
	}
	if r.Loop == "open" {
		return fmt.Sprintf("open %s/s, %s", strconv.FormatFloat(r.Rate, 'f', -1, 64), s)
	}
	return "closed, " + s
}

// fmtLatency formats d with three significant figures in µs, ms or s.
func fmtLatency(d time.Duration) string {
	switch abs := max(d, -d); {
	case abs < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case abs < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms"
	case abs < 100*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms"
	case abs < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 0, 64) + "ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	}
}

// fmtSigned is fmtLatency with an explicit sign.
func fmtSigned(d time.Duration) string {
	if d >= 0 {
		return "+" + fmtLatency(d)
	}
	return fmtLatency(d)
}

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

// group formats n with thousands separators: 1,234,567.
func group(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
