package main

// The HTTP/2 abuse tests: a raw-frame client, built from
// golang.org/x/net/http2's Framer and hpack because net/http's client cannot
// be made to misbehave, attacks a real `scoregate serve` while a
// well-behaved HTTP/2 client is served on a connection of its own. Every
// loop is bounded in count and time, and all traffic goes to 127.0.0.1.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/scoregate/scoregate/certs/certstest"
)

const (
	abuseCName = "api.example.com"
	// goodMinOK is how many 200s the well-behaved client must get while an
	// attack runs, each within goodDeadline.
	goodMinOK    = 10
	goodDeadline = 5 * time.Second
	// heapBound bounds the growth of the heap in use during a flood. The
	// server runs in the test process, so the heap is the server's plus
	// the attacker's few buffers. Go's HTTP/2 server queues at most 10,000
	// control frames (PING and SETTINGS acknowledgements, RST_STREAMs) per
	// connection, a few hundred bytes each, and keeps at most
	// 4×MaxConcurrentStreams reset-early handlers: a few MiB. 64 MiB, a
	// quarter of the shipped 256 MiB pod limit, leaves room for the GC's
	// slack while still catching growth per frame received: the PING flood
	// sends some 300,000 frames, so keeping 200 bytes of each would exceed
	// it.
	heapBound = 64 << 20
	// attackerWriteDeadline bounds each attacker's connection: every
	// attack stops writing well before it.
	attackerWriteDeadline = 20 * time.Second
)

// abuseEnv is a running `scoregate serve` in front of a countingBackend,
// with the server's HTTP/2 errors counted.
type abuseEnv struct {
	ts    *testServer
	be    *countingBackend
	roots *x509.CertPool

	mu     sync.Mutex
	h2errs map[string]int // by net/http's HTTP2Config.CountError type
}

func startAbuse(t *testing.T, args ...string) *abuseEnv {
	t.Helper()
	f := certstest.NewFiles(t, t.TempDir(), abuseCName)
	e := &abuseEnv{be: newCountingBackend(t), roots: poolOf(t, f.CAFile), h2errs: map[string]int{}}
	args = append([]string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", abuseCName, "--ca-file", f.CAFile, "--backend", e.be.URL, "--access-log=false"}, args...)
	e.ts = startServeHooked(t, nil, func(s *server) {
		for _, l := range s.listeners {
			if l.name == "listen" && l.srv.HTTP2 != nil {
				l.srv.HTTP2.CountError = e.countH2Error
			}
		}
	}, args...)
	return e
}

func (e *abuseEnv) countH2Error(typ string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.h2errs[typ]++
}

// h2Errors returns the server's HTTP/2 errors counted so far.
func (e *abuseEnv) h2Errors() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[string]int, len(e.h2errs))
	for k, v := range e.h2errs {
		m[k] = v
	}
	return m
}

// countingBackend is a scoring backend that counts requests by path: the
// attacker's go to /attack, the well-behaved client's to /good.
type countingBackend struct {
	*httptest.Server
	attack, good atomic.Int64
}

func newCountingBackend(t *testing.T) *countingBackend {
	b := &countingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/attack"):
			b.attack.Add(1)
		case r.URL.Path == "/good":
			b.good.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(b.Close)
	return b
}

// served runs attack while a well-behaved HTTP/2 client sends requests on
// a connection of its own, opened before the attack starts. attack calls
// underway once it is attacking, and must keep attacking until stop is
// closed (bounded by its own limits), which happens once the client has had
// goodMinOK 200s after underway. The test fails if any of the client's
// requests fails or takes longer than goodDeadline, or if the attack ends
// before the client has had its 200s.
func (e *abuseEnv) served(t *testing.T, attack func(stop <-chan struct{}, underway func())) {
	t.Helper()
	c := e.ts.client(t, e.roots, abuseCName, true)
	if err := goodRequest(c); err != nil {
		t.Fatalf("well-behaved client before the attack: %v", err)
	}
	stop, done, started := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		attack(stop, func() { once.Do(func() { close(started) }) })
	}()
	select {
	case <-started:
	case <-done:
	}
	defer func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the attack did not stop within 30s")
		}
	}()
	for ok := 0; ok < goodMinOK; ok++ {
		select {
		case <-done:
			t.Errorf("the attack ended before the well-behaved client had %d 200s (it had %d)", goodMinOK, ok)
			return
		default:
		}
		if err := goodRequest(c); err != nil {
			t.Errorf("well-behaved client during the attack, request %d: %v", ok+1, err)
			return
		}
	}
}

