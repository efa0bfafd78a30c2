package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"slices"
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

// ioTimeout bounds every network operation so that a bug fails the test
// instead of hanging it; nothing waits for it to pass.
const ioTimeout = 10 * time.Second

// serve accepts TLS connections on 127.0.0.1 with cfg until the test ends.
// Each connection that completes the handshake is sent one byte, which the
// client reads (so TLS 1.3 session tickets arrive) before closing.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener was closed
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte{'x'})
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial performs a TLS handshake with addr and reads the server's byte.
func dial(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return tls.ConnectionState{}, err
	}
	return c.ConnectionState(), nil
}

// newSource returns a Source for f's pair and cname that records in m
// (which may be nil).
func newSource(t *testing.T, f certstest.Files, m *metrics.Metrics) *certs.Source {
	t.Helper()
	src, err := certs.NewSource(certs.SourceConfig{
		CertFile: f.CertFile,
		KeyFile:  f.KeyFile,
		CName:    cname,
		Metrics:  m,
	}, zerolog.New(t.Output()))
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return src
}

func clientConfig(f certstest.Files, serverName string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(f.Root.Cert)
	return &tls.Config{RootCAs: roots, ServerName: serverName}
}

func TestHandshakeSNI(t *testing.T) {
	for _, tt := range []struct {
		name            string
		serverName      string // "" dials by IP without SNI
		allowMissingSNI bool
		wantErr         string // "" for success
		wantRefused     string // the handshake error reason counted for a refusal
	}{
		{name: "cname", serverName: cname},
		{name: "cname upper case", serverName: "API.EXAMPLE.COM"},
		{name: "cname with trailing dot", serverName: "api.example.com."},
		{name: "other name", serverName: "other.example.com", wantErr: "unrecognized name", wantRefused: metrics.HandshakeUnrecognizedName},
		{name: "no SNI", wantErr: "unrecognized name", wantRefused: metrics.HandshakeMissingSNI},
		{name: "no SNI allowed", allowMissingSNI: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := certstest.NewFiles(t, t.TempDir(), cname)
			reg := prometheus.NewRegistry()
			m := metrics.New(reg)
			src := newSource(t, f, m)
			addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname, AllowMissingSNI: tt.allowMissingSNI}, m))

			cfg := clientConfig(f, tt.serverName)
			if tt.serverName == "" {
				cfg.InsecureSkipVerify = true // no name to verify
			}
			cs, err := dial(addr, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("handshake with SNI %q: error = %v, want one containing %q", tt.serverName, err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("handshake with SNI %q: %v", tt.serverName, err)
				}
				if got, want := cs.PeerCertificates[0].SerialNumber, f.Leaf.Cert.SerialNumber; got.Cmp(want) != 0 {
					t.Errorf("served serial = %x, want %x", got, want)
				}
				if tt.serverName != "" && len(cs.VerifiedChains) == 0 {
					t.Errorf("client verified no chain to the root")
				}
			}
			// The server counted the handshake before its alert or its
			// byte reached the client.
			for _, reason := range []string{metrics.HandshakeUnrecognizedName, metrics.HandshakeMissingSNI} {
				want := 0.0
				if reason == tt.wantRefused {
					want = 1
				}
				if got := counter(t, reg, handshakeErrorsTotal, map[string]string{"reason": reason}); got != want {
					t.Errorf("%s{reason=%q} = %v, want %v", handshakeErrorsTotal, reason, got, want)
				}
			}
			wantOK := 0.0
			if tt.wantErr == "" {
				wantOK = 1
			}
			if got := counter(t, reg, handshakesTotal, map[string]string{"result": "ok"}); got != wantOK {
				t.Errorf(`%s{result="ok"} = %v, want %v`, handshakesTotal, got, wantOK)
			}
		})
	}
}

