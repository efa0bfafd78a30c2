package bench

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

func TestOpenIdle(t *testing.T) {
	var (
		mu   sync.Mutex
		idle = map[net.Conn]bool{}
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		idle[c] = s == http.StateIdle
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/")
	ic, err := OpenIdle(t.Context(), Config{URL: u, Insecure: true, Method: http.MethodGet}, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if ic.Len() != 100 {
		t.Errorf("Len() = %d, want 100", ic.Len())
	}
	// net/http marks a connection idle just after it has written the
	// response, so the last ones may lag OpenIdle's return a little.
	idleCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, isIdle := range idle {
			if isIdle {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for idleCount() != 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := idleCount(); n != 100 {
		t.Errorf("the server holds %d idle connections, want 100", n)
	}
	if n := ic.Lost(); n != 0 {
		t.Errorf("Lost() = %d while the server holds them all, want 0", n)
	}
	// The server closes them (as an idle timeout would): every one is
	// counted lost, once the client has read the close.
	srv.CloseClientConnections()
	deadline = time.Now().Add(5 * time.Second)
	for ic.Lost() != 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := ic.Lost(); n != 100 {
		t.Errorf("Lost() = %d after the server closed them all, want 100", n)
	}
}

func TestOpenIdleFailsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	u, _ := url.Parse("https://" + addr + "/")
	if ic, err := OpenIdle(t.Context(), Config{URL: u, Insecure: true}, 10); err == nil {
		ic.Close()
		t.Fatal("OpenIdle to a closed port succeeded")
	}
}
