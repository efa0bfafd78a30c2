package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
	"github.com/scoregate/scoregate/metrics"
)

// always returns a GetClientCertificate that sends cert whatever CAs the
// server names: crypto/tls's client, given Certificates, sends none that
// another CA issued, but a client that wants in would.
func always(cert *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
}

// handshakeResult is the server's side of a handshake.
type handshakeResult struct {
	cs  tls.ConnectionState
	err error
}

// serveMTLS is serve that also hands the server's side of each handshake to
// the test.
func serveMTLS(t *testing.T, cfg *tls.Config) (addr string, results <-chan handshakeResult) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan handshakeResult, 16)
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
				tc := c.(*tls.Conn)
				err := tc.Handshake()
				ch <- handshakeResult{tc.ConnectionState(), err}
				if err == nil {
					c.Write([]byte{'x'})
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

// serverSide returns the server's side of the next handshake.
func serverSide(t *testing.T, results <-chan handshakeResult) handshakeResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(ioTimeout):
		t.Fatal("no handshake on the server")
		return handshakeResult{}
	}
}

func TestVerifyClientCerts(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	trusted, other := certstest.NewClient(t, "trusted"), certstest.NewClient(t, "other")
	caFile := certstest.WriteFile(t, t.TempDir(), "client-ca.pem", trusted.CA.CertPEM)
	cas, err := certs.LoadClientCAs(caFile, zerolog.New(t.Output()))
	if err != nil {
		t.Fatal(err)
	}
	for _, required := range []bool{true, false} {
		cfg := certs.ServerTLSConfig(newSource(t, f, nil), certs.SNIPolicy{CName: cname}, nil)
		certs.VerifyClientCerts(cfg, cas, required)
		addr, results := serveMTLS(t, cfg)
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			for _, tt := range []struct {
				name   string
				client *tls.Certificate
				reason string // the handshake error's metrics reason; "": served
			}{
				{"trusted certificate", &trusted.Cert, ""},
				{"no certificate", nil, map[bool]string{true: metrics.HandshakeClientCertRequired, false: ""}[required]},
				{"certificate of another CA", &other.Cert, metrics.HandshakeBadClientCert},
			} {
				t.Run(tls.VersionName(version)+"/required="+map[bool]string{true: "yes", false: "no"}[required]+"/"+tt.name, func(t *testing.T) {
					ccfg := clientConfig(f, cname)
					ccfg.MaxVersion = version
					if tt.client != nil {
						ccfg.GetClientCertificate = always(tt.client)
					}
					_, err := dial(addr, ccfg)
					srv := serverSide(t, results)
					if tt.reason != "" {
						if err == nil || srv.err == nil {
							t.Fatalf("handshake: client %v, server %v; want it refused", err, srv.err)
						}
						if got := certs.HandshakeErrorReason(srv.err.Error()); got != tt.reason {
							t.Errorf("HandshakeErrorReason(%q) = %q, want %q", srv.err, got, tt.reason)
						}
						return
					}
					if err != nil || srv.err != nil {
						t.Fatalf("handshake: client %v, server %v; want it served", err, srv.err)
					}
					// The request path reads the client from VerifiedChains.
					var got []string
					for _, chain := range srv.cs.VerifiedChains {
						for _, c := range chain {
							got = append(got, c.Subject.CommonName)
						}
					}
					want := map[bool]string{true: "trusted,trusted CA", false: ""}[tt.client != nil]
					if strings.Join(got, ",") != want {
						t.Errorf("server's VerifiedChains = %q, want %q", got, want)
					}
				})
			}
		}
	}
}

// TestVerifyClientCertsSeesReload checks that a reload applies to the next
// handshake, resumed sessions included: a session established with a
// certificate of a CA that has since left the file is not resumed.
func TestVerifyClientCertsSeesReload(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	first, second := certstest.NewClient(t, "first"), certstest.NewClient(t, "second")
	caFile := certstest.WriteFile(t, t.TempDir(), "client-ca.pem", first.CA.CertPEM)
	cas, err := certs.LoadClientCAs(caFile, zerolog.New(t.Output()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := certs.ServerTLSConfig(newSource(t, f, nil), certs.SNIPolicy{CName: cname}, nil)
	certs.VerifyClientCerts(cfg, cas, true)
	addr, _ := serveMTLS(t, cfg)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			writeFile(t, caFile, first.CA.CertPEM)
			must(t, cas.Reload())
			client := func(p certstest.Client) *tls.Config {
				c := clientConfig(f, cname)
				c.MaxVersion = version
				c.GetClientCertificate = always(&p.Cert)
				c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				return c
			}
			old, next := client(first), client(second)
			if _, err := dial(addr, old); err != nil {
				t.Fatalf("first CA's client: %v", err)
			}
			if cs, err := dial(addr, old); err != nil || !cs.DidResume {
				t.Fatalf("first CA's client again: resumed %v, %v; want a resumed session", cs.DidResume, err)
			}
			if _, err := dial(addr, next); err == nil {
				t.Fatal("second CA's client served before the second CA is in the file")
			}
			writeFile(t, caFile, second.CA.CertPEM)
			must(t, cas.Reload())
			if _, err := dial(addr, next); err != nil {
				t.Errorf("second CA's client after the reload: %v", err)
			}
			if cs, err := dial(addr, old); err == nil {
				t.Errorf("first CA's client after the reload: served (resumed %v); want it refused", cs.DidResume)
			}
		})
	}
}