func TestHandshakeProtocol(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	m := metrics.New(prometheus.NewRegistry())
	src := newSource(t, f, m)
	addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m))

	for _, tt := range []struct {
		name         string
		edit         func(*tls.Config)
		wantErr      string
		wantVersion  uint16
		wantProtocol string
	}{
		{name: "TLS 1.3 default", edit: func(*tls.Config) {}, wantVersion: tls.VersionTLS13},
		{name: "TLS 1.2 ECDHE-ECDSA-AES128-GCM", edit: func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		}, wantVersion: tls.VersionTLS12},
		{name: "TLS 1.2 ECDHE-ECDSA-CHACHA20", edit: func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
		}, wantVersion: tls.VersionTLS12},
		{name: "TLS 1.2 CBC only refused", edit: func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}
		}, wantErr: "handshake failure"},
		{name: "TLS 1.1 refused", edit: func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		}, wantErr: "protocol version"},
		{name: "ALPN h2", edit: func(c *tls.Config) { c.NextProtos = []string{"h2", "http/1.1"} },
			wantVersion: tls.VersionTLS13, wantProtocol: "h2"},
		{name: "ALPN http/1.1", edit: func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} },
			wantVersion: tls.VersionTLS13, wantProtocol: "http/1.1"},
		{name: "ALPN http/1.0 alone (curl --http1.0)", edit: func(c *tls.Config) { c.NextProtos = []string{"http/1.0"} },
			wantVersion: tls.VersionTLS13, wantProtocol: "http/1.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig(f, cname)
			tt.edit(cfg)
			cs, err := dial(addr, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("handshake error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if cs.Version != tt.wantVersion || cs.NegotiatedProtocol != tt.wantProtocol {
				t.Errorf("version, ALPN = %s, %q, want %s, %q",
					tls.VersionName(cs.Version), cs.NegotiatedProtocol, tls.VersionName(tt.wantVersion), tt.wantProtocol)
			}
		})
	}
}

func TestHandshakeRSA(t *testing.T) {
	dir := t.TempDir()
	root := certstest.NewRootCA(t, "Test Root")
	leaf := root.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}, KeyType: "rsa-2048"})
	f := certstest.Files{
		CertFile: certstest.WriteChain(t, dir, "chain.pem", leaf.CertPEM),
		KeyFile:  certstest.WriteFile(t, dir, "key.pem", leaf.KeyPEM),
		Root:     root,
		Leaf:     leaf,
	}
	m := metrics.New(prometheus.NewRegistry())
	src := newSource(t, f, m)
	addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m))
	for _, tt := range []struct {
		suite uint16
		ok    bool
	}{
		{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true},
		{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, false}, // no forward secrecy
	} {
		t.Run(tls.CipherSuiteName(tt.suite), func(t *testing.T) {
			cfg := clientConfig(f, cname)
			cfg.MaxVersion = tls.VersionTLS12
			cfg.CipherSuites = []uint16{tt.suite}
			_, err := dial(addr, cfg)
			if got := err == nil; got != tt.ok {
				t.Errorf("TLS 1.2 with %s: ok = %v (err %v), want %v", tls.CipherSuiteName(tt.suite), got, err, tt.ok)
			}
		})
	}
}

func TestSessionResumption(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src := newSource(t, f, m)
	addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m))
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cfg := clientConfig(f, cname)
			cfg.MaxVersion = version
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i, want := range []bool{false, true} {
				cs, err := dial(addr, cfg)
				if err != nil {
					t.Fatalf("connection %d: %v", i+1, err)
				}
				if cs.DidResume != want || cs.Version != version {
					t.Errorf("connection %d: DidResume, version = %v, %s, want %v, %s",
						i+1, cs.DidResume, tls.VersionName(cs.Version), want, tls.VersionName(version))
				}
			}
			// Each completed handshake is counted once, resumed or not.
			for _, resumed := range []string{"false", "true"} {
				labels := map[string]string{"result": "ok", "version": metrics.TLSVersion(version), "resumed": resumed}
				if got := counter(t, reg, handshakesTotal, labels); got != 1 {
					t.Errorf("%s%v = %v, want 1", handshakesTotal, labels, got)
				}
			}
		})
	}
}

