package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The Go runtime gauges that ReadGoMemory reads. The Go collector of
// prometheus/client_golang exports both (scoregate's /metrics has it).
const (
	MetricHeapInuse  = "go_memstats_heap_inuse_bytes"
	MetricStackInuse = "go_memstats_stack_inuse_bytes"
)

// ServerMemory is one reading of a server's memory, in bytes. A field is
// zero when it was not read.
type ServerMemory struct {
	RSS        uint64 // resident set, from /proc/PID/status (ReadRSS)
	HeapInuse  uint64 // Go heap spans in use, from MetricHeapInuse
	StackInuse uint64 // Go goroutine stacks, from MetricStackInuse
}

// ReadRSS returns the resident set size of process pid, in bytes, from the
// VmRSS line of /proc/PID/status. It needs Linux's /proc. Its errors name
// the process or the file.
func ReadRSS(pid int) (uint64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat("/proc/self/status"); serr != nil {
			return 0, fmt.Errorf("/proc is not readable here (it needs Linux): %w", serr)
		}
		return 0, fmt.Errorf("no such process (%w)", err)
	}
	if err != nil {
		return 0, err // *fs.PathError names the file
	}
	rss, err := parseVmRSS(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return rss, nil
}

// parseVmRSS finds "VmRSS:   1234 kB" in the text of /proc/PID/status.
func parseVmRSS(status []byte) (uint64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want a size in kB", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > math.MaxUint64/1024 {
			return 0, fmt.Errorf("VmRSS line %q: want a size in kB", bytes.TrimSpace(line))
		}
		return kb * 1024, nil
	}
	// The kernel leaves it out for kernel threads and zombies.
	return 0, errors.New("no VmRSS line (a zombie or a kernel thread?)")
}

// maxMetricsBytes bounds the metrics page read: Go's own is about 10 KB.
const maxMetricsBytes = 16 << 20

// ReadGoMemory reads MetricHeapInuse and MetricStackInuse from the
// Prometheus text page at metricsURL, such as scoregate's
// http://127.0.0.1:9464/metrics. It fills HeapInuse and StackInuse only.
// Its errors name the URL, and the metric when it is missing.
func ReadGoMemory(ctx context.Context, client *http.Client, metricsURL string) (ServerMemory, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return ServerMemory{}, err
	}
	// The classic text format: promhttp could otherwise pick OpenMetrics
	// or protobuf.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return ServerMemory{}, err // *url.Error names the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ServerMemory{}, fmt.Errorf("GET %s: status %s, want 200", metricsURL, resp.Status)
	}
	g, err := parseGauges(io.LimitReader(resp.Body, maxMetricsBytes), MetricHeapInuse, MetricStackInuse)
	if err != nil {
		return ServerMemory{}, fmt.Errorf("%s: %w", metricsURL, err)
	}
	return ServerMemory{HeapInuse: g[MetricHeapInuse], StackInuse: g[MetricStackInuse]}, nil
}

