package h1

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// BenchmarkPeerClosed measures the check getConn makes on every idle
// connection before reuse: one recv(2) with MSG_PEEK|MSG_DONTWAIT on a live,
// idle loopback TCP connection.
func BenchmarkPeerClosed(b *testing.B) {
	var wg sync.WaitGroup
	defer wg.Wait() // after ln.Close, deferred below
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	wg.Go(func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	srv, ok := <-accepted
	if !ok {
		b.Fatal("Accept failed")
	}
	defer srv.Close()

	b.ReportAllocs()
	for b.Loop() {
		if peerClosed(nc) {
			b.Fatal("peerClosed on a live idle connection = true, want false")
		}
	}
}

// BenchmarkRoundTrip sends a small POST through a Transport to an
// httptest backend on 127.0.0.1, reusing one pooled connection.
func BenchmarkRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"score":0.5}`))
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := New(Config{Addr: u.Host})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	target := srv.URL + "/v1/score"
	const payload = `{"features":[0.1,0.2,0.3,0.4]}`

	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequest("POST", target, strings.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status = %d, want 200", resp.StatusCode)
		}
	}
}