func TestServerTLSConfig(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	cfg := certs.ServerTLSConfig(newSource(t, f, nil), certs.SNIPolicy{CName: cname}, nil)
	if cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != tls.VersionTLS13 {
		t.Errorf("versions = %s..%s, want TLS 1.2..TLS 1.3", tls.VersionName(cfg.MinVersion), tls.VersionName(cfg.MaxVersion))
	}
	if got, want := strings.Join(cfg.NextProtos, ","), "h2,http/1.1,http/1.0"; got != want {
		t.Errorf("NextProtos = %s, want %s", got, want)
	}
	if cfg.SessionTicketsDisabled || len(cfg.Certificates) != 0 {
		t.Errorf("SessionTicketsDisabled = %v, len(Certificates) = %d, want false, 0", cfg.SessionTicketsDisabled, len(cfg.Certificates))
	}
	if len(cfg.CipherSuites) != 6 {
		t.Errorf("len(CipherSuites) = %d, want 6", len(cfg.CipherSuites))
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("cipher suite %s is not ECDHE with AEAD", name)
		}
	}
	if c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: cname}); c == nil || err != nil {
		t.Errorf("GetCertificate(%q) = %v, %v, want the source's certificate", cname, c, err)
	}
	if cfg.VerifyConnection == nil {
		t.Errorf("VerifyConnection is nil, want the SNI policy's check of resumed sessions")
	}
}

// anyNameCache hands its one session to every server name, as a client
// trying to reuse a ticket for another name would.
type anyNameCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *anyNameCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *anyNameCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs != nil {
		c.cs = cs
	}
}

func TestResumptionForOtherNameRefused(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src := newSource(t, f, m)
	addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m))
	unrecognized := map[string]string{"reason": metrics.HandshakeUnrecognizedName}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cache := &anyNameCache{}
			cfg := clientConfig(f, cname)
			cfg.MaxVersion = version
			cfg.ClientSessionCache = cache
			if _, err := dial(addr, cfg); err != nil {
				t.Fatalf("first connection for %s: %v", cname, err)
			}
			if cs, err := dial(addr, cfg); err != nil || !cs.DidResume {
				t.Fatalf("second connection for %s: resumed %v, %v; want a resumed session", cname, cs.DidResume, err)
			}
			before := counter(t, reg, handshakeErrorsTotal, unrecognized)
			other := cfg.Clone()
			other.ServerName = "evil.example.com"
			other.InsecureSkipVerify = true
			if cs, err := dial(addr, other); err == nil {
				t.Errorf("resuming a %s session with SNI evil.example.com: resumed %v, no error; want it refused", cname, cs.DidResume)
			}
			if got := counter(t, reg, handshakeErrorsTotal, unrecognized); got != before+1 {
				t.Errorf("%s%v = %v, want %v", handshakeErrorsTotal, unrecognized, got, before+1)
			}
		})
	}
}

// TestGetCertificate calls the GetCertificate of ServerTLSConfig, which
// applies the SNI policy before asking the Source.
func TestGetCertificate(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src := newSource(t, f, m)
	cfg := certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m)
	for _, tt := range []struct {
		serverName string
		want       bool
	}{
		{cname, true}, {"API.example.com", true}, {"x.example.com", false}, {"", false},
	} {
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.serverName})
		if err != nil || (c != nil) != tt.want {
			t.Errorf("GetCertificate(%q) = %v, %v; want certificate %v and no error", tt.serverName, c, err, tt.want)
		}
		if c != nil && c != &src.Current().Certificate {
			t.Errorf("GetCertificate(%q) is not the current pair's certificate", tt.serverName)
		}
	}
	for _, reason := range []string{metrics.HandshakeUnrecognizedName, metrics.HandshakeMissingSNI} {
		if got := counter(t, reg, handshakeErrorsTotal, map[string]string{"reason": reason}); got != 1 {
			t.Errorf("%s{reason=%q} = %v, want 1", handshakeErrorsTotal, reason, got)
		}
	}
	// The Source itself leaves the policy to ServerTLSConfig.
	if c, err := src.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.example.com"}); c != &src.Current().Certificate || err != nil {
		t.Errorf("Source.GetCertificate(%q) = %v, %v; want the current pair's certificate", "x.example.com", c, err)
	}
}

