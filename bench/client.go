package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// The HTTP client.
//
// Every connection is made with net/http's Transport.NewClientConn (Go
// 1.26), which gives what a load generator needs and a pooled client does
// not: one explicit connection per HTTP/1.1 worker, exactly H2Conns HTTP/2
// connections shared by H2Streams workers each, and a new connection per
// request for the handshake scenarios. golang.org/x/net/http2 used to be
// the way to get explicit HTTP/2 client connections (its
// Transport.NewClientConn); as of x/net v0.62 that API and
// Transport.AllowHTTP are deprecated in favour of exactly these net/http
// APIs (staticcheck SA1019), so the harness does not import it. h2c (HTTP/2
// with prior knowledge, for the backend) is Protocols.SetUnencryptedHTTP2.

// target is what every worker of a run shares. It is safe for concurrent
// use.
type target struct {
	tr     *http.Transport
	scheme string // "https" or "http"
	addr   string // the URL's host:port; the dial goes to Config.Connect instead
	url    string // the request URL: scheme, the URL's host, Config.Path
	method string
	body   []byte // nil for GET and HEAD
}

func newTarget(cfg Config) *target {
	t := &target{
		scheme: cfg.URL.Scheme,
		addr:   cfg.URL.Host,
		url:    cfg.URL.Scheme + "://" + cfg.URL.Host + cfg.Path,
		method: cfg.Method,
	}
	if cfg.URL.Port() == "" {
		t.addr = net.JoinHostPort(cfg.URL.Hostname(), map[string]string{"https": "443", "http": "80"}[cfg.URL.Scheme])
	}
	if cfg.Method != http.MethodGet && cfg.Method != http.MethodHead {
		t.body = scoreRequest(cfg.BodyBytes)
	}

	tlsCfg := &tls.Config{
		ServerName:         cfg.URL.Hostname(),
		RootCAs:            cfg.RootCAs,
		InsecureSkipVerify: cfg.Insecure,
		// X25519 only, as OpenSSL-based load tools (wrk, h2load) and the
		// peers kit's hsload offer: Go's default adds X25519MLKEM768,
		// which costs both sides more per handshake, so results would not
		// compare with theirs, and the client would eat more of the CPU
		// it shares with the server on a small machine.
		CurvePreferences: []tls.CurveID{tls.X25519},
		NextProtos:       []string{"http/1.1"},
	}
	switch cfg.Scenario {
	case Handshake:
		tlsCfg.SessionTicketsDisabled = true // every handshake a full one
	case Resume:
		// Keyed by server name: every worker resumes from the latest
		// ticket, as TLS 1.3 tickets may be used more than once.
		tlsCfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	case H2:
		tlsCfg.NextProtos = []string{"h2"}
	}

	d := &net.Dialer{}
	connect := cfg.Connect
	t.tr = &http.Transport{
		Proxy:              nil, // never a proxy from the environment: that would measure the proxy
		DisableCompression: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", connect)
			if err != nil {
				return nil, &phaseError{kindDial, err}
			}
			return c, nil
		},
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			raw, err := d.DialContext(ctx, "tcp", connect)
			if err != nil {
				return nil, &phaseError{kindDial, err}
			}
			c := tls.Client(raw, tlsCfg)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, &phaseError{kindTLS, fmt.Errorf("TLS handshake with %s (SNI %q): %w", connect, tlsCfg.ServerName, err)}
			}
			return c, nil
		},
	}
	t.tr.Protocols = new(http.Protocols)
	switch {
	case cfg.Scenario == H2 && t.scheme == "http":
		t.tr.Protocols.SetUnencryptedHTTP2(true)
	case cfg.Scenario == H2:
		t.tr.Protocols.SetHTTP2(true)
	default:
		t.tr.Protocols.SetHTTP1(true)
	}
	return t
}

// dial opens a new connection: TCP, TLS for https, and the HTTP/2 preface
// for H2.
func (t *target) dial(ctx context.Context) (*http.ClientConn, error) {
	return t.tr.NewClientConn(ctx, t.scheme, t.addr)
}

// send sends one request on cc and reads the whole answer.
func (t *target) send(ctx context.Context, cc *http.ClientConn, close bool) outcome {
	var body io.Reader
	if t.body != nil {
		body = bytes.NewReader(t.body)
	}
	req, err := http.NewRequestWithContext(ctx, t.method, t.url, body)
	if err != nil {
		return outcome{err: err}
	}
	if t.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Close = close
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return outcome{err: err}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return outcome{status: resp.StatusCode, err: err, resumed: resp.TLS != nil && resp.TLS.DidResume}
}

// handshakeWorker sends each request on a new connection, with
// "Connection: close", and closes it after the answer.
type handshakeWorker struct{ t *target }

func (w handshakeWorker) do(ctx context.Context) outcome {
	cc, err := w.t.dial(ctx)
	if err != nil {
		return outcome{err: err}
	}
	defer cc.Close()
	return w.t.send(ctx, cc, true)
}

// conn is a keep-alive connection, owned by one H1 worker or shared by the
// H2Streams workers of one H2 connection. A broken connection is replaced
// by the next request. It is safe for concurrent use.
type conn struct {
	t *target

	mu sync.Mutex // held while dialling, so that only one replacement is made
	cc *http.ClientConn
}

func (c *conn) get(ctx context.Context) (*http.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cc != nil && c.cc.Err() == nil {
		return c.cc, nil
	}
	if c.cc != nil {
		c.cc.Close()
		c.cc = nil
	}
	cc, err := c.t.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.cc = cc
	return cc, nil
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cc != nil {
		c.cc.Close()
		c.cc = nil
	}
}

// keepAliveWorker sends its requests on a shared or owned conn.
type keepAliveWorker struct{ c *conn }

func (w keepAliveWorker) do(ctx context.Context) outcome {
	cc, err := w.c.get(ctx)
	if err != nil {
		return outcome{err: err}
	}
	return w.c.t.send(ctx, cc, false)
}

// scoreRequest returns a JSON scoring request of size bytes, or of the
// envelope's 59 bytes if size is smaller. At 1040 bytes it is exactly the
// body of the peers kit's lua/score.lua: 110 features with six decimals
// from the same generator.
func scoreRequest(size int) []byte {
	const head, tail = `{"id":"bench-0001","model":"default","features":[`, `]}`
	var b strings.Builder
	b.WriteString(head)
	x := uint64(12345)
	for i := 0; i == 0 || b.Len()+1+8+len(tail) <= size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		x = (x*1103515245 + 12345) % 2147483648
		fmt.Fprintf(&b, "%.6f", float64(x)/2147483648)
	}
	// Pad the id to reach the exact size.
	s := b.String()
	if pad := size - len(s) - len(tail); pad > 0 {
		s = strings.Replace(s, `bench-0001"`, "bench-0001"+strings.Repeat("0", pad)+`"`, 1)
	}
	return []byte(s + tail)
}