func TestVerifyClientCertsLeavesACMEValidationAlone(t *testing.T) {
	caFile := certstest.WriteFile(t, t.TempDir(), "client-ca.pem", certstest.NewClient(t, "c").CA.CertPEM)
	cas, err := certs.LoadClientCAs(caFile, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{}
	certs.VerifyClientCerts(cfg, cas, true)
	for _, tt := range []struct {
		protos []string
		want   tls.ClientAuthType
	}{
		{[]string{"acme-tls/1"}, tls.NoClientCert},
		{[]string{"h2", "acme-tls/1"}, tls.RequireAndVerifyClientCert},
		{nil, tls.RequireAndVerifyClientCert},
	} {
		c, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{SupportedProtos: tt.protos})
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.ClientAuth
		if c != nil {
			got = c.ClientAuth
		}
		if got != tt.want {
			t.Errorf("ALPN %q: ClientAuth = %v, want %v", tt.protos, got, tt.want)
		}
	}
}

func TestLoadClientCAsErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		path string
		want error
	}{
		{"missing", filepath.Join(dir, "missing.pem"), fs.ErrNotExist},
		{"not PEM", certstest.WriteFile(t, dir, "junk.pem", []byte("not a certificate\n")), certs.ErrNoCertificate},
		{"a private key", certstest.WriteFile(t, dir, "key.pem", certstest.NewRootCA(t, "x").Leaf(t, certstest.LeafOptions{}).KeyPEM), certs.ErrUnexpectedBlock},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certs.LoadClientCAs(tt.path, zerolog.Nop())
			var fe *certs.FileError
			if !errors.Is(err, tt.want) || !errors.As(err, &fe) || fe.Path != tt.path || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("LoadClientCAs(%s) = %v; want a *FileError naming the file and matching %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestClientCAsReload(t *testing.T) {
	dir := t.TempDir()
	first, second := certstest.NewRootCA(t, "first CA"), certstest.NewRootCA(t, "second CA")
	caFile := certstest.WriteFile(t, dir, "client-ca.pem", first.CertPEM)
	var logs bytes.Buffer // written only by the reloads below, on this goroutine
	cas, err := certs.LoadClientCAs(caFile, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	trusts := func(ca *certstest.CA) bool {
		_, err := ca.Cert.Verify(x509.VerifyOptions{Roots: cas.Pool()})
		return err == nil
	}
	if !trusts(first) || trusts(second) {
		t.Fatal("after LoadClientCAs: want the first CA only")
	}
	if cas.Path() != caFile {
		t.Errorf("Path() = %q, want %q", cas.Path(), caFile)
	}

	must(t, cas.Reload())
	if logs.Len() != 0 {
		t.Errorf("a reload of an unchanged file logged %q, want nothing", logs.String())
	}

	writeFile(t, caFile, []byte("-----BEGIN CERTIFICATE-----\ntruncated"))
	if err := cas.TryReload(false); err == nil {
		t.Error("TryReload(false) of a broken file = nil, want an error")
	}
	if logs.Len() != 0 {
		t.Errorf("a try that was not final logged %q, want nothing", logs.String())
	}
	if err := cas.Reload(); err == nil || !strings.Contains(err.Error(), caFile) {
		t.Errorf("Reload of a broken file = %v, want an error naming the file", err)
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "previous client CAs stay in force") {
		t.Errorf("log after a failed reload = %q, want one warn line", logs.String())
	}
	if !trusts(first) {
		t.Error("after a failed reload: the first CA is no longer trusted")
	}

	logs.Reset()
	writeFile(t, caFile, second.CertPEM)
	must(t, cas.Reload())
	if trusts(first) || !trusts(second) {
		t.Error("after reloading the second CA: want the second CA only")
	}
	if !strings.Contains(logs.String(), "client CAs reloaded") {
		t.Errorf("log after a reload = %q, want the reload logged", logs.String())
	}
}
