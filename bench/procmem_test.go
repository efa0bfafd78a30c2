package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadRSS(t *testing.T) {
	rss, err := ReadRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A Go test binary is resident for at least a few MiB, and well under
	// 100 GiB.
	if rss < 1<<20 || rss > 100<<30 {
		t.Errorf("ReadRSS(own pid) = %d bytes, want a few MiB", rss)
	}
}

// TestReadRSSNoProcess uses a PID above the kernel's pid_max, which no
// process can have.
func TestReadRSSNoProcess(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	pid := max + 1
	_, err = ReadRSS(pid)
	if err == nil || !strings.Contains(err.Error(), "no such process") || !strings.Contains(err.Error(), fmt.Sprintf("/proc/%d/status", pid)) {
		t.Errorf("ReadRSS(%d) error = %v, want no such process, naming /proc/%d/status", pid, err, pid)
	}
}

func TestParseVmRSS(t *testing.T) {
	for _, tt := range []struct {
		name, status string
		want         uint64
		wantErr      string
	}{
		{"process", "Name:\tscoregate\nVmPeak:\t  1300 kB\nVmRSS:\t    2048 kB\nRssAnon:\t 1024 kB\n", 2048 << 10, ""},
		{"zombie", "Name:\tscoregate\nState:\tZ (zombie)\n", 0, "no VmRSS line"},
		{"no unit", "VmRSS:\t2048\n", 0, `VmRSS line "VmRSS:\t2048": want a size in kB`},
		{"not a number", "VmRSS:\tlots kB\n", 0, "want a size in kB"},
		{"overflow", "VmRSS:\t18446744073709551615 kB\n", 0, "want a size in kB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmRSS([]byte(tt.status))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseVmRSS = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// goMetrics is the part of a Go program's /metrics page that matters,
// as client_golang's Go collector writes it, among other metrics.
const goMetrics = `# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.3e-05
go_gc_duration_seconds_sum 0.000312
# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.3549568e+07
# HELP go_memstats_heap_inuse_bytes_total A look-alike that must not match.
go_memstats_heap_inuse_bytes_total 7
# HELP go_memstats_stack_inuse_bytes Number of bytes obtained from system for stack allocator in non-CGO environments.
# TYPE go_memstats_stack_inuse_bytes gauge
go_memstats_stack_inuse_bytes 819200
scoregate_requests_total{code="200",method="GET"} 12
`

func TestParseGauges(t *testing.T) {
	names := []string{MetricHeapInuse, MetricStackInuse}
	for _, tt := range []struct {
		name, body  string
		heap, stack uint64
		wantErr     string
	}{
		{"go collector", goMetrics, 13549568, 819200, ""},
		{"timestamps, empty labels, indents", "go_memstats_heap_inuse_bytes{} 4096 1712345678000\n\t go_memstats_stack_inuse_bytes 8192\n", 4096, 8192, ""},
		{"OpenMetrics", "# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1.0e+06\ngo_memstats_stack_inuse_bytes 65536\n# EOF\n", 1000000, 65536, ""},
		{"missing one", "go_memstats_heap_inuse_bytes 4096\n", 0, 0, "no go_memstats_stack_inuse_bytes (is the Go collector registered?)"},
		{"missing both", "# nothing here\n", 0, 0, "no go_memstats_heap_inuse_bytes or go_memstats_stack_inuse_bytes"},
		{"only in a comment", "# HELP go_memstats_heap_inuse_bytes x\ngo_memstats_stack_inuse_bytes 1\n", 0, 0, "no go_memstats_heap_inuse_bytes "},
		{"labels", "go_memstats_heap_inuse_bytes{pod=\"a\"} 1\ngo_memstats_stack_inuse_bytes 1\n", 0, 0, "go_memstats_heap_inuse_bytes has labels"},
		{"unclosed labels", "go_memstats_heap_inuse_bytes{ 1\n", 0, 0, "malformed sample line"},
		{"no value", "go_memstats_heap_inuse_bytes \n", 0, 0, "malformed sample line"},
		{"twice", "go_memstats_heap_inuse_bytes 1\ngo_memstats_heap_inuse_bytes 2\n", 0, 0, "go_memstats_heap_inuse_bytes: more than one sample"},
		{"fraction", "go_memstats_heap_inuse_bytes 1.5\n", 0, 0, `go_memstats_heap_inuse_bytes: value "1.5": want a whole number of bytes`},
		{"NaN", "go_memstats_heap_inuse_bytes NaN\n", 0, 0, "want a whole number of bytes"},
		{"negative", "go_memstats_stack_inuse_bytes -4096\n", 0, 0, "want a whole number of bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGauges(strings.NewReader(tt.body), names...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got[MetricHeapInuse] != tt.heap || got[MetricStackInuse] != tt.stack {
				t.Errorf("heap %d, stack %d; want %d and %d", got[MetricHeapInuse], got[MetricStackInuse], tt.heap, tt.stack)
			}
		})
	}
}

// FuzzParseGauges: any page parses or fails without panicking, and what
// parses writes back as a page that parses to the same values.
func FuzzParseGauges(f *testing.F) {
	f.Add(goMetrics)
	f.Add("go_memstats_heap_inuse_bytes{} 4096 1712345678000\ngo_memstats_stack_inuse_bytes 8192\n")
	f.Add("go_memstats_heap_inuse_bytes{a=\"}\"} 1\n")
	f.Add("go_memstats_heap_inuse_bytes")
	f.Fuzz(func(t *testing.T, body string) {
		got, err := parseGauges(strings.NewReader(body), MetricHeapInuse, MetricStackInuse)
		if err != nil {
			return
		}
		page := fmt.Sprintf("%s %d\n%s %d\n", MetricHeapInuse, got[MetricHeapInuse], MetricStackInuse, got[MetricStackInuse])
		again, err := parseGauges(strings.NewReader(page), MetricHeapInuse, MetricStackInuse)
		if err != nil || again[MetricHeapInuse] != got[MetricHeapInuse] || again[MetricStackInuse] != got[MetricStackInuse] {
			t.Errorf("page %q parsed to %v, written back as %q: %v, %v", body, got, page, again, err)
		}
	})
}

func TestReadGoMemory(t *testing.T) {
	pages := map[string]string{"/metrics": goMetrics, "/no-go": "scoregate_requests_total 1\n"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)

	got, err := ReadGoMemory(t.Context(), srv.Client(), srv.URL+"/metrics")
	if want := (ServerMemory{HeapInuse: 13549568, StackInuse: 819200}); err != nil || got != want {
		t.Errorf("ReadGoMemory = %+v, %v; want %+v", got, err, want)
	}
	for _, tt := range []struct{ path, want string }{
		{"/no-go", srv.URL + "/no-go: no go_memstats_heap_inuse_bytes or go_memstats_stack_inuse_bytes (is the Go collector registered?)"},
		{"/nothing", "GET " + srv.URL + "/nothing: status 404 Not Found, want 200"},
	} {
		if _, err := ReadGoMemory(t.Context(), srv.Client(), srv.URL+tt.path); err == nil || err.Error() != tt.want {
			t.Errorf("ReadGoMemory(%s) error = %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestIdleReport(t *testing.T) {
	r := IdleReport{URL: "https://localhost:8443/", Connections: 1000, ServerPID: 42, ServerMetrics: "http://127.0.0.1:9090/metrics"}
	before := ServerMemory{RSS: 10 << 20, HeapInuse: 4 << 20, StackInuse: 1 << 20}
	r.SetMemory(before, []ServerMemory{
		{RSS: 60 << 20, HeapInuse: 30 << 20, StackInuse: 9 << 20},
		{RSS: 50 << 20, HeapInuse: 2 << 20, StackInuse: 9 << 20}, // after a GC
		{RSS: 40 << 20, HeapInuse: 20 << 20, StackInuse: 9 << 20},
		{RSS: 45 << 20, HeapInuse: 25 << 20, StackInuse: 9 << 20},
	})
	// The lower median of each quantity by itself.
	for _, tt := range []struct {
		name string
		got  *MemoryGrowth
		want MemoryGrowth
	}{
		{"RSS", r.RSS, MemoryGrowth{Before: 10 << 20, During: 45 << 20, PerConn: 36700}},
		{"heap", r.HeapInuse, MemoryGrowth{Before: 4 << 20, During: 20 << 20, PerConn: 16777}},
		{"stacks", r.StackInuse, MemoryGrowth{Before: 1 << 20, During: 9 << 20, PerConn: 8389}},
	} {
		if tt.got == nil || *tt.got != tt.want {
			t.Errorf("%s = %+v, want %+v", tt.name, tt.got, tt.want)
		}
	}
	if r.Samples != 4 {
		t.Errorf("Samples = %d, want 4", r.Samples)
	}

	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"1,000 idle connections to https://localhost:8443/",
		"server pid 42, http://127.0.0.1:9090/metrics; during: median of 4 samples",
		"before", "per connection", "10.0 MiB", "45.0 MiB", "36,700 B", "Go heap in use", "16,777 B", "Go stacks", "8,389 B",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table:\n%s\nwant it to contain %q", b.String(), want)
		}
	}

	shrank := IdleReport{Connections: 10, ServerPID: 42}
	shrank.SetMemory(ServerMemory{RSS: 100000}, []ServerMemory{{RSS: 90000}})
	if shrank.RSS.PerConn != -1000 || shrank.HeapInuse != nil {
		t.Errorf("RSS shrinking by 10,000 over 10 connections: %+v, heap %+v; want -1,000 per connection and no heap", shrank.RSS, shrank.HeapInuse)
	}
}
