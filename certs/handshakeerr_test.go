package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
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

// hsName is the cname the handshake-error servers serve.
const hsName = "api.example.com"

// hsDeadline bounds every wait and network operation in these tests, so
// that a bug fails a test instead of hanging it; nothing waits for it to
// pass.
const hsDeadline = 10 * time.Second

// lineWriter hands each write (zerolog writes one JSON line per event) to
// the test.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// hsServer is a net/http TLS server on 127.0.0.1 whose ErrorLog is
// certs.NewHandshakeErrorLog.
type hsServer struct {
	addr  string
	files certstest.Files
	reg   *prometheus.Registry
	lines lineWriter // every line the server's ErrorLog logs
}

// startHSServer serves a freshly minted pair for hsName with
// certs.ServerTLSConfig, which refuses other names and clients without SNI,
// until the test ends. handshakeTimeout, if not
// zero, bounds the TLS handshake (through ReadHeaderTimeout).
func startHSServer(t *testing.T, handshakeTimeout time.Duration) *hsServer {
	t.Helper()
	s := &hsServer{
		files: certstest.NewFiles(t, t.TempDir(), hsName),
		reg:   prometheus.NewRegistry(),
		lines: make(lineWriter, 64),
	}
	m := metrics.New(s.reg)
	refusals := certs.NewRefusals(zerolog.New(s.lines))
	src, err := certs.NewSource(certs.SourceConfig{
		CertFile: s.files.CertFile,
		KeyFile:  s.files.KeyFile,
		CName:    hsName,
	}, zerolog.New(t.Output()))
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	if handshakeTimeout == 0 {
		handshakeTimeout = hsDeadline
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		TLSConfig:         certs.ServerTLSConfig(src, certs.SNIPolicy{CName: hsName, Refusals: refusals}, m),
		ReadHeaderTimeout: handshakeTimeout,
		ErrorLog:          certs.NewHandshakeErrorLog(zerolog.New(s.lines), m, refusals),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.ServeTLS(ln, "", ""); err != http.ErrServerClosed {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return s
}

// clientConfig returns a TLS client configuration that trusts the server's
// root and asks for serverName.
func (s *hsServer) clientConfig(serverName string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(s.files.Root.Cert)
	return &tls.Config{RootCAs: roots, ServerName: serverName}
}

// tlsDial performs a TLS handshake with cfg and then reads until the
// server closes the connection, so that a refusal the server decides after
// the client's last flight (as TLS 1.3 does) reaches the client. It
// returns the first error, or nil if the server closed cleanly.
func (s *hsServer) tlsDial(cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: hsDeadline}, "tcp", s.addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hsDeadline))
	_, err = c.Read(make([]byte, 1))
	return err
}

// raw connects over plain TCP, writes b, and returns what the server sends
// until it closes the connection.
func (s *hsServer) raw(t *testing.T, b []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, hsDeadline)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hsDeadline))
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	got, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("reading the server's answer: %v", err)
	}
	return got
}

// waitHandshakeError returns the server's log line for the failed
// handshake. Once it is logged, the handshake has been counted.
func (s *hsServer) waitHandshakeError(t *testing.T) string {
	t.Helper()
	deadline := time.NewTimer(hsDeadline)
	defer deadline.Stop()
	for {
		select {
		case line := <-s.lines:
			if strings.Contains(line, "TLS handshake error from ") {
				return line
			}
			t.Logf("server logged: %s", line)
		case <-deadline.C:
			t.Fatalf("gave up after %s waiting for the server to log a TLS handshake error", hsDeadline)
		}
	}
}

// counts returns the nonzero series of the counter metric, summed by the
// value of label.
func (s *hsServer) counts(t *testing.T, metric, label string) map[string]float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				for _, l := range m.GetLabel() {
					if l.GetName() == label {
						got[l.GetValue()] += v
					}
				}
			}
		}
	}
	return got
}

