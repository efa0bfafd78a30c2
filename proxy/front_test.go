package proxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/scoregate/scoregate/proxy/front"
)

// startTLS starts srv, an unstarted httptest server, the way scoregate
// serves its TLS listener: front does the handshakes and serves HTTP/1.1,
// and net/http serves HTTP/2. srv's certificate, TLS settings, client and
// URL are StartTLS's, and its Config's Handler, timeouts, header limit,
// HTTP2 settings and ConnState hook apply; StartTLS itself serves an
// empty listener, so that every behaviour test of the proxy runs on the
// serving path scoregate runs.
func startTLS(t *testing.T, srv *httptest.Server) {
	t.Helper()
	ln := srv.Listener
	hook := srv.Config.ConnState
	srv.Listener = emptyListener{addr: ln.Addr(), done: make(chan struct{})}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	tc := srv.TLS.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	cfg := srv.Config
	fs, err := front.New(&http.Server{
		Handler:           cfg.Handler,
		TLSConfig:         tc,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		HTTP2:             cfg.HTTP2,
		ConnState:         hook,
		ErrorLog:          cfg.ErrorLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fs.Serve(ln)
	}()
	t.Cleanup(func() {
		fs.Close()
		<-done
	})
}

// emptyListener is a listener that never yields a connection.
type emptyListener struct {
	addr net.Addr
	done chan struct{}
}

func (l emptyListener) Accept() (net.Conn, error) {
	<-l.done
	return nil, net.ErrClosed
}

func (l emptyListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l emptyListener) Addr() net.Addr { return l.addr }
