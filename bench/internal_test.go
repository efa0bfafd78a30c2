package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// score.lua's body, as the peers kit sends it: the first and last features
// of its generator.
const (
	luaHead = `{"id":"bench-0001","model":"default","features":[0.`
	luaTail = `]}`
)

func TestScoreRequest(t *testing.T) {
	for _, size := range []int{0, 59, 60, 100, 1039, DefaultBodyBytes, 1041, 4096} {
		b := scoreRequest(size)
		if want := max(size, 59); len(b) != want {
			t.Errorf("scoreRequest(%d): len = %d, want %d", size, len(b), want)
		}
		var v struct {
			ID       string
			Features []float64
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("scoreRequest(%d) = %q: not JSON: %v", size, b, err)
		}
	}
	b := scoreRequest(DefaultBodyBytes)
	var v struct {
		ID       string
		Features []float64
	}
	json.Unmarshal(b, &v)
	if v.ID != "bench-0001" || len(v.Features) != 110 || !bytes.HasPrefix(b, []byte(luaHead)) || !bytes.HasSuffix(b, []byte(luaTail)) {
		t.Errorf("scoreRequest(%d): id %q, %d features; want score.lua's bench-0001 and 110", DefaultBodyBytes, v.ID, len(v.Features))
	}
	// The generator's first value: x = (12345*1103515245 + 12345) mod 2^31.
	if want := fmt.Sprintf("%.6f", float64((12345*1103515245+12345)%2147483648)/2147483648); fmt.Sprintf("%.6f", v.Features[0]) != want {
		t.Errorf("first feature = %.6f, want %s (score.lua's)", v.Features[0], want)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name   string
		o      outcome
		want   errorKind
		failed bool
	}{
		{"200", outcome{status: 200}, 0, false},
		{"204", outcome{status: 204}, 0, false},
		{"301", outcome{status: 301}, kindStatusOther, true},
		{"421", outcome{status: 421}, kind4xx, true},
		{"502", outcome{status: 502}, kind5xx, true},
		{"dial", outcome{err: &phaseError{kindDial, errors.New("refused")}}, kindDial, true},
		{"tls", outcome{err: fmt.Errorf("wrapped: %w", &phaseError{kindTLS, errors.New("bad certificate")})}, kindTLS, true},
		{"dial timeout is a timeout", outcome{err: &phaseError{kindDial, timeoutErr{}}}, kindTimeout, true},
		{"behind", outcome{err: errBehind}, kindTimeout, true},
		{"body read failed after 200", outcome{status: 200, err: errors.New("unexpected EOF")}, kindOther, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, failed := classify(tt.o)
			if got != tt.want || failed != tt.failed {
				t.Errorf("classify(%+v) = %v, %v; want %v, %v", tt.o, got, failed, tt.want, tt.failed)
			}
		})
	}
}

func TestProgressLine(t *testing.T) {
	start := time.Now()
	p := &plan{start: start, mStart: start.Add(1500 * time.Millisecond), mEnd: start.Add(3 * time.Second)}
	for _, tt := range []struct {
		tty  bool
		want []string // after ticks at 1, 2 and 4 s
	}{
		{false, []string{"x h1  warm-up     1.0s  0 ok  0 errors  1,000 req/s\n", "x h1  measuring   0.5s  1,000 ok  1 errors  2,001 req/s\n", "x h1  finishing   2.5s"}},
		{true, []string{"\rx h1  warm-up     1.0s  0 ok  0 errors  1,000 req/s", "\rx h1  measuring   0.5s  1,000 ok  1 errors  2,001 req/s", "\rx h1  finishing   2.5s"}},
	} {
		var buf bytes.Buffer
		rec := newRecorder()
		pl := &progressLine{w: &buf, tty: tt.tty, label: "x h1", p: p, rec: rec, lastTime: start}
		rec.all.Add(1000)
		pl.print(start.Add(time.Second))
		for range 1000 {
			rec.record(time.Millisecond, start, outcome{status: 200})
		}
		rec.record(time.Millisecond, start, outcome{status: 500})
		rec.all.Add(1000)
		pl.print(start.Add(2 * time.Second))
		pl.print(start.Add(4 * time.Second))
		out := buf.String()
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("tty=%v: progress %q: want it to contain %q", tt.tty, out, w)
			}
		}
		if !tt.tty && strings.Contains(out, "\r") || tt.tty && strings.Contains(out, "\n") {
			t.Errorf("tty=%v: progress %q: want \\r only on a terminal and \\n only elsewhere", tt.tty, out)
		}
	}
}

// BenchmarkRecord is the cost each finished request adds to the client.
func BenchmarkRecord(b *testing.B) {
	rec := newRecorder()
	end := time.Now()
	ok := outcome{status: 200}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		rec.record(time.Duration(i%5000)*time.Microsecond, end, ok)
	}
}

// BenchmarkRecordParallel is the same with every CPU's workers recording
// at once, as in a run.
func BenchmarkRecordParallel(b *testing.B) {
	rec := newRecorder()
	end := time.Now()
	ok := outcome{status: 200}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			rec.record(time.Duration(i%5000)*time.Microsecond, end, ok)
		}
	})
}
