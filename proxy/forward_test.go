package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// connCounter counts a backend's connections by state.
type connCounter struct {
	mu            sync.Mutex
	opened, closd int
}

func (c *connCounter) track(_ net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s {
	case http.StateNew:
		c.opened++
	case http.StateClosed, http.StateHijacked:
		c.closd++
	}
}

func (c *connCounter) get() (opened, closed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened, c.closd
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func serveOne(t *testing.T, p *Proxy, method, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "https://"+testCName+"/score", strings.NewReader(body))
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

func TestDirectPathReusesConnections(t *testing.T) {
	var cc connCounter
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	backend.Config.ConnState = cc.track
	backend.Start()
	t.Cleanup(backend.Close)
	p := newTestProxy(t, backend.URL, Config{}, zerolog.Nop())
	if p.pool == nil {
		t.Fatal("an http:// backend does not take the direct path")
	}
	for i := range 20 {
		if w := serveOne(t, p, "POST", `{"n":1}`); w.Code != 200 || w.Body.String() != "ok" {
			t.Fatalf("request %d: %d %q, want 200 ok", i, w.Code, w.Body)
		}
	}
	if opened, _ := cc.get(); opened != 1 {
		t.Errorf("20 sequential requests opened %d backend connections, want 1", opened)
	}
}

// A backend that closes idle keep-alive connections (an idle timeout, a
// restart): no request may fail on the dead pooled connection, whether the
// check before reuse finds it (long idle) or the request does and is sent
// again (short idle).
func TestDirectPathSkipsConnectionsTheBackendClosed(t *testing.T) {
	for _, tt := range []struct {
		name      string
		peekAfter time.Duration
	}{{"checked before reuse", 0}, {"retried", time.Hour}} {
		t.Run(tt.name, func(t *testing.T) {
			var cc connCounter
			var handled atomic.Int64
			backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				handled.Add(1)
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok")
			}))
			backend.Config.ConnState = func(c net.Conn, s http.ConnState) {
				cc.track(c, s)
				if s == http.StateIdle {
					c.Close()
				}
			}
			backend.Start()
			t.Cleanup(backend.Close)
			p := newTestProxy(t, backend.URL, Config{}, zerolog.Nop())
			p.pool.peekAfter = tt.peekAfter
			for i := range 10 {
				if w := serveOne(t, p, "POST", `{"n":1}`); w.Code != 200 {
					t.Fatalf("request %d: %d %s, want 200", i, w.Code, w.Body)
				}
				// Let the backend's close land before the next request.
				waitUntil(t, "the backend to close the connection", func() bool { _, closed := cc.get(); return closed == i+1 })
			}
			if got := handled.Load(); got != 10 {
				t.Errorf("the backend handled %d requests, want 10 (none twice)", got)
			}
		})
	}
}

func TestDirectPathConnectionClose(t *testing.T) {
	var cc connCounter
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "ok")
	}))
	backend.Config.ConnState = cc.track
	backend.Start()
	t.Cleanup(backend.Close)
	p := newTestProxy(t, backend.URL, Config{}, zerolog.Nop())
	for i := range 3 {
		w := serveOne(t, p, "GET", "")
		if w.Code != 200 || w.Header().Get("Connection") != "" {
			t.Fatalf("request %d: %d, Connection %q; want 200 and no Connection header", i, w.Code, w.Header().Get("Connection"))
		}
	}
	if opened, _ := cc.get(); opened != 3 {
		t.Errorf("backend connections = %d, want 3 (Connection: close is honoured)", opened)
	}
}

func TestDirectPathResponseFraming(t *testing.T) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("kind") {
		case "chunked":
			w.Write([]byte("part1,"))
			http.NewResponseController(w).Flush()
			w.Write([]byte("part2"))
		case "nocontent":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	})
	p := newTestProxy(t, backend.URL, Config{}, zerolog.Nop())
	for _, tt := range []struct {
		name, method, kind string
		wantCode           int
		wantBody           string
	}{
		{"sized", "GET", "", 200, "hello"},
		{"chunked", "GET", "chunked", 200, "part1,part2"},
		{"204", "GET", "nocontent", 204, ""},
		{"HEAD", "HEAD", "", 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Twice: the connection must be usable after each kind.
			for range 2 {
				r := httptest.NewRequest(tt.method, "https://"+testCName+"/x?kind="+tt.kind, nil)
				w := httptest.NewRecorder()
				p.ServeHTTP(w, r)
				if w.Code != tt.wantCode || w.Body.String() != tt.wantBody {
					t.Fatalf("%s ?kind=%s: %d %q, want %d %q", tt.method, tt.kind, w.Code, w.Body, tt.wantCode, tt.wantBody)
				}
			}
		})
	}
}
