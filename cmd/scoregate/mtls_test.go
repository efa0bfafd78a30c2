package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
	"github.com/scoregate/scoregate/metrics"
)

// mtlsStatus sends one POST over HTTP/2 on a new connection (a full
// handshake, no session to resume) presenting cert, nil for none, and
// returns the status or the error. The certificate is sent whatever CAs the server names, as a
// client trying its luck would; crypto/tls's client, given Certificates,
// would send none.
func mtlsStatus(ts *testServer, roots *x509.CertPool, cert *tls.Certificate) (int, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "api.example.com"}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   cfg,
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ts.tlsAddr())
		},
	}}
	resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader("{}"))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return 0, errors.New("answered over " + resp.Proto + ", want HTTP/2")
	}
	return resp.StatusCode, nil
}

func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	trusted, other := certstest.NewClient(t, "trusted"), certstest.NewClient(t, "other")
	caFile := certstest.WriteFile(t, dir, "client-ca.pem", trusted.CA.CertPEM)
	be := newRecordingBackend(t)
	roots := poolOf(t, f.CAFile)
	for _, required := range []bool{true, false} {
		args := []string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
			"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL, "--client-ca-file", caFile}
		name := "optional"
		if required {
			args, name = append(args, "--client-cert-required"), "required"
		}
		t.Run(name, func(t *testing.T) {
			ts := startServe(t, args...)
			for _, tt := range []struct {
				name   string
				cert   *tls.Certificate
				reason string // "": served 200; else refused and counted with this reason
			}{
				{"certificate from the CA", &trusted.Cert, ""},
				{"no certificate", nil, map[bool]string{true: metrics.HandshakeClientCertRequired, false: ""}[required]},
				{"certificate from another CA", &other.Cert, metrics.HandshakeBadClientCert},
			} {
				t.Run(tt.name, func(t *testing.T) {
					reason := map[string]string{"reason": tt.reason}
					before := metricValue(t, ts.reg, "scoregate_tls_handshake_errors_total", reason)
					code, err := mtlsStatus(ts, roots, tt.cert)
					if tt.reason == "" {
						if err != nil || code != http.StatusOK {
							t.Fatalf("POST = %d, %v; want 200", code, err)
						}
						return
					}
					if err == nil {
						t.Fatalf("POST = %d; want the handshake refused", code)
					}
					// The server logs (and counts) the failure after the
					// client has seen it.
					waitFor(t, 5*time.Second, "the refusal counted as "+tt.reason, func() bool {
						return metricValue(t, ts.reg, "scoregate_tls_handshake_errors_total", reason) == before+1
					})
				})
			}
		})
	}
}

// TestServeClientCAReload replaces the CA file while scoregate runs: the
// new CA's clients get in and the old one's are refused; then a broken file
// is refused and the new CA stays in force.
func TestServeClientCAReload(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	first, second := certstest.NewClient(t, "first"), certstest.NewClient(t, "second")
	caFile := certstest.WriteFile(t, dir, "client-ca.pem", first.CA.CertPEM)
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL,
		"--client-ca-file", caFile, "--client-cert-required", "--reload-settle", "100ms")
	roots := poolOf(t, f.CAFile)
	served := func(id certstest.Client) bool {
		code, err := mtlsStatus(ts, roots, &id.Cert)
		return err == nil && code == http.StatusOK
	}
	if !served(first) || served(second) {
		t.Fatal("before the change: want the first CA's client served and the second's refused")
	}

	replace(t, caFile, second.CA.CertPEM)
	waitFor(t, 5*time.Second, "the second CA's client served", func() bool { return served(second) })
	if served(first) {
		t.Error("after the change: the first CA's client is still served")
	}

	replace(t, caFile, []byte("-----BEGIN CERTIFICATE-----\nbroken"))
	waitFor(t, 5*time.Second, "the failed reload logged", func() bool {
		return strings.Contains(ts.stderr.String(), "client CA reload failed")
	})
	if !served(second) || served(first) {
		t.Error("after a broken file: want the second CA still in force")
	}
}

func TestServeClientCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	be := newRecordingBackend(t)
	for _, tt := range []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "missing.pem"), "no such file"},
		{"not PEM", certstest.WriteFile(t, dir, "junk.pem", []byte("junk\n")), "no certificate found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseServe([]string{"--listen", "127.0.0.1:0", "--metrics-listen", "",
				"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
				"--backend", be.URL, "--client-ca-file", tt.file}, func(string) (string, bool) { return "", false }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := cfg.resolve(io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			s, err := newServer(sc, io.Discard)
			if err == nil {
				s.closeListeners()
				t.Fatal("newServer succeeded; want an error")
			}
			var ue usageError
			if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), `--client-ca-file "`+tt.file+`": `) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newServer error = %q; want a usage error starting --client-ca-file %q and mentioning %q", err, tt.file, tt.want)
			}
		})
	}
}