// goodRequest is one request of the well-behaved client: it must get 200
// over HTTP/2 within goodDeadline.
func goodRequest(c *http.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), goodDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+abuseCName+"/good", strings.NewReader(`{"data":[[1,2]]}`))
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("after %s: %w", time.Since(start).Round(time.Millisecond), err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		return fmt.Errorf("got %d over HTTP/%d (%q, %v), want 200 over HTTP/2", resp.StatusCode, resp.ProtoMajor, body, err)
	}
	return nil
}

// rawH2 is an HTTP/2 client connection driven frame by frame. Writes are
// buffered until flush and belong to one goroutine; read, once started,
// records what the server sends.
type rawH2 struct {
	conn *tls.Conn
	bw   *bufio.Writer
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer

	mu       sync.Mutex
	goAway   *http2.ErrCode
	status   map[uint32]string // :status by stream
	pingAcks int
	setAcks  int
	readErr  error // what ended the read loop

	readDone chan struct{} // closed when the read loop ends
}

// dialH2 opens an HTTP/2 connection to the server with SNI abuseCName and
// sends the preface and an empty SETTINGS frame. Its writes fail after
// attackerWriteDeadline, so that no attack can hang the test. The
// connection is closed when the test ends. dialH2 may be called from any
// goroutine.
//
// The socket keeps its default buffers: with a receive buffer shrunk to a
// few KiB, Linux on loopback can leave a client that never reads unable to
// write even though the server reads on (the SETTINGS flood stalled so).
func (e *abuseEnv) dialH2(t *testing.T) (*rawH2, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	tcp, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.ts.tlsAddr())
	if err != nil {
		return nil, err
	}
	tcp.SetWriteDeadline(time.Now().Add(attackerWriteDeadline))
	conn := tls.Client(tcp, &tls.Config{ServerName: abuseCName, RootCAs: e.roots, NextProtos: []string{"h2"}})
	if err := conn.HandshakeContext(ctx); err != nil {
		tcp.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		conn.Close()
		return nil, fmt.Errorf("ALPN: negotiated %q, want h2", p)
	}
	c := &rawH2{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), status: map[uint32]string{}, readDone: make(chan struct{})}
	c.fr = http2.NewFramer(c.bw, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	t.Cleanup(func() {
		conn.Close()
		c.wait(5 * time.Second)
	})
	c.bw.WriteString(http2.ClientPreface)
	c.fr.WriteSettings()
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	return c, nil
}

// block encodes a request's header block: method and path to abuseCName,
// then extra.
func (c *rawH2) block(method, path string, extra ...hpack.HeaderField) []byte {
	c.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: method}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: abuseCName}, {Name: ":path", Value: path},
	}, extra...) {
		c.enc.WriteField(f)
	}
	return bytes.Clone(c.hbuf.Bytes())
}

// fields encodes header fields alone, for a CONTINUATION frame.
func (c *rawH2) fields(fs ...hpack.HeaderField) []byte {
	c.hbuf.Reset()
	for _, f := range fs {
		c.enc.WriteField(f)
	}
	return bytes.Clone(c.hbuf.Bytes())
}

// read starts the read loop, which records GOAWAY, acks and response
// statuses until the connection ends.
func (c *rawH2) read() {
	go func() {
		defer close(c.readDone)
		for {
			f, err := c.fr.ReadFrame()
			c.mu.Lock()
			if err != nil {
				c.readErr = err
				c.mu.Unlock()
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				code := f.ErrCode
				c.goAway = &code
			case *http2.PingFrame:
				if f.IsAck() {
					c.pingAcks++
				}
			case *http2.SettingsFrame:
				if f.IsAck() {
					c.setAcks++
				}
			case *http2.MetaHeadersFrame:
				if s := f.PseudoValue("status"); s != "" {
					c.status[f.StreamID] = s
				}
			}
			c.mu.Unlock()
		}
	}()
}

// wait waits up to d for the connection to end, and says whether it did.
func (c *rawH2) wait(d time.Duration) bool {
	select {
	case <-c.readDone:
		return true
	case <-time.After(d):
		return false
	}
}

// ended reports whether the read loop has seen the connection end.
func (c *rawH2) ended() bool {
	select {
	case <-c.readDone:
		return true
	default:
		return false
	}
}

// readError returns the error that ended the read loop, if it has ended.
func (c *rawH2) readError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// goAwayCode returns the error code of the server's GOAWAY, if any.
func (c *rawH2) goAwayCode() (http2.ErrCode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goAway == nil {
		return 0, false
	}
	return *c.goAway, true
}

