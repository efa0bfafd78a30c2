package certs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
	"github.com/scoregate/scoregate/metrics"
)

// jsonLines collects zerolog's lines (one per Write), decoded, and says
// when one arrives.
type jsonLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   strings.Builder
	more  chan struct{}
}

func newJSONLines() *jsonLines { return &jsonLines{more: make(chan struct{}, 1)} }

func (l *jsonLines) Write(p []byte) (int, error) {
	var m map[string]any
	err := json.Unmarshal(p, &m)
	l.mu.Lock()
	l.raw.Write(p)
	if err == nil {
		l.lines = append(l.lines, m)
	}
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
	return len(p), nil
}

// matching returns the lines for which match is true.
func (l *jsonLines) matching(match func(map[string]any) bool) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// waitN waits until n lines match and returns them.
func (l *jsonLines) waitN(t *testing.T, what string, n int, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.NewTimer(hsDeadline)
	defer deadline.Stop()
	for {
		if got := l.matching(match); len(got) >= n {
			return got
		}
		select {
		case <-l.more:
		case <-deadline.C:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("gave up after %s waiting for %d lines with %s; log:\n%s", hsDeadline, n, what, l.raw.String())
			return nil
		}
	}
}

// TestRefusalsLogTheNameAsked refuses real TLS clients on 127.0.0.1 that
// ask for other names or none, and checks what the log says: the name
// asked, the client and the reason, at once; a bounded number of warn
// lines however many refusals; the debug line of each connection with the
// reason instead of crypto/tls's "no certificates configured"; and a
// summary naming the names asked most often.
func TestRefusalsLogTheNameAsked(t *testing.T) {
	files := certstest.NewFiles(t, t.TempDir(), hsName)
	logs := newJSONLines()
	log := zerolog.New(logs)
	src, err := certs.NewSource(certs.SourceConfig{CertFile: files.CertFile, KeyFile: files.KeyFile, CName: hsName}, zerolog.New(t.Output()))
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	refusals := certs.NewRefusals(log)
	certs.SetRefusalLogEvery(refusals, time.Hour) // no second warn line until the test says so
	m := metrics.New(prometheus.NewRegistry())
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		TLSConfig:         certs.ServerTLSConfig(src, certs.SNIPolicy{CName: hsName, Refusals: refusals}, m),
		ReadHeaderTimeout: hsDeadline,
		ErrorLog:          certs.NewHandshakeErrorLog(log, m, refusals),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hsServer{addr: ln.Addr().String(), files: files}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ServeTLS(ln, "", "") })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})

	refused := 0
	ask := func(name string) {
		t.Helper()
		cfg := s.clientConfig(name)
		cfg.InsecureSkipVerify = name == "" // dialled by IP: no name to send or verify
		if err := s.tlsDial(cfg); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
			t.Fatalf("handshake asking for %q: error = %v, want an unrecognized_name alert", name, err)
		}
		refused++
	}
	isWarn := func(reason string) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["level"] == "warn" && m["reason"] == reason }
	}
	isHandshakeLine := func(m map[string]any) bool {
		msg, _ := m["message"].(string)
		return m["level"] == "debug" && strings.Contains(msg, "TLS handshake error from ")
	}

	// The first refusal is logged at once, with the name and the client.
	ask("other.example.com")
	w := logs.waitN(t, "the refusal's warn line", 1, isWarn(metrics.HandshakeUnrecognizedName))[0]
	if w["server_name"] != "other.example.com" || w["served"] != hsName || !strings.HasPrefix(fmt.Sprint(w["client"]), "127.0.0.1:") ||
		!strings.Contains(fmt.Sprint(w["message"]), `the client asked for "other.example.com", not "api.example.com"`) {
		t.Errorf("warn line = %v, want server_name, served, client and the reason", w)
	}
	d := logs.waitN(t, "the handshake error line", 1, isHandshakeLine)[0]
	if d["server_name"] != "other.example.com" || !strings.Contains(fmt.Sprint(d["message"]), `: refused: the client asked for "other.example.com"`) {
		t.Errorf("debug line = %v, want the name and the reason", d)
	}

	// Many more: one warn line per reason so far, however many refusals.
	for range 20 {
		ask("other.example.com")
	}
	for i := range 8 {
		ask(fmt.Sprintf("scan-%d.example.com", i))
	}
	for range 5 {
		ask("")
	}
	logs.waitN(t, "a handshake error line per refusal", refused, isHandshakeLine)
	if got := len(logs.matching(isWarn(metrics.HandshakeUnrecognizedName))); got != 1 {
		t.Errorf("%d warn lines for %d refused names, want 1", got, refused-5)
	}
	if got := logs.matching(isWarn(metrics.HandshakeMissingSNI)); len(got) != 1 || got[0]["server_name"] != "" {
		t.Errorf("warn lines for 5 handshakes without SNI: %v, want 1 with server_name \"\"", got)
	}
	if got := logs.matching(func(m map[string]any) bool {
		return strings.Contains(fmt.Sprint(m["message"]), "no certificates configured")
	}); len(got) > 0 {
		t.Errorf("crypto/tls's text logged as it is: %v", got)
	}

	// Once the interval has passed, the next line says how many were left out.
	certs.SetRefusalLogEvery(refusals, 0)
	ask("other.example.com")
	warns := logs.waitN(t, "the second warn line", 2, isWarn(metrics.HandshakeUnrecognizedName))
	if got := warns[1]["suppressed"]; got != float64(28) {
		t.Errorf("second warn line's suppressed = %v, want 28 (the refusals since the first): %v", got, warns[1])
	}

	// The summary: counts per reason and the names asked most often.
	ctx, cancel := context.WithCancel(t.Context())
	var run sync.WaitGroup
	run.Go(func() { refusals.Run(ctx, 5*time.Millisecond) })
	sum := logs.waitN(t, "the summary", 1, func(m map[string]any) bool { return m["names"] != nil })[0]
	cancel()
	run.Wait()
	names, _ := sum["names"].(map[string]any)
	if sum[metrics.HandshakeUnrecognizedName] != float64(30) || sum[metrics.HandshakeMissingSNI] != float64(5) ||
		len(names) != 5 || names["other.example.com"] != float64(22) || names[""] != float64(5) || names["scan-0.example.com"] != float64(1) ||
		sum["other_names"] != float64(5) {
		t.Errorf("summary = %v, want 30 unrecognized_name, 5 missing_sni, the top 5 names (other.example.com 22, \"\" 5, scan-0..2) and other_names 5", sum)
	}
}