// resumeForOtherName completes one handshake (and request) for hsName with
// version as the maximum, keeping its session, then offers that session
// with serverName ("" sends no SNI).
func resumeForOtherName(version uint16, serverName string) func(*testing.T, *hsServer) {
	return func(t *testing.T, s *hsServer) {
		cache := &oneSessionCache{}
		cfg := s.clientConfig(hsName)
		cfg.MaxVersion = version
		cfg.ClientSessionCache = cache
		tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: hsDeadline}).Get("https://" + s.addr + "/")
		if err != nil {
			t.Fatalf("first request for %s: %v", hsName, err)
		}
		io.Copy(io.Discard, resp.Body) // TLS 1.3 tickets arrive with the response
		resp.Body.Close()
		if !cache.has() {
			t.Fatalf("no session ticket after the first request")
		}
		other := cfg.Clone()
		other.ServerName = serverName
		other.InsecureSkipVerify = true
		if err := s.tlsDial(other); err == nil {
			t.Errorf("resuming a %s session with SNI %q: no error, want the server to refuse it", hsName, serverName)
		}
	}
}

// oneSessionCache hands its one session to every server name, as a client
// reusing a ticket for another name would.
type oneSessionCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *oneSessionCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *oneSessionCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs != nil {
		c.cs = cs
	}
}

func (c *oneSessionCache) has() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs != nil
}

