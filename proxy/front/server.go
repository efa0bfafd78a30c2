package front

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves one TLS listener. It is configured by a net/http server,
// whose fields it reads as net/http would: TLSConfig (required; HTTP/2 is
// offered when its NextProtos has "h2"), Handler, ReadHeaderTimeout (also
// the handshake timeout), IdleTimeout, MaxHeaderBytes, ConnState and
// ErrorLog. HTTP/2 connections are served by that net/http server.
//
// Create it with New; the http.Server must not be started or changed
// afterwards.
type Server struct {
	srv    *http.Server
	tls    *tls.Config                    // srv's TLSConfig as given, for the handshakes
	hook   func(net.Conn, http.ConnState) // srv's ConnState as given
	h2     *h2Listener
	h2done chan error // the HTTP/2 server's Serve result

	draining atomic.Bool

	// The bounds of a lingering close, if not lingerTime and
	// lingerBytes; set by tests before Serve.
	lingerFor, lingerMax int64

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*conn]struct{}
	closed bool // Shutdown or Close was called
}

// New returns a Server configured by srv, which it will use to serve
// HTTP/2. srv.TLSConfig is required. New takes srv over: it gives srv a
// copy of its TLSConfig (net/http adjusts the one it holds) and wraps its
// ConnState so that a connection handed to HTTP/2 is not counted new twice.
func New(srv *http.Server) (*Server, error) {
	if srv.TLSConfig == nil {
		return nil, errors.New("front: the http.Server has no TLSConfig")
	}
	// Handshakes use the config as given; net/http's Serve adjusts the
	// one it holds for HTTP/2 (http2ConfigureServer), so it gets a copy
	// and never writes what a handshake reads.
	s := &Server{srv: srv, tls: srv.TLSConfig, conns: map[*conn]struct{}{}, hook: srv.ConnState}
	srv.TLSConfig = srv.TLSConfig.Clone()
	if hook := srv.ConnState; hook != nil {
		// This server counts StateNew at accept, before the handshake
		// decides which protocol serves the connection.
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			if st != http.StateNew {
				hook(c, st)
			}
		}
	}
	return s, nil
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln (plain TCP: the TLS handshake is done
// here) until Shutdown or Close, then returns ErrServerClosed. Each
// connection gets a goroutine, which completes the handshake within the
// handshake timeout and serves HTTP/1.1 itself or hands HTTP/2 to the
// net/http server.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("front: Serve called twice")
	}
	s.ln = ln
	s.h2 = newH2Listener(ln.Addr())
	s.h2done = make(chan error, 1)
	s.mu.Unlock()
	go func() { s.h2done <- s.srv.Serve(s.h2) }()

	var delay time.Duration // after a temporary accept error, as net/http
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.srv.ErrorLog.Printf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := s.newConn(rw)
		if c == nil {
			rw.Close()
			continue
		}
		go c.serve()
	}
}

func (s *Server) lingerTime() time.Duration {
	if s.lingerFor > 0 {
		return time.Duration(s.lingerFor)
	}
	return lingerTime
}

func (s *Server) lingerBytes() int64 {
	if s.lingerMax > 0 {
		return s.lingerMax
	}
	return lingerBytes
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// newConn tracks a new connection; nil once the server is shutting down.
func (s *Server) newConn(rw net.Conn) *conn {
	c := &conn{s: s, raw: rw}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.conns[c] = struct{}{}
	s.connState(rw, http.StateNew)
	return c
}

// forget stops tracking c: it closed, was hijacked or went to HTTP/2.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) connState(c net.Conn, st http.ConnState) {
	if s.hook != nil {
		s.hook(c, st)
	}
}

// handshakeTimeout is net/http's: the least positive of ReadHeaderTimeout,
// ReadTimeout and WriteTimeout.
func (s *Server) handshakeTimeout() time.Duration {
	var d time.Duration
	for _, v := range []time.Duration{s.srv.ReadHeaderTimeout, s.srv.ReadTimeout, s.srv.WriteTimeout} {
		if v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	return d
}

// handshake completes c's TLS handshake; false if it failed, logged as
// net/http logs it (ErrorLog's "http: TLS handshake error" lines, which
// the handshake metrics parse).
func (s *Server) handshake(tc *tls.Conn) bool {
	if d := s.handshakeTimeout(); d > 0 {
		tc.SetDeadline(time.Now().Add(d))
	}
	err := tc.HandshakeContext(context.Background())
	if err == nil {
		tc.SetDeadline(time.Time{})
		return true
	}
	reason := err.Error()
	var re tls.RecordHeaderError
	if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
		io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		reason = "client sent an HTTP request to an HTTPS server"
	}
	s.logf("http: TLS handshake error from %s: %v", tc.RemoteAddr(), reason)
	return false
}

func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

func (s *Server) logf(format string, args ...any) {
	if s.srv.ErrorLog != nil {
		s.srv.ErrorLog.Printf(format, args...)
	}
}

// Shutdown stops accepting, closes idle HTTP/1.1 connections, lets active
// ones finish their response (with Connection: close) and shuts the
// HTTP/2 server down gracefully; it returns once every connection is
// closed, or with ctx's error, leaving the rest to Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.closeListener()
	h2err := make(chan error, 1)
	go func() { h2err <- s.srv.Shutdown(ctx) }()

	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for wait := time.Millisecond; ; {
		if s.wakeIdle() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			<-h2err
			return ctx.Err()
		case <-tick.C:
		}
		if wait < 100*time.Millisecond {
			wait *= 2
			tick.Reset(wait)
		}
	}
	return <-h2err
}

// wakeIdle ends the wait of every idle HTTP/1.1 connection (each closes
// on seeing the server drain) and returns how many connections remain.
func (s *Server) wakeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.raw.SetReadDeadline(aLongTimeAgo)
		}
	}
	return len(s.conns)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.draining.Store(true)
	s.closeListener()
	err := s.srv.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.raw.Close()
		c.cancelRequest() // a handler waiting on its backend would not notice the close
	}
	s.mu.Unlock()
	return err
}

func (s *Server) closeListener() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
		s.h2.Close()
	}
}

// aLongTimeAgo is a deadline in the past: it ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// h2Listener is how HTTP/2 connections, their handshake done, reach the
// net/http server: its Accept returns the *tls.Conn (net/http checks the
// type, finds the handshake complete and the protocol h2).
type h2Listener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newH2Listener(addr net.Addr) *h2Listener {
	return &h2Listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// hand passes c to the HTTP/2 server; false if it no longer accepts.
func (l *h2Listener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *h2Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *h2Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *h2Listener) Addr() net.Addr { return l.addr }
