package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// testServer is a running `scoregate serve` on 127.0.0.1.
type testServer struct {
	*server
	stdout, stderr *syncBuffer
	stop           func() error // cancels the context and returns run's error
}

// startServe starts `scoregate serve` with args plus loopback listeners.
func startServe(t *testing.T, args ...string) *testServer {
	t.Helper()
	return startServeWith(t, nil, args...)
}

// startServeWith is startServe with some listeners bound by the test,
// keyed by the flag that would configure them.
func startServeWith(t *testing.T, pre map[string]net.Listener, args ...string) *testServer {
	t.Helper()
	return startServeHooked(t, pre, nil, args...)
}

// startServeHooked is startServeWith with hook called on the server before
// it runs.
func startServeHooked(t *testing.T, pre map[string]net.Listener, hook func(*server), args ...string) *testServer {
	t.Helper()
	args = append([]string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, args...)
	cfg, err := parseServe(args, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatalf("parseServe(%q): %v", args, err)
	}
	ts := &testServer{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	sc, err := cfg.resolve(ts.stderr)
	if err != nil {
		t.Fatalf("resolve(%q): %v", args, err)
	}
	sc.Preopened = pre
	ts.server, err = newServer(sc, ts.stdout)
	if err != nil {
		t.Fatalf("newServer(%q): %v", args, err)
	}
	if hook != nil {
		hook(ts.server)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.run(ctx) }()
	var once sync.Once
	var runErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("run did not return within 10s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("serve: run returned %v, want nil", err)
		}
	})
	return ts
}

func (ts *testServer) addr(name string) string {
	for _, l := range ts.listeners {
		if l.name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// client returns an HTTP client that trusts roots, sends SNI serverName and
// dials the server whatever the URL's host.
func (ts *testServer) client(t *testing.T, roots *x509.CertPool, serverName string, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: serverName},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ts.tlsAddr())
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func poolOf(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s: no certificates", caFile)
	}
	return p
}