// TestHandshakeErrorLogCountsRealHandshakes fails real handshakes against a
// net/http server and checks that each is counted exactly once, under the
// expected reason, whether certs counted it where it refused it (the SNI
// policy) or the ErrorLog counted it from net/http's log line.
func TestHandshakeErrorLogCountsRealHandshakes(t *testing.T) {
	for _, tt := range []struct {
		name             string
		handshakeTimeout time.Duration // if zero, hsDeadline
		client           func(*testing.T, *hsServer)
		wantReason       string
		wantDetail       string // in the logged line
	}{
		{
			name: "other server name refused by the SNI policy",
			client: func(t *testing.T, s *hsServer) {
				err := s.tlsDial(s.clientConfig("other.example.com"))
				if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
					t.Errorf("handshake with SNI other.example.com: error = %v, want an unrecognized_name alert", err)
				}
			},
			wantReason: metrics.HandshakeUnrecognizedName,
			wantDetail: `"server_name":"other.example.com"`,
		},
		{
			name: "no SNI refused by the SNI policy",
			client: func(t *testing.T, s *hsServer) {
				cfg := s.clientConfig("")
				cfg.InsecureSkipVerify = true // dialled by IP: no name to send or verify
				if err := s.tlsDial(cfg); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
					t.Errorf("handshake without SNI: error = %v, want an unrecognized_name alert", err)
				}
			},
			wantReason: metrics.HandshakeMissingSNI,
			wantDetail: `"reason":"missing_sni","server_name":""`,
		},
		{
			name:       "TLS 1.3 session resumed for another name",
			client:     resumeForOtherName(tls.VersionTLS13, "evil.example.com"),
			wantReason: metrics.HandshakeUnrecognizedName,
			wantDetail: certs.ErrUnrecognizedName.Error(),
		},
		{
			name:       "TLS 1.3 session resumed without SNI",
			client:     resumeForOtherName(tls.VersionTLS13, ""),
			wantReason: metrics.HandshakeMissingSNI,
			wantDetail: certs.ErrMissingSNI.Error(),
		},
		{
			// TLS 1.2 servers call GetCertificate before they look at the
			// offered session, so the name is refused there.
			name:       "TLS 1.2 session resumed for another name",
			client:     resumeForOtherName(tls.VersionTLS12, "evil.example.com"),
			wantReason: metrics.HandshakeUnrecognizedName,
			wantDetail: `"server_name":"evil.example.com"`,
		},
		{
			name: "TLS 1.1 only",
			client: func(t *testing.T, s *hsServer) {
				cfg := s.clientConfig(hsName)
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
				if err := s.tlsDial(cfg); err == nil || !strings.Contains(err.Error(), "protocol version") {
					t.Errorf("TLS 1.1 handshake: error = %v, want a protocol_version alert", err)
				}
			},
			wantReason: metrics.HandshakeProtocolVersion,
			wantDetail: "tls: client offered only unsupported versions",
		},
		{
			name: "TLS 1.2 with only CBC suites",
			client: func(t *testing.T, s *hsServer) {
				cfg := s.clientConfig(hsName)
				cfg.MaxVersion = tls.VersionTLS12
				cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}
				if err := s.tlsDial(cfg); err == nil || !strings.Contains(err.Error(), "handshake failure") {
					t.Errorf("TLS 1.2 CBC-only handshake: error = %v, want a handshake_failure alert", err)
				}
			},
			wantReason: metrics.HandshakeNoSharedCipher,
			wantDetail: "tls: no cipher suite supported by both client and server",
		},
		{
			name: "client does not trust the certificate",
			client: func(t *testing.T, s *hsServer) {
				cfg := s.clientConfig(hsName)
				cfg.RootCAs = x509.NewCertPool() // trusts nothing
				if err := s.tlsDial(cfg); err == nil || !strings.Contains(err.Error(), "x509") {
					t.Errorf("handshake trusting no root: error = %v, want an x509 verification error", err)
				}
			},
			wantReason: metrics.HandshakeBadCertificate,
			wantDetail: "remote error: tls: bad certificate",
		},
		{
			name: "plain HTTP request",
			client: func(t *testing.T, s *hsServer) {
				got := s.raw(t, []byte("GET / HTTP/1.1\r\nHost: "+hsName+"\r\n\r\n"))
				if want := []byte("HTTP/1.0 400 Bad Request"); !bytes.HasPrefix(got, want) {
					t.Errorf("answer to plain HTTP = %q, want it to start with %q", got, want)
				}
			},
			wantReason: metrics.HandshakeNotTLS,
			wantDetail: "client sent an HTTP request to an HTTPS server",
		},
		{
			name: "plain HTTP method net/http does not recognise",
			client: func(t *testing.T, s *hsServer) {
				s.raw(t, []byte("PATCH / HTTP/1.1\r\nHost: "+hsName+"\r\n\r\n"))
			},
			wantReason: metrics.HandshakeNotTLS,
			wantDetail: "tls: first record does not look like a TLS handshake",
		},
		{
			name:       "garbage bytes",
			client:     func(t *testing.T, s *hsServer) { s.raw(t, []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09")) },
			wantReason: metrics.HandshakeNotTLS,
			wantDetail: "tls: first record does not look like a TLS handshake",
		},
		{
			name:       "SSLv2 ClientHello",
			client:     func(t *testing.T, s *hsServer) { s.raw(t, []byte("\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10")) },
			wantReason: metrics.HandshakeProtocolVersion,
			wantDetail: "tls: unsupported SSLv2 handshake received",
		},
		{
			name:       "oversized handshake record",
			client:     func(t *testing.T, s *hsServer) { s.raw(t, []byte("\x16\x03\x01\xff\xff")) },
			wantReason: metrics.HandshakeBadRecord,
			wantDetail: "tls: oversized record received with length 65535",
		},
		{
			name:       "malformed handshake message",
			client:     func(t *testing.T, s *hsServer) { s.raw(t, []byte("\x16\x03\x01\x00\x04\x02\x00\x00\x00")) },
			wantReason: metrics.HandshakeBadRecord,
			wantDetail: "local error: tls: error decoding message",
		},
		{
			name:       "unknown handshake message type",
			client:     func(t *testing.T, s *hsServer) { s.raw(t, []byte("\x16\x03\x01\x00\x04\x63\x00\x00\x00")) },
			wantReason: metrics.HandshakeBadRecord,
			wantDetail: "local error: tls: unexpected message",
		},
		{
			name: "connect and close",
			client: func(t *testing.T, s *hsServer) {
				c, err := net.DialTimeout("tcp", s.addr, hsDeadline)
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
			},
			wantReason: metrics.HandshakeEOF,
			wantDetail: ": EOF",
		},
		{
			name: "connect and reset",
			client: func(t *testing.T, s *hsServer) {
				c, err := net.DialTimeout("tcp", s.addr, hsDeadline)
				if err != nil {
					t.Fatal(err)
				}
				// Half a record header, so that the server is reading when
				// the reset arrives.
				if _, err := c.Write([]byte("\x16\x03")); err != nil {
					t.Fatal(err)
				}
				c.(*net.TCPConn).SetLinger(0) // close sends RST
				c.Close()
			},
			wantReason: metrics.HandshakeReset,
			wantDetail: "connection reset by peer",
		},
		{
			name:             "client sends nothing",
			handshakeTimeout: 50 * time.Millisecond,
			client:           func(t *testing.T, s *hsServer) { s.raw(t, nil) },
			wantReason:       metrics.HandshakeTimeout,
			wantDetail:       "i/o timeout",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startHSServer(t, tt.handshakeTimeout)
			tt.client(t, s)
			line := s.waitHandshakeError(t)
			if !strings.Contains(line, tt.wantDetail) || !strings.Contains(line, `"level":"debug"`) {
				t.Errorf("logged %s, want a debug line containing %q", strings.TrimSpace(line), tt.wantDetail)
			}
			got := s.counts(t, "scoregate_tls_handshake_errors_total", "reason")
			if want := map[string]float64{tt.wantReason: 1}; !maps.Equal(got, want) {
				t.Errorf("scoregate_tls_handshake_errors_total = %v, want %v (logged %s)", got, want, strings.TrimSpace(line))
			}
			if got := s.counts(t, "scoregate_tls_handshakes_total", "result")[metrics.ResultError]; got != 1 {
				t.Errorf("scoregate_tls_handshakes_total{result=%q} = %v, want 1", metrics.ResultError, got)
			}
		})
	}
}