// memWatch follows the process's memory and CPU while an attack runs: the
// heap in use is sampled every 10ms and its peak kept.
type memWatch struct {
	base       uint64
	peak       atomic.Uint64
	rss0, cpu0 int64 // bytes, clock ticks; -1 where /proc is not there
	start      time.Time
	stop, done chan struct{}
}

func watchMemory() *memWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := &memWatch{base: ms.HeapInuse, rss0: procRSS(), cpu0: procCPUTicks(), start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	m.peak.Store(ms.HeapInuse)
	go func() {
		defer close(m.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > m.peak.Load() {
				m.peak.Store(ms.HeapInuse)
			}
		}
	}()
	return m
}

// check stops the watch, logs what it saw and fails the test if the heap
// in use grew by more than heapBound. Resident memory and CPU time are
// logged, not bounded: the race detector's shadow memory and the machine's
// speed make them too loose to assert.
func (m *memWatch) check(t *testing.T) {
	t.Helper()
	close(m.stop)
	<-m.done
	growth := int64(m.peak.Load()) - int64(m.base)
	rss, cpu := "n/a", "n/a"
	if r := procRSS(); r >= 0 && m.rss0 >= 0 {
		rss = fmt.Sprintf("%+.1f MiB", float64(r-m.rss0)/(1<<20))
	}
	if c := procCPUTicks(); c >= 0 && m.cpu0 >= 0 {
		cpu = (time.Duration(c-m.cpu0) * 10 * time.Millisecond).String() // USER_HZ is 100 on Linux
	}
	t.Logf("during the attack (%s): heap in use peaked %+.1f MiB over %.1f MiB; resident %s; CPU %s (the whole test process, attacker included)",
		time.Since(m.start).Round(time.Millisecond), float64(growth)/(1<<20), float64(m.base)/(1<<20), rss, cpu)
	if growth > heapBound {
		t.Errorf("heap in use grew by %.1f MiB during the attack, want under %d MiB", float64(growth)/(1<<20), heapBound>>20)
	}
}

// procRSS is the process's resident memory in bytes, or -1.
func procRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return n << 10
			}
		}
	}
	return -1
}

// procCPUTicks is the process's user plus system CPU time in clock ticks,
// or -1.
func procCPUTicks() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}

// stopped reports whether stop is closed.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// TestH2AbuseRapidReset opens streams and resets them at once (HEADERS
// then RST_STREAM, CVE-2023-44487), up to 10,000 a connection. Since
// CVE-2023-39325, Go's server runs at most MaxConcurrentStreams handlers a
// connection, queues the streams that arrive beyond them, drops from the
// queue those already reset, and closes the connection with GOAWAY
// ENHANCE_YOUR_CALM once more than 4×MaxConcurrentStreams wait. It has no
// rate limit: whether the queue overflows depends on how fast handlers end,
// and scoregate's end as soon as their stream is reset. So either the
// connection is closed with ENHANCE_YOUR_CALM, or it stays open and few of
// the reset streams reach the backend. With --h2-max-concurrent-streams 1
// the queue holds 4 streams, and overflows.
func TestH2AbuseRapidReset(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		wantCalm bool // every attacker's connection must end with ENHANCE_YOUR_CALM
	}{
		{"default stream limit", nil, false},
		{"stream limit 1 overflows the queue", []string{"--h2-max-concurrent-streams", "1"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startAbuse(t, tt.args...)
			const (
				maxStreams = 10000 // per connection
				maxConns   = 50
			)
			var streams, conns, calm, open int
			mem := watchMemory()
			e.served(t, func(stop <-chan struct{}, underway func()) {
				deadline := time.Now().Add(20 * time.Second)
				for conns < maxConns && time.Now().Before(deadline) && !(conns > 0 && stopped(stop)) {
					c, err := e.dialH2(t)
					if err != nil {
						t.Errorf("attacker's connection %d: %v", conns+1, err)
						return
					}
					conns++
					c.read()
					id := uint32(1)
					for n := 0; n < maxStreams && !c.ended(); n++ {
						c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block("GET", "/attack"), EndStream: true, EndHeaders: true})
						c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
						id += 2
						streams++
						if n%100 == 99 {
							if c.bw.Flush() != nil {
								break
							}
							underway()
						}
					}
					c.bw.Flush()
					// The server may still be reading what was sent.
					c.wait(2 * time.Second)
					code, goAway := c.goAwayCode()
					switch {
					case goAway && code != http2.ErrCodeEnhanceYourCalm:
						t.Errorf("attacker's connection %d: GOAWAY %v, want ENHANCE_YOUR_CALM", conns, code)
					case goAway && !c.wait(5*time.Second):
						t.Errorf("attacker's connection %d: still open 5s after GOAWAY ENHANCE_YOUR_CALM, want it closed", conns)
					case goAway:
						calm++
					case c.ended():
						t.Errorf("attacker's connection %d: closed without GOAWAY (%v), want GOAWAY ENHANCE_YOUR_CALM or the connection open", conns, c.readError())
					default:
						open++
					}
					c.conn.Close()
				}
			})
			mem.check(t)
			got := e.be.attack.Load()
			t.Logf("%d connections, %d streams opened and reset: %d closed with GOAWAY ENHANCE_YOUR_CALM, %d left open; the backend saw %d of the streams; server's HTTP/2 errors: %v",
				conns, streams, calm, open, got, e.h2Errors())
			if got > int64(streams/4) {
				t.Errorf("the backend saw %d of %d reset streams, want at most a quarter", got, streams)
			}
			if tt.wantCalm && (calm != conns || e.h2Errors()["conn_ENHANCE_YOUR_CALM_too_many_early_resets"] == 0) {
				t.Errorf("%d of %d connections closed with ENHANCE_YOUR_CALM (server counted %v), want all, for too many early resets", calm, conns, e.h2Errors())
			}
		})
	}
}