// parseGauges returns the value of each named metric in a Prometheus
// text exposition. Each must have exactly one sample, without labels, and
// a value that is a whole number of bytes. It reads no more than it needs
// of the format: comments, other metrics and timestamps are skipped.
func parseGauges(r io.Reader, names ...string) (map[string]uint64, error) {
	got := make(map[string]uint64, len(names))
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20) // label values can make long lines
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, "{ \t")
		if i < 0 || !slices.Contains(names, line[:i]) {
			continue
		}
		name, rest := line[:i], line[i:]
		if rest[0] == '{' {
			j := strings.IndexByte(rest, '}')
			if j < 0 {
				return nil, fmt.Errorf("%s: malformed sample line %q", name, line)
			}
			if strings.TrimSpace(rest[1:j]) != "" {
				return nil, fmt.Errorf("%s has labels; want one sample without", name)
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) != 1 && len(f) != 2 { // a value and an optional timestamp
			return nil, fmt.Errorf("%s: malformed sample line %q", name, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || v < 0 || v >= 1<<63 || v != math.Trunc(v) {
			return nil, fmt.Errorf("%s: value %q: want a whole number of bytes", name, f[0])
		}
		if _, dup := got[name]; dup {
			return nil, fmt.Errorf("%s: more than one sample", name)
		}
		got[name] = uint64(v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var missing []string
	for _, n := range names {
		if _, ok := got[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no %s (is the Go collector registered?)", strings.Join(missing, " or "))
	}
	return got, nil
}

// IdleReport is what idle connections cost a server: its memory before
// they were opened, while they were held, and the growth per connection.
// It is the output of `scoregate bench --idle`; README.md documents its
// JSON.
type IdleReport struct {
	URL           string        `json:"url"`
	Connect       string        `json:"connect,omitempty"` // the address dialled, if not the URL's host
	Connections   int           `json:"connections"`
	Opening       time.Duration `json:"opening_ns"` // the time it took to open them all
	Held          time.Duration `json:"held_ns"`    // from the last one open to the last sample
	ServerPID     int           `json:"server_pid,omitempty"`
	ServerMetrics string        `json:"server_metrics,omitempty"`
	// Samples counts the readings taken while the connections were held;
	// each During is the median of its quantity over them.
	Samples int `json:"samples"`
	// RSS is measured with ServerPID, HeapInuse and StackInuse with
	// ServerMetrics; nil when not measured.
	RSS        *MemoryGrowth `json:"rss,omitempty"`
	HeapInuse  *MemoryGrowth `json:"go_heap_inuse,omitempty"`
	StackInuse *MemoryGrowth `json:"go_stack_inuse,omitempty"`
	// Interrupted is set when the context ended the hold early.
	Interrupted bool `json:"interrupted,omitempty"`
}

// MemoryGrowth is one quantity of a server's memory, before the idle
// connections were opened and while they were held.
type MemoryGrowth struct {
	Before  uint64 `json:"before_bytes"`
	During  uint64 `json:"during_bytes"`
	PerConn int64  `json:"per_conn_bytes"` // (During − Before) / connections, rounded; negative if it shrank
}

// SetMemory fills RSS, HeapInuse and StackInuse from a reading before the
// connections were opened and the readings while they were held: RSS if
// ServerPID is set, the others if ServerMetrics is. Connections must be
// set and during must not be empty.
func (r *IdleReport) SetMemory(before ServerMemory, during []ServerMemory) {
	r.Samples = len(during)
	growth := func(get func(ServerMemory) uint64) *MemoryGrowth {
		vs := make([]uint64, len(during))
		for i, m := range during {
			vs[i] = get(m)
		}
		slices.Sort(vs)
		// The lower middle for an even count: a reading that happened.
		g := &MemoryGrowth{Before: get(before), During: vs[(len(vs)-1)/2]}
		diff := float64(g.During) - float64(g.Before)
		g.PerConn = int64(math.Round(diff / float64(r.Connections)))
		return g
	}
	if r.ServerPID != 0 {
		r.RSS = growth(func(m ServerMemory) uint64 { return m.RSS })
	}
	if r.ServerMetrics != "" {
		r.HeapInuse = growth(func(m ServerMemory) uint64 { return m.HeapInuse })
		r.StackInuse = growth(func(m ServerMemory) uint64 { return m.StackInuse })
	}
}

// WriteTable writes r for people: the connections, then one row per
// quantity measured.
func (r *IdleReport) WriteTable(w io.Writer) error {
	host := r.URL
	if r.Connect != "" {
		host += " via " + r.Connect
	}
	fmt.Fprintf(w, "%s idle connections to %s, opened in %s, held %s\n",
		group(uint64(r.Connections)), host, fmtSeconds(r.Opening), fmtSeconds(r.Held))
	if r.RSS == nil && r.HeapInuse == nil {
		_, err := fmt.Fprintln(w, "server memory not measured: give --server-pid and/or --server-metrics")
		return err
	}
	var from []string
	if r.ServerPID != 0 {
		from = append(from, "pid "+strconv.Itoa(r.ServerPID))
	}
	if r.ServerMetrics != "" {
		from = append(from, r.ServerMetrics)
	}
	fmt.Fprintf(w, "server %s; during: median of %d samples\n\n", strings.Join(from, ", "), r.Samples)
	tw := tabwriter.NewWriter(w, 0, 0, 0, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-16s\t  %s\t  %s\t  %s\t\n", "", "before", "during", "per connection")
	for _, q := range []struct {
		name string
		g    *MemoryGrowth
	}{{"RSS", r.RSS}, {"Go heap in use", r.HeapInuse}, {"Go stacks", r.StackInuse}} {
		if q.g != nil {
			fmt.Fprintf(tw, "%-16s\t  %s\t  %s\t  %s\t\n", q.name, fmtMiB(q.g.Before), fmtMiB(q.g.During), fmtBytes(q.g.PerConn))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Interrupted {
		_, err := fmt.Fprintln(w, "interrupted before the end of --duration")
		return err
	}
	return nil
}

func fmtMiB(b uint64) string {
	return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB"
}

// fmtBytes formats n with thousands separators and its sign: -1,234 B.
func fmtBytes(n int64) string {
	if n < 0 {
		return "-" + group(uint64(-n)) + " B"
	}
	return group(uint64(n)) + " B"
}
