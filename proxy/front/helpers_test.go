package front

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// waitLimit bounds every wait, so that a broken server fails a test
// instead of hanging it.
const waitLimit = 10 * time.Second

const testName = "front.example"

// testCert returns one certificate for every test server, made on first
// use, and the pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certMu.Lock()
	defer certMu.Unlock()
	if certPool == nil {
		ca := certstest.NewRootCA(t, "front test CA")
		leaf := ca.Leaf(t, certstest.LeafOptions{DNSNames: []string{testName}})
		cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		certPool = x509.NewCertPool()
		certPool.AddCert(ca.Cert)
		certPair = cert
	}
	return certPair, certPool
}

var (
	certMu   sync.Mutex
	certPair tls.Certificate
	certPool *x509.CertPool
)

// logBuffer collects ErrorLog lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a front Server on 127.0.0.1 with the test certificate.
type testServer struct {
	*Server
	addr string
	log  *logBuffer
	done chan error // Serve's result
}

// start serves h with front; mod, if not nil, configures the
// http.Server first.
func start(t testing.TB, h http.Handler, mod func(*http.Server)) *testServer {
	t.Helper()
	cert, _ := testCert(t)
	logs := &logBuffer{}
	srv := &http.Server{
		Handler:   h,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ErrorLog:  log.New(logs, "", 0),
	}
	if mod != nil {
		mod(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(srv)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), log: logs, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-ts.done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// startNetHTTP serves h with net/http's own server, configured as start
// configures front: the reference for behaviour front must share.
func startNetHTTP(t testing.TB, h http.Handler, mod func(*http.Server)) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	cert, _ := testCert(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if mod != nil {
		mod(srv.Config)
	}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// dial opens an HTTP/1.1 TLS connection to addr.
func dial(t testing.TB, addr string) *tls.Conn {
	t.Helper()
	_, pool := testCert(t)
	d := &net.Dialer{Timeout: waitLimit}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: testName, RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	t.Cleanup(func() { c.Close() })
	return c
}

// client returns an HTTP client of addr speaking HTTP major version major.
func client(t *testing.T, addr string, major int) *http.Client {
	t.Helper()
	_, pool := testCert(t)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: testName, RootCAs: pool},
		Protocols:       new(http.Protocols),
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	tr.Protocols.SetHTTP1(major == 1)
	tr.Protocols.SetHTTP2(major == 2)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

// exchange writes raw on a new connection and reads every response until
// the server closes the connection (or, with keep, until n responses).
type exchange struct {
	resps  []*http.Response
	bodies []string
	closed bool // the server closed the connection after the last response
	err    error
}

func rawExchange(t testing.TB, addr, raw string, n int) exchange {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponses(c, n)
}

// readResponses reads up to n responses from c, or all of them and
// whether c was then closed if n < 0; methods are the requests' methods, GET if
// not given (a response to HEAD has no body).
func readResponses(c net.Conn, n int, methods ...string) (ex exchange) {
	br := bufio.NewReader(c)
	for n < 0 || len(ex.resps) < n {
		if _, err := br.Peek(1); err != nil {
			ex.closed = errors.Is(err, io.EOF)
			ex.err = err
			return ex
		}
		var req *http.Request
		if i := len(ex.resps); i < len(methods) {
			req = &http.Request{Method: methods[i]}
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			ex.err = err
			return ex
		}
		b, err := io.ReadAll(resp.Body)
		ex.resps = append(ex.resps, resp)
		ex.bodies = append(ex.bodies, string(b))
		if err != nil {
			ex.err = err
			return ex
		}
	}
	return ex
}

func request(method, target, extra string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: " + testName + "\r\n" + extra + "\r\n"
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
}
