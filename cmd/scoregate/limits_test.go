package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs/certstest"
	"github.com/scoregate/scoregate/metrics"
)

// limitsServer starts scoregate for api.example.com with extra args and
// returns it with a client TLS config that trusts it and speaks HTTP/1.1.
func limitsServer(t *testing.T, args ...string) (*testServer, *tls.Config) {
	t.Helper()
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	ts := startServe(t, append([]string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL}, args...)...)
	return ts, &tls.Config{RootCAs: poolOf(t, f.CAFile), ServerName: "api.example.com", NextProtos: []string{"http/1.1"}}
}

// dialTLS opens a TLS connection to the server and completes the
// handshake, which the server only answers once it has accepted the
// connection.
func dialTLS(t *testing.T, ts *testServer, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tlsAddr(), cfg)
	if err != nil {
		t.Fatalf("TLS connection: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends GET / on c, an HTTP/1.1 connection kept alive, and returns the
// status.
func get(t *testing.T, c *tls.Conn) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")); err != nil {
		t.Fatalf("GET /: %v", err)
	}
	// Nothing follows the response, so the reader holds nothing once its
	// body has been read.
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("GET / body: %v", err)
	}
	return resp.StatusCode
}

// acceptBacklog returns how many connections wait in the kernel's accept
// queue of the TCP listener on addr (the rx_queue of a listening socket in
// /proc/net/tcp), or false where that is not known (not Linux).
func acceptBacklog(t *testing.T, addr string) (int, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, false
	}
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	local := fmt.Sprintf("0100007F:%04X", p) // 127.0.0.1 as the kernel prints it
	for _, line := range strings.Split(string(b), "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[1] != local || fields[3] != "0A" { // 0A: LISTEN
			continue
		}
		_, rx, _ := strings.Cut(fields[4], ":")
		n, err := strconv.ParseInt(rx, 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/tcp: %q: %v", line, err)
		}
		return int(n), true
	}
	t.Fatalf("/proc/net/tcp: no listening socket %s", local)
	return 0, false
}

