package main

import (
	"crypto/tls"
	"math/big"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// servedSerial does a verified handshake with the server and returns the
// leaf's serial.
func servedSerial(t *testing.T, ts *testServer, f certstest.Files) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", ts.tlsAddr(), &tls.Config{RootCAs: poolOf(t, f.CAFile), ServerName: "api.example.com"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// replace writes b to name by rename, as a careful operator would.
func replace(t *testing.T, name string, b []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

func newLeafFiles(t *testing.T, f certstest.Files) (chain, key []byte, serial *big.Int) {
	l := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{"api.example.com"}})
	return append(append([]byte{}, l.CertPEM...), f.Intermediate.CertPEM...), l.KeyPEM, l.Cert.SerialNumber
}

func TestServeReloadsCertificateOnChange(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL)
	chain, key, serial := newLeafFiles(t, f)
	replace(t, f.KeyFile, key)
	replace(t, f.CertFile, chain)
	waitFor(t, 2*time.Second, "the new certificate to be served", func() bool { return servedSerial(t, ts, f).Cmp(serial) == 0 })
}

func TestServeSIGHUPReloads(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	// --watch=false: only SIGHUP may pick up the change.
	// SIGHUP registered as runServe registers it (an in-process server such
	// as bench's does not).
	hup := notifySIGHUP()
	t.Cleanup(func() { signal.Stop(hup) })
	ts := startServeHooked(t, nil, func(s *server) { s.reload = hup }, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL, "--watch=false")
	old := servedSerial(t, ts, f)
	chain, key, serial := newLeafFiles(t, f)
	replace(t, f.KeyFile, key)
	replace(t, f.CertFile, chain)
	if got := servedSerial(t, ts, f); got.Cmp(old) != 0 {
		t.Fatalf("with --watch=false the certificate changed without SIGHUP")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new certificate after SIGHUP", func() bool { return servedSerial(t, ts, f).Cmp(serial) == 0 })
	if !strings.Contains(ts.stderr.String(), "SIGHUP: reloading") {
		t.Errorf("log has no SIGHUP line:\n%s", ts.stderr)
	}
}

const (
	authA = "key-a-0123456789abcdef0123456789"
	authB = "key-b-0123456789abcdef0123456789"
	authC = "key-c-0123456789abcdef0123456789"
	authD = "key-d-0123456789abcdef0123456789"
)

// TestServeAuthKeyRotationUnderLoad rotates the keys the Azure ML way while
// clients keep scoring: swap in a new secondary, move the clients to it,
// promote it. Clients always hold a key valid before and after each change,
// so no request may get 401.
func TestServeAuthKeyRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	keyFile := filepath.Join(dir, "auth-keys")
	if err := os.WriteFile(keyFile, []byte(authA+"\n"+authB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL, "--auth-key-file", keyFile)
	roots := poolOf(t, f.CAFile)

	status := func(c *http.Client, key string) int {
		req, _ := http.NewRequest("POST", "https://api.example.com/score", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := c.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	var clientKey atomic.Value // what the clients send
	clientKey.Store(authA)
	var (
		done     atomic.Bool
		okN      atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
	)
	for i := range 4 {
		c := ts.client(t, roots, "api.example.com", i%2 == 1)
		wg.Go(func() {
			for !done.Load() {
				key := clientKey.Load().(string)
				if code := status(c, key); code != 200 {
					mu.Lock()
					failures = append(failures, key[:5]+": "+http.StatusText(code))
					mu.Unlock()
					continue
				}
				okN.Add(1)
			}
		})
	}
	probe := ts.client(t, roots, "api.example.com", false)
	accepted := func(key string) func() bool { return func() bool { return status(probe, key) == 200 } }
	refused := func(key string) func() bool { return func() bool { return status(probe, key) == 401 } }

	for _, step := range []struct{ file, newKey, oldKey string }{
		{authA + "\n" + authC, authC, authB}, // swap in a new secondary C, retire B
		{authC, "", authA},                   // clients moved to C: promote it, retire A
		{authC + "\n" + authD, authD, ""},    // next round
		{authD, "", authC},
	} {
		replace(t, keyFile, []byte(step.file+"\n"))
		if step.newKey != "" {
			waitFor(t, 2*time.Second, "the new key to be accepted", accepted(step.newKey))
			clientKey.Store(step.newKey) // move the clients
		}
		if step.oldKey != "" {
			waitFor(t, 2*time.Second, "the retired key to be refused", refused(step.oldKey))
		}
	}
	done.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during the rotation; first: %s", len(failures), okN.Load()+int64(len(failures)), failures[0])
	}
	if okN.Load() == 0 {
		t.Error("no request succeeded")
	}
}