func TestHandshakeErrorReason(t *testing.T) {
	for _, tt := range []struct{ name, detail, want string }{
		{"name refused by GetCertificate", "tls: no certificates configured", ""},
		{"resumed name refused by VerifyConnection", certs.ErrUnrecognizedName.Error(), ""},
		{"resumed session without SNI refused", certs.ErrMissingSNI.Error(), ""},
		{"sentinel after the address", "127.0.0.1:5555: " + certs.ErrUnrecognizedName.Error(), ""},
		{"TLS 1.0 and 1.1", "tls: client offered only unsupported versions: [302 301]", metrics.HandshakeProtocolVersion},
		{"SSLv2", "tls: unsupported SSLv2 handshake received", metrics.HandshakeProtocolVersion},
		{"protocol_version alert", "remote error: tls: protocol version not supported", metrics.HandshakeProtocolVersion},
		{"no shared cipher", "tls: no cipher suite supported by both client and server; client offered: [c009 c00a]", metrics.HandshakeNoSharedCipher},
		{"plain HTTP", "client sent an HTTP request to an HTTPS server", metrics.HandshakeNotTLS},
		{"not TLS", "tls: first record does not look like a TLS handshake", metrics.HandshakeNotTLS},
		{"bad record MAC", "local error: tls: bad record MAC", metrics.HandshakeBadRecord},
		{"oversized record", "tls: oversized record received with length 65535", metrics.HandshakeBadRecord},
		{"unexpected message", "local error: tls: unexpected message", metrics.HandshakeBadRecord},
		{"malformed message", "local error: tls: error decoding message", metrics.HandshakeBadRecord},
		{"timeout", "read tcp 127.0.0.1:8443->127.0.0.1:5555: i/o timeout", metrics.HandshakeTimeout},
		{"reset", "read tcp 127.0.0.1:8443->127.0.0.1:5555: read: connection reset by peer", metrics.HandshakeReset},
		{"broken pipe", "write tcp 127.0.0.1:8443->127.0.0.1:5555: write: broken pipe", metrics.HandshakeReset},
		{"EOF", "EOF", metrics.HandshakeEOF},
		{"unexpected EOF", "unexpected EOF", metrics.HandshakeEOF},
		{"client refused the certificate", "remote error: tls: bad certificate", metrics.HandshakeBadCertificate},
		{"client does not know the CA", "remote error: tls: unknown certificate authority", metrics.HandshakeBadCertificate},
		{"ACME certificate pending", certs.ErrCertificatePending.Error() + ": obtaining", metrics.HandshakeNoCertificate},
		{"unknown", "something new", metrics.HandshakeOther},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := certs.HandshakeErrorReason(tt.detail); got != tt.want {
				t.Errorf("HandshakeErrorReason(%q) = %q, want %q", tt.detail, got, tt.want)
			}
		})
	}
}

// TestHandshakeErrorLogLevels checks what NewHandshakeErrorLog does with
// lines that are not handshake errors, and with a nil *metrics.Metrics.
func TestHandshakeErrorLogLevels(t *testing.T) {
	for _, tt := range []struct {
		name, line, wantLevel string
	}{
		{"handshake error", "http: TLS handshake error from 127.0.0.1:5555: EOF", "debug"},
		{"other line", "http: Accept error: accept tcp [::]:8443: too many open files; retrying in 5ms", "warn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines := make(lineWriter, 1)
			certs.NewHandshakeErrorLog(zerolog.New(lines), nil, nil).Print(tt.line)
			got := <-lines
			if want := fmt.Sprintf(`{"level":%q,"source":"net/http","message":%q}`, tt.wantLevel, tt.line); strings.TrimSpace(got) != want {
				t.Errorf("logged %s, want %s", strings.TrimSpace(got), want)
			}
		})
	}
}