// TestH2AbuseContinuationFlood sends a HEADERS frame without END_HEADERS
// and then CONTINUATION frames, 1 KiB of header fields each, that never
// end the header block (CVE-2023-45288). Go's server decodes them as they
// come, counts them against the header list size (--max-header-bytes plus
// 320 bytes), and answers the first fragment beyond it with GOAWAY
// PROTOCOL_ERROR, then closes the connection.
func TestH2AbuseContinuationFlood(t *testing.T) {
	e := startAbuse(t)
	const (
		maxHeaderBytes = 64 << 10 // --max-header-bytes's default
		fragment       = 1 << 10
		// burst is what is sent before waiting for the GOAWAY: twice the
		// limit, so that a server that stops at the limit must answer.
		burst    = 2 * maxHeaderBytes / fragment
		maxFrame = 10000 // per connection, after the burst, if the server reads on
		maxConns = 50
	)
	var conns, frames int
	mem := watchMemory()
	e.served(t, func(stop <-chan struct{}, underway func()) {
		deadline := time.Now().Add(20 * time.Second)
		for conns < maxConns && time.Now().Before(deadline) && !(conns > 0 && stopped(stop)) {
			c, err := e.dialH2(t)
			if err != nil {
				t.Errorf("attacker's connection %d: %v", conns+1, err)
				return
			}
			conns++
			c.read()
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("POST", "/attack"), EndHeaders: false})
			value := strings.Repeat("x", fragment-32)
			n := 0
			for ; n < burst; n++ {
				c.fr.WriteContinuation(1, false, c.fields(hpack.HeaderField{Name: fmt.Sprintf("x-flood-%d", n), Value: value}))
			}
			if err := c.bw.Flush(); err != nil {
				t.Errorf("attacker's connection %d: writing %d KiB of header block: %v", conns, burst, err)
				return
			}
			underway()
			// The attacker goes on, as if it had not seen the GOAWAY.
			for ; n < burst+maxFrame && !c.ended(); n++ {
				if _, goAway := c.goAwayCode(); goAway {
					break
				}
				c.fr.WriteContinuation(1, false, c.fields(hpack.HeaderField{Name: fmt.Sprintf("x-flood-%d", n), Value: value}))
				if c.bw.Flush() != nil {
					break
				}
			}
			frames += n
			if !c.wait(5 * time.Second) {
				t.Errorf("attacker's connection %d: still open 5s after %d KiB of header block, want it closed", conns, n)
			}
			if code, ok := c.goAwayCode(); !ok || code != http2.ErrCodeProtocol {
				t.Errorf("attacker's connection %d: GOAWAY %v (sent: %v), want PROTOCOL_ERROR", conns, code, ok)
			}
			c.conn.Close()
		}
	})
	mem.check(t)
	t.Logf("%d connections, %d CONTINUATION frames of 1 KiB; the backend saw %d /attack requests", conns, frames, e.be.attack.Load())
	if got := e.be.attack.Load(); got != 0 {
		t.Errorf("the backend saw %d requests of the flood, want none", got)
	}
}

