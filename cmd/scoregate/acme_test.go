package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/acmetest"
)

// startACMEServe starts Pebble pointed at pre-bound listeners for the TLS
// and HTTP sides, then `scoregate serve --acme` on those listeners.
func startACMEServe(t *testing.T, storage string, args ...string) (*testServer, *acmetest.Pebble) {
	t.Helper()
	tlsLn, httpLn := listenLocal(t), listenLocal(t)
	pebble := acmetest.Start(t, acmetest.Options{
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port,
		TLSPort:  tlsLn.Addr().(*net.TCPAddr).Port,
	})
	caRoot := filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(caRoot, pebble.TLSRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	be := newRecordingBackend(t)
	args = append([]string{"--acme", "--acme-ca", pebble.DirectoryURL, "--acme-ca-root", caRoot,
		"--storage", storage, "--backend", be.URL, "--http-listen", httpLn.Addr().String(),
		"--acme-dns-resolver", pebble.DNSAddr}, args...)
	ts := startServeWith(t, map[string]net.Listener{"listen": tlsLn, "http-listen": httpLn}, args...)
	return ts, pebble
}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func readyz(t *testing.T, ts *testServer) (int, string) {
	resp, err := http.Get("http://" + ts.addr("metrics-listen") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeACME obtains a certificate from Pebble through scoregate's own
// listeners, serves the scoring backend with it, and reports readiness.
func TestServeACME(t *testing.T) {
	ts, pebble := startACMEServe(t, acmetest.Storage(t), "--ssl-cname", "score.example.test")

	waitFor(t, 30*time.Second, "/readyz to report the ACME certificate", func() bool {
		code, body := readyz(t, ts)
		return code == 200 && strings.Contains(body, `"source":"acme"`)
	})
	c := ts.client(t, pebble.Roots, "score.example.test", true)
	resp, err := c.Post("https://score.example.test/score", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST /score over the ACME certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST /score = %d, want 200", resp.StatusCode)
	}
	// The same SNI policy as with PEM files.
	if conn, err := tls.Dial("tcp", ts.tlsAddr(), &tls.Config{ServerName: "other.example.test", InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Error("handshake for another name succeeded, want unrecognized_name")
	} else if !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("handshake for another name: %v, want unrecognized_name", err)
	}
	if got := pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1", got)
	}
	if got := metricValue(t, ts.reg, "scoregate_acme_orders_total", nil); got != 1 {
		t.Errorf("scoregate_acme_orders_total = %v, want 1", got)
	}
	if got := metricValue(t, ts.reg, "scoregate_certificate_expiry_timestamp_seconds", map[string]string{"source": "acme"}); got == 0 {
		t.Error("scoregate_certificate_expiry_timestamp_seconds{source=acme} is not set")
	}
}

// TestServeACMELeafDomainLabel derives the name from --leaf-domain-label,
// prints it, and keeps it across restarts on the same storage.
func TestServeACMELeafDomainLabel(t *testing.T) {
	storage := acmetest.Storage(t)
	ts, _ := startACMEServe(t, storage, "--leaf-domain-label", "fraud", "--region", "westeurope")
	name := ts.cfg.CName
	if !strings.HasPrefix(name, "fraud") || !strings.HasSuffix(name, ".westeurope.cloudapp.azure.com") || len(name) != len("fraud")+6+len(".westeurope.cloudapp.azure.com") {
		t.Fatalf("derived name %q, want fraud + 6 characters + .westeurope.cloudapp.azure.com", name)
	}
	waitFor(t, 5*time.Second, "the name on stdout", func() bool { return strings.Contains(ts.stdout.String(), name) })
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	again, _ := startACMEServe(t, storage, "--leaf-domain-label", "fraud", "--region", "westeurope")
	if again.cfg.CName != name {
		t.Errorf("after a restart the name is %q, want the stored %q", again.cfg.CName, name)
	}
}

// TestServeACMENotReadyWhileCAUnreachable: no certificate yet, so /readyz
// says why and handshakes fail cleanly.
func TestServeACMENotReadyWhileCAUnreachable(t *testing.T) {
	closed := listenLocal(t)
	dir := "https://" + closed.Addr().String() + "/dir"
	closed.Close()
	be := newRecordingBackend(t)
	dns := acmetest.StartDNS(t)
	dns.Add("score.example.test")
	ts := startServe(t, "--acme", "--acme-ca", dir, "--storage", acmetest.Storage(t), "--ssl-cname", "score.example.test", "--backend", be.URL,
		"--acme-dns-resolver", dns.Addr)
	waitFor(t, 10*time.Second, "/readyz to name the failed order", func() bool {
		code, body := readyz(t, ts)
		return code == 503 && strings.Contains(body, "no certificate yet") && strings.Contains(body, "connection refused")
	})
	if conn, err := tls.Dial("tcp", ts.tlsAddr(), &tls.Config{ServerName: "score.example.test", InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Error("handshake without a certificate succeeded")
	}
	if got := metricValue(t, ts.reg, "scoregate_acme_failures_total", nil); got < 1 {
		t.Errorf("scoregate_acme_failures_total = %v, want at least 1", got)
	}
}