func TestNewSourceErrors(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	for _, tt := range []struct {
		name      string
		cfg       certs.SourceConfig
		wantField string // for a *ConfigError
		wantErr   error  // for a *FileError
	}{
		{"no cert file", certs.SourceConfig{KeyFile: f.KeyFile, CName: cname}, "CertFile", nil},
		{"no key file", certs.SourceConfig{CertFile: f.CertFile, CName: cname}, "KeyFile", nil},
		{"no cname", certs.SourceConfig{CertFile: f.CertFile, KeyFile: f.KeyFile}, "CName", nil},
		{"name not covered", certs.SourceConfig{CertFile: f.CertFile, KeyFile: f.KeyFile, CName: "other.example.com"}, "", certs.ErrNameNotCovered},
		{"swapped files", certs.SourceConfig{CertFile: f.KeyFile, KeyFile: f.CertFile, CName: cname}, "", certs.ErrUnexpectedBlock},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, err := certs.NewSource(tt.cfg, zerolog.Nop())
			if err == nil || src != nil {
				t.Fatalf("NewSource = %v, %v; want an error", src, err)
			}
			var ce *certs.ConfigError
			if tt.wantField != "" && (!errors.As(err, &ce) || ce.Field != tt.wantField) {
				t.Errorf("NewSource error = %v, want a *ConfigError for %s", err, tt.wantField)
			}
			var fe *certs.FileError
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !errors.As(err, &fe)) {
				t.Errorf("NewSource error = %v, want a *FileError matching %v", err, tt.wantErr)
			}
		})
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, cname)
	var logs bytes.Buffer // written only by Reload, on this goroutine
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src, err := certs.NewSource(certs.SourceConfig{CertFile: f.CertFile, KeyFile: f.KeyFile, CName: cname, Metrics: m}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m))
	servedSerial := func() string {
		t.Helper()
		cs, err := dial(addr, clientConfig(f, cname))
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return cs.PeerCertificates[0].SerialNumber.Text(16)
	}
	if got, want := servedSerial(), f.Leaf.Cert.SerialNumber.Text(16); got != want {
		t.Fatalf("served serial = %s, want %s", got, want)
	}
	checkReloads := func(wantOK, wantErrors float64) {
		t.Helper()
		gotOK := counter(t, reg, reloadsTotal, map[string]string{"result": metrics.ResultOK})
		gotErrors := counter(t, reg, reloadsTotal, map[string]string{"result": metrics.ResultError})
		if gotOK != wantOK || gotErrors != wantErrors {
			t.Errorf("%s ok, error = %v, %v; want %v, %v", reloadsTotal, gotOK, gotErrors, wantOK, wantErrors)
		}
	}

	// A valid new pair is served from the next handshake on.
	next := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
	certstest.WriteChain(t, dir, "chain.pem", next.CertPEM, f.Intermediate.CertPEM)
	certstest.WriteFile(t, dir, "key.pem", next.KeyPEM)
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	want := next.Cert.SerialNumber.Text(16)
	if got := servedSerial(); got != want {
		t.Errorf("after Reload, served serial = %s, want %s", got, want)
	}
	if !src.Current().Leaf.Equal(next.Cert) {
		t.Errorf("Current() is not the new pair")
	}
	checkReloads(1, 0)
	if n := strings.Count(logs.String(), `"message":"certificate reloaded"`); n != 1 {
		t.Errorf("logged %d reload lines, want 1:\n%s", n, logs.String())
	}

	// Unchanged files publish nothing.
	before := src.Current()
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if src.Current() != before {
		t.Errorf("Reload of unchanged files replaced the pair")
	}
	checkReloads(1, 0)

	// Invalid files keep the old pair, and each failure is counted and
	// logged once.
	logs.Reset()
	certstest.WriteFile(t, dir, "chain.pem", []byte("garbage"))
	err = src.Reload()
	var fe *certs.FileError
	if !errors.Is(err, certs.ErrNoCertificate) || !errors.As(err, &fe) || fe.Role != certs.CertFileRole {
		t.Errorf("Reload error = %v, want a certificate-file *FileError matching ErrNoCertificate", err)
	}
	other := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
	certstest.WriteChain(t, dir, "chain.pem", other.CertPEM, f.Intermediate.CertPEM) // with next's key
	if err := src.Reload(); !errors.Is(err, certs.ErrKeyMismatch) {
		t.Errorf("Reload error = %v, want ErrKeyMismatch", err)
	}
	if got := servedSerial(); got != want {
		t.Errorf("after failed reloads, served serial = %s, want %s (the previous pair)", got, want)
	}
	if src.Current() != before {
		t.Errorf("failed reloads replaced the pair")
	}
	checkReloads(1, 2)
	if n := strings.Count(logs.String(), `"level":"warn"`); n != 2 {
		t.Errorf("logged %d warn lines for 2 failed reloads, want 2:\n%s", n, logs.String())
	}
	st := src.Status()
	if st.Source != "file" || !st.Leaf.Equal(next.Cert) || st.LastReload == nil || !errors.Is(st.LastReload.Err, certs.ErrKeyMismatch) {
		t.Errorf("Status() = %+v; want source file, the served leaf, and the last reload's ErrKeyMismatch", st)
	}

	// A try that is not final (a watcher that will try again) returns the
	// error but neither counts nor logs it, nor records it as the last
	// reload.
	logs.Reset()
	last := src.LastReload()
	if err := src.TryReload(false); !errors.Is(err, certs.ErrKeyMismatch) {
		t.Errorf("TryReload(false) error = %v, want ErrKeyMismatch", err)
	}
	checkReloads(1, 2)
	if logs.Len() != 0 {
		t.Errorf("TryReload(false) logged:\n%s\nwant nothing", logs.String())
	}
	if got := src.LastReload(); !got.At.Equal(last.At) || got.Err != last.Err {
		t.Errorf("after TryReload(false), LastReload() = %+v, want it unchanged: %+v", got, last)
	}
	if src.Current() != before {
		t.Errorf("TryReload(false) of invalid files replaced the pair")
	}
}