// TestH2AbuseEmptyContinuations sends a HEADERS frame without END_HEADERS
// and then empty CONTINUATION frames, 10,000 a second. They add nothing to
// the header list, so Go's server never counts them against its size and
// reads on; but no stream is open while a header block is unfinished, so
// the connection is idle, and --idle-timeout (120s by default, 2s here)
// ends it: GOAWAY, then the close a second later.
func TestH2AbuseEmptyContinuations(t *testing.T) {
	const idle = 2 * time.Second
	e := startAbuse(t, "--idle-timeout", idle.String())
	var (
		frames  int
		lasted  time.Duration
		ended   bool
		readErr error
	)
	mem := watchMemory()
	e.served(t, func(stop <-chan struct{}, underway func()) {
		c, err := e.dialH2(t)
		if err != nil {
			t.Errorf("attacker's connection: %v", err)
			return
		}
		c.read()
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("POST", "/attack"), EndHeaders: false})
		start := time.Now()
		for time.Since(start) < idle+10*time.Second && !c.ended() {
			for range 100 {
				c.fr.WriteContinuation(1, false, nil)
				frames++
			}
			if c.bw.Flush() != nil {
				break
			}
			underway()
			time.Sleep(10 * time.Millisecond)
		}
		ended = c.wait(5 * time.Second)
		lasted, readErr = time.Since(start), c.readError()
		if code, ok := c.goAwayCode(); ok {
			t.Logf("GOAWAY %v", code)
		}
	})
	mem.check(t)
	t.Logf("%d empty CONTINUATION frames over %s; connection ended: %v (%v)", frames, lasted.Round(time.Millisecond), ended, readErr)
	if !ended {
		t.Errorf("the connection sending empty CONTINUATION frames was open after %s, want it closed after the %s idle timeout", lasted.Round(time.Millisecond), idle)
	}
	if got := e.be.attack.Load(); got != 0 {
		t.Errorf("the backend saw %d requests of the flood, want none", got)
	}
}

// TestH2AbusePingFlood sends PING frames and never reads the replies. Go's
// server queues a PING ack for each; with the replies unread its writes
// stop, and once more than 10,000 control frames wait it closes the
// connection.
func TestH2AbusePingFlood(t *testing.T) {
	e := startAbuse(t)
	const (
		maxPings = 2_000_000 // per connection: 34 MB of frames
		maxConns = 20
	)
	var conns, pings, closedByServer int
	mem := watchMemory()
	e.served(t, func(stop <-chan struct{}, underway func()) {
		deadline := time.Now().Add(20 * time.Second)
		for conns < maxConns && time.Now().Before(deadline) && !(conns > 0 && stopped(stop)) {
			c, err := e.dialH2(t)
			if err != nil {
				t.Errorf("attacker's connection %d: %v", conns+1, err)
				return
			}
			conns++
			var data [8]byte
			n := 0
			var werr error
			start := time.Now()
			for ; n < maxPings && time.Since(start) < 10*time.Second; n++ {
				binary.BigEndian.PutUint64(data[:], uint64(n))
				c.fr.WritePing(false, data)
				if n%1000 == 999 {
					if werr = c.bw.Flush(); werr != nil {
						break
					}
					underway()
				}
			}
			pings += n
			c.read() // now drain what the server sent, to its end
			if !c.wait(5 * time.Second) {
				t.Errorf("attacker's connection %d: open after %d unread PINGs (write error: %v), want it closed by the server", conns, n, werr)
			} else {
				closedByServer++
			}
			c.mu.Lock()
			t.Logf("connection %d: %d PINGs sent in %s (write error: %v); %d acks read before the end (%v)", conns, n, time.Since(start).Round(time.Millisecond), werr, c.pingAcks, c.readErr)
			c.mu.Unlock()
			c.conn.Close()
		}
	})
	mem.check(t)
	t.Logf("%d connections, %d PINGs, %d connections closed by the server; server's HTTP/2 errors: %v", conns, pings, closedByServer, e.h2Errors())
}

