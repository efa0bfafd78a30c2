package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
	"github.com/scoregate/scoregate/metrics"
)

// TestReadiness: /readyz as a function of the certificate's state and the
// backend's, each against each, for both certificate sources.
func TestReadiness(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	leaf := func(notBefore, notAfter time.Time) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{"api.example.com"}}
	}
	valid := leaf(now.Add(-time.Hour), now.Add(90*24*time.Hour))
	certStates := []struct {
		name       string
		status     certs.Status
		wantReason string // "" if the certificate does not stop readiness
	}{
		{"file, valid", certs.Status{Source: "file", Leaf: valid, LastReload: &certs.ReloadStatus{At: now}}, ""},
		{"acme, valid", certs.Status{Source: "acme", Leaf: valid}, ""},
		{"file, valid, last reload failed", certs.Status{Source: "file", Leaf: valid, LastReload: &certs.ReloadStatus{At: now, Err: errors.New("key does not match")}}, ""},
		{"file, expired while served", certs.Status{Source: "file", Leaf: leaf(now.Add(-48*time.Hour), now.Add(-time.Second))}, "the certificate expired at 2026-11-29T11:59:59Z"},
		{"file, expires this instant", certs.Status{Source: "file", Leaf: leaf(now.Add(-48*time.Hour), now)}, "the certificate expired at"},
		{"acme, expired, order failing", certs.Status{Source: "acme", Leaf: leaf(now.Add(-48*time.Hour), now.Add(-time.Hour)), LastError: errors.New("rate limited")}, "the last order failed: rate limited"},
		{"file, not yet valid", certs.Status{Source: "file", Leaf: leaf(now.Add(time.Hour), now.Add(48*time.Hour))}, "the certificate is not valid before 2026-11-29T13:00:00Z"},
		{"acme, none yet", certs.Status{Source: "acme", Pending: "ordering a certificate from https://ca.example"}, "no certificate yet: ordering a certificate from https://ca.example"},
		{"none", certs.Status{Source: "file"}, "no certificate loaded"},
	}
	up := metrics.BackendInfo{URL: "http://127.0.0.1:5001", Ready: true, Status: 200, CheckedAt: now}
	down := metrics.BackendInfo{URL: "http://127.0.0.1:5002", Status: 503, Error: "GET / answered 503", CheckedAt: now}
	unchecked := metrics.BackendInfo{URL: "http://127.0.0.1:5001"}
	svc := func(name string, ready bool, rs ...metrics.BackendInfo) metrics.ServiceInfo {
		return metrics.ServiceInfo{Name: name, Ready: ready, Replicas: rs}
	}
	backendStates := []struct {
		name       string
		info       []metrics.ServiceInfo
		wantReason string
	}{
		{"backend ready", []metrics.ServiceInfo{svc("default", true, up)}, ""},
		{"one of two replicas ready", []metrics.ServiceInfo{svc("default", true, down, up)}, ""},
		{"backend not checked yet", []metrics.ServiceInfo{svc("default", false, unchecked)}, "backend not checked yet"},
		{"backend down", []metrics.ServiceInfo{svc("default", false, down)}, "backend not ready: GET / answered 503"},
		{"no replicas", []metrics.ServiceInfo{svc("default", false)}, "backend has no replicas"},
		{"one service of two down", []metrics.ServiceInfo{svc("fraud", true, up), svc("churn", false, down)}, "service churn not ready: GET / answered 503"},
	}
	for _, cs := range certStates {
		for _, bs := range backendStates {
			t.Run(cs.name+"/"+bs.name, func(t *testing.T) {
				rd := readiness(now, cs.status, bs.info)
				want := cs.wantReason // the certificate's reason comes first
				if want == "" {
					want = bs.wantReason
				}
				if rd.Ready != (want == "") {
					t.Errorf("Ready = %v, want %v (reason %q)", rd.Ready, want == "", rd.Reason)
				}
				if want != "" && !strings.HasPrefix(rd.Reason, want) && !strings.Contains(rd.Reason, want) {
					t.Errorf("Reason = %q, want it to contain %q", rd.Reason, want)
				}
				if want == "" && rd.Reason != "" {
					t.Errorf("Reason = %q, want none", rd.Reason)
				}
				if (cs.status.Leaf != nil) != (rd.Certificate != nil) {
					t.Errorf("Certificate = %+v, want it present exactly when a leaf is served", rd.Certificate)
				}
				if rd.Certificate != nil && rd.Certificate.Source != cs.status.Source {
					t.Errorf("Certificate.Source = %q, want %q", rd.Certificate.Source, cs.status.Source)
				}
				if (cs.status.LastReload != nil) != (rd.LastReload != nil) {
					t.Errorf("LastReload = %+v, want it present exactly for files", rd.LastReload)
				}
				if len(rd.Services) != len(bs.info) {
					t.Errorf("Services = %+v, want the last checks %+v", rd.Services, bs.info)
				}
			})
		}
	}
}

// readyzJSON fetches and decodes /readyz.
func readyzJSON(t *testing.T, ts *testServer) (int, metrics.Readiness) {
	t.Helper()
	resp, err := http.Get("http://" + ts.addr("metrics-listen") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rd metrics.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rd
}

// TestServeCertificateExpiresWhileServed: a PEM certificate that expires
// while it is served turns /readyz 503 at that moment, with the reason and
// one error line; a fresh pair on disk brings it back. The few seconds of
// validity are the behaviour under test.
func TestServeCertificateExpiresWhileServed(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	short := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{"api.example.com"}, NotAfter: time.Now().Add(3 * time.Second)})
	replace(t, f.KeyFile, short.KeyPEM)
	replace(t, f.CertFile, append(append([]byte{}, short.CertPEM...), f.Intermediate.CertPEM...))
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL, "--health-interval", "50ms")
	waitFor(t, 5*time.Second, "/readyz 200 with the short-lived certificate", func() bool { code, _ := readyzJSON(t, ts); return code == 200 })
	waitFor(t, 10*time.Second, "/readyz 503 once the certificate has expired", func() bool {
		code, rd := readyzJSON(t, ts)
		return code == 503 && strings.Contains(rd.Reason, "the certificate expired at")
	})
	waitFor(t, 5*time.Second, "the expiry error line", func() bool { return strings.Contains(ts.stderr.String(), "has expired") })
	if n := strings.Count(ts.stderr.String(), "has expired"); n != 1 {
		t.Errorf("%d expiry lines, want exactly 1:\n%s", n, ts.stderr)
	}
	chain, key, _ := newLeafFiles(t, f)
	replace(t, f.KeyFile, key)
	replace(t, f.CertFile, chain)
	waitFor(t, 10*time.Second, "/readyz 200 with the fresh pair", func() bool { code, _ := readyzJSON(t, ts); return code == 200 })
}

// TestServerFromConfig: a server built from a Go config, no flags, serves
// a request.
func TestServerFromConfig(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	u, _ := url.Parse(be.URL)
	s, err := newServer(serverConfig{
		Listen:   "127.0.0.1:0",
		Backends: []*url.URL{u},
		CName:    "api.example.com",
		CertFile: f.CertFile,
		KeyFile:  f.KeyFile,
		Roots:    poolOf(t, f.CAFile),
		Log:      zerolog.New(io.Discard),
	}, io.Discard)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	ts := &testServer{server: s}
	c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", true)
	resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader(`{"data":[[1,2]]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /score: %d %s, want 200", resp.StatusCode, body)
	}
	if be.lastHeader() == nil {
		t.Error("the backend got no POST")
	}
}