// TestReloadConcurrent runs handshakes while the pair is reloaded, for the
// race detector: every handshake must see one complete pair or the other.
func TestReloadConcurrent(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, cname)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src, err := certs.NewSource(certs.SourceConfig{CertFile: f.CertFile, KeyFile: f.KeyFile, CName: cname, Metrics: m}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m))
	pairs := []*certstest.Leaf{f.Leaf, f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})}
	serials := map[string]bool{}
	for _, l := range pairs {
		serials[l.Cert.SerialNumber.Text(16)] = true
	}

	const reloads = 20
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 5)
	wg.Go(func() {
		defer close(done)
		for i := 1; i <= reloads; i++ { // pairs[1] first: pairs[0] is being served
			l := pairs[i%2]
			if err := errors.Join(
				os.WriteFile(f.CertFile, slices.Concat(l.CertPEM, f.Intermediate.CertPEM), 0o600),
				os.WriteFile(f.KeyFile, l.KeyPEM, 0o600),
				src.Reload(),
			); err != nil {
				errs <- err
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				cs, err := dial(addr, clientConfig(f, cname))
				if err != nil {
					errs <- err
					return
				}
				if s := cs.PeerCertificates[0].SerialNumber.Text(16); !serials[s] {
					errs <- errors.New("served unknown serial " + s)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := counter(t, reg, reloadsTotal, map[string]string{"result": metrics.ResultOK}); got != reloads {
		t.Errorf(`%s{result="ok"} = %v, want %d`, reloadsTotal, got, reloads)
	}
}