// TestServeMaxConnections fills --max-connections with idle clients: a
// fourth connects at the TCP level and waits, unanswered, in the kernel's
// accept queue while the others keep being served, and is answered once
// one of them leaves.
func TestServeMaxConnections(t *testing.T) {
	ts, cfg := limitsServer(t, "--max-connections", "3")
	var conns []*tls.Conn
	for range 3 {
		conns = append(conns, dialTLS(t, ts, cfg))
	}

	raw, err := net.DialTimeout("tcp", ts.tlsAddr(), 5*time.Second)
	if err != nil {
		t.Fatalf("a TCP connection beyond the limit: %v; want the kernel to complete it", err)
	}
	t.Cleanup(func() { raw.Close() })
	fourth := tls.Client(raw, cfg)
	handshake := make(chan error, 1)
	go func() { handshake <- fourth.Handshake() }()
	_, linux := acceptBacklog(t, ts.tlsAddr())
	if linux {
		waitFor(t, 5*time.Second, "the fourth connection in the accept queue", func() bool {
			n, _ := acceptBacklog(t, ts.tlsAddr())
			return n == 1
		})
	}

	for i, c := range conns {
		if got := get(t, c); got != http.StatusOK {
			t.Errorf("client %d at the limit: GET / = %d, want 200", i+1, got)
		}
	}
	select {
	case err := <-handshake:
		t.Fatalf("the fourth client's handshake ended (%v) while three connections were open", err)
	default:
	}
	if n, _ := acceptBacklog(t, ts.tlsAddr()); linux && n != 1 {
		t.Errorf("accept queue = %d after the others were served, want 1 (the fourth, not accepted)", n)
	}
	if got := metricValue(t, ts.reg, "scoregate_connections_open", nil); got != 3 {
		t.Errorf("scoregate_connections_open = %v, want 3", got)
	}

	conns[0].Close()
	select {
	case err := <-handshake:
		if err != nil {
			t.Fatalf("the fourth client's handshake once a slot was free: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fourth client got no handshake within 5s of a slot freeing")
	}
	if got := get(t, fourth); got != http.StatusOK {
		t.Errorf("the fourth client: GET / = %d, want 200", got)
	}
	if got := get(t, conns[1]); got != http.StatusOK {
		t.Errorf("an earlier client: GET / = %d, want 200", got)
	}
	resp, err := http.Get("http://" + ts.addr("metrics-listen") + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz after the limit was reached: %v, %v; want 200", resp, err)
	}
	resp.Body.Close()
}

// TestServeMaxConnectionsPerIP opens one connection more than
// --max-connections-per-ip allows from 127.0.0.1: it is closed before the
// TLS handshake, counted and logged at debug level, and the others keep
// being served.
func TestServeMaxConnectionsPerIP(t *testing.T) {
	ts, cfg := limitsServer(t, "--max-connections-per-ip", "2", "--log-level", "debug")
	a, b := dialTLS(t, ts, cfg), dialTLS(t, ts, cfg)
	refused := map[string]string{"reason": metrics.ConnRefusedPerIPLimit}

	if c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tlsAddr(), cfg); err == nil {
		c.Close()
		t.Fatal("a third connection from 127.0.0.1 completed its handshake; want it closed")
	}
	waitFor(t, 5*time.Second, "the refusal counted", func() bool {
		return metricValue(t, ts.reg, "scoregate_connections_refused_total", refused) == 1
	})
	if line := logLine(ts.stderr.String(), "connection closed at accept"); !strings.Contains(line, `"level":"debug"`) || !strings.Contains(line, `"client":"127.0.0.1"`) {
		t.Errorf("log line for the refusal = %q, want one at debug level naming the client", line)
	}
	for i, c := range []*tls.Conn{a, b} {
		if got := get(t, c); got != http.StatusOK {
			t.Errorf("client %d: GET / = %d, want 200", i+1, got)
		}
	}

	a.Close() // the server sees EOF, closes its side and frees the slot
	waitFor(t, 5*time.Second, "a new connection once one has closed", func() bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tlsAddr(), cfg)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// logLine returns the first line of logs that contains msg, or "".
func logLine(logs, msg string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, msg) {
			return line
		}
	}
	return ""
}

// TestPerIPListener checks the per-address count itself: a connection
// closed twice gives its slot back once.
func TestPerIPListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ln := limitConns(inner, 0, 1, zerolog.New(t.Output()), metrics.New(reg))
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 8)
	go func() {
		for {
			c, err := ln.Accept()
			acc <- accepted{c, err}
			if err != nil {
				return
			}
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() net.Conn {
		t.Helper()
		select {
		case a := <-acc:
			if a.err != nil {
				t.Fatal(a.err)
			}
			return a.c
		case <-time.After(5 * time.Second):
			t.Fatal("Accept returned nothing within 5s")
			return nil
		}
	}
	// closedByServer waits until the server has closed c (a read ends in
	// EOF or a reset, not the deadline).
	closedByServer := func(c net.Conn) bool {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}

	dial()
	first := next()
	if !closedByServer(dial()) {
		t.Fatal("a second connection from the address was not closed")
	}
	first.Close()
	dial()
	second := next()
	first.Close() // again: must not give back second's slot
	if !closedByServer(dial()) {
		t.Error("after a connection was closed twice: another connection was not closed; a slot was given back twice")
	}
	second.Close()
	if got := metricValue(t, reg, "scoregate_connections_refused_total", map[string]string{"reason": metrics.ConnRefusedPerIPLimit}); got != 2 {
		t.Errorf("scoregate_connections_refused_total = %v, want 2", got)
	}
}

// TestHTTP10OverALPN: a client that offers only http/1.0 in ALPN (curl
// --http1.0) is served, and its connection closed after the answer.
func TestHTTP10OverALPN(t *testing.T) {
	ts, cfg := limitsServer(t)
	cfg.NextProtos = []string{"http/1.0"}
	c := dialTLS(t, ts, cfg)
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.0" {
		t.Fatalf("negotiated %q, want http/1.0", p)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: api.example.com\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.0" {
		t.Errorf("answer %s %d, want HTTP/1.0 200", resp.Proto, resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer: %v, want the connection closed", err)
	}
}