// TestH2AbuseSettingsFlood sends SETTINGS frames, each changing six
// parameters, and never reads the replies. Go's server acknowledges them
// with at most one ack waiting at a time (a flag, not a queue), so neither
// memory nor replies grow with the flood, and the connection stays open.
func TestH2AbuseSettingsFlood(t *testing.T) {
	e := startAbuse(t)
	const (
		maxFrames = 200_000 // per connection: 10 MB of frames
		maxConns  = 20
	)
	var conns, frames, acks int
	mem := watchMemory()
	e.served(t, func(stop <-chan struct{}, underway func()) {
		deadline := time.Now().Add(20 * time.Second)
		for conns < maxConns && time.Now().Before(deadline) && !(conns > 0 && stopped(stop)) {
			c, err := e.dialH2(t)
			if err != nil {
				t.Errorf("attacker's connection %d: %v", conns+1, err)
				return
			}
			conns++
			n := 0
			var werr error
			start := time.Now()
			for ; n < maxFrames && time.Since(start) < 5*time.Second; n++ {
				v := uint32(n % 1000)
				c.fr.WriteSettings(
					http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096 - v},
					http2.Setting{ID: http2.SettingEnablePush, Val: 0},
					http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100 + v},
					http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535 + v},
					http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384 + v},
					http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1<<20 + v},
				)
				if n%1000 == 999 {
					if werr = c.bw.Flush(); werr != nil {
						break
					}
					underway()
				}
			}
			frames += n
			c.read()
			c.wait(2 * time.Second) // read what the server sent
			c.mu.Lock()
			got, readErr := c.setAcks, c.readErr
			c.mu.Unlock()
			acks += got
			t.Logf("connection %d: %d SETTINGS sent in %s (write error: %v); %d acks read (connection end: %v)", conns, n, time.Since(start).Round(time.Millisecond), werr, got, readErr)
			if werr != nil {
				t.Errorf("attacker's connection %d: writing SETTINGS: %v", conns, werr)
			}
			c.conn.Close()
		}
	})
	mem.check(t)
	t.Logf("%d connections, %d SETTINGS frames, %d acks", conns, frames, acks)
	if acks > frames {
		t.Errorf("%d SETTINGS acks for %d SETTINGS frames, want at most one each", acks, frames)
	}
}

// TestH2AbuseStalledBody opens streams that announce a body
// (content-length: 100) and never send it, with --body-read-timeout 2s and
// one request at a time for the only replica. scoregate admits a request
// to a replica only once its body's first bytes have arrived, so the
// stalled streams hold no replica slot: the well-behaved client is served
// meanwhile, each stalled stream gets 408 once the body read timeout has
// passed (within 12s: the deadline), and the backend never sees them.
func TestH2AbuseStalledBody(t *testing.T) {
	const (
		timeout = 2 * time.Second
		stalled = 10 // streams
	)
	e := startAbuse(t, "--body-read-timeout", timeout.String(), "--max-concurrent-requests-per-replica", "1")
	mem := watchMemory()
	var (
		c            *rawH2
		answered     time.Duration // from the stalled streams' headers to their last answer
		servedDuring int64         // the well-behaved client's requests meanwhile
	)
	e.served(t, func(stop <-chan struct{}, underway func()) {
		var err error
		if c, err = e.dialH2(t); err != nil {
			t.Errorf("attacker's connection: %v", err)
			return
		}
		c.read()
		start := time.Now()
		for i := range stalled {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), EndHeaders: true,
				BlockFragment: c.block("POST", "/attack", hpack.HeaderField{Name: "content-length", Value: "100"})})
		}
		if err := c.bw.Flush(); err != nil {
			t.Errorf("attacker's connection: %v", err)
			return
		}
		// The attack is the streams' stall: it lasts until the 408s, and
		// until the client has been served.
		good0 := e.be.good.Load()
		underway()
		waitAll := time.After(timeout + 10*time.Second)
		for {
			c.mu.Lock()
			n := len(c.status)
			c.mu.Unlock()
			if n == stalled && answered == 0 {
				answered, servedDuring = time.Since(start), e.be.good.Load()-good0
			}
			if n == stalled && stopped(stop) {
				return
			}
			select {
			case <-waitAll:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	mem.check(t)
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range stalled {
		if got := c.status[uint32(2*i+1)]; got != "408" {
			t.Errorf("stalled stream %d: status %q, want 408", 2*i+1, got)
		}
	}
	t.Logf("%d stalled streams answered %v within %s of their headers; meanwhile the backend served %d of the well-behaved client's requests",
		stalled, c.status, answered.Round(time.Millisecond), servedDuring)
	if got := e.be.attack.Load(); got != 0 {
		t.Errorf("the backend saw %d of the stalled requests, want none", got)
	}
	if servedDuring < goodMinOK {
		t.Errorf("the backend saw %d of the well-behaved client's requests while the streams stalled, want at least %d", servedDuring, goodMinOK)
	}
}
