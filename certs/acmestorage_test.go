package certs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/acmetest"
)

// The log line of a failed storage operation.
const storageFailedLog = `"message":"ACME storage failed; certificates cannot be obtained or renewed until it works"`

func TestNewACMERefusesUnusableStorage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, []byte("not a directory"))
	readOnly := filepath.Join(dir, "read-only")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, storage, wantErr string
		asRoot                 bool // whether the case holds for root, whom file modes do not stop
	}{
		{"under a regular file", filepath.Join(file, "acme"), "not a directory", true},
		{"a regular file", file, "not a directory", true},
		{"a read-only directory", readOnly, "permission denied", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.asRoot && os.Geteuid() == 0 {
				t.Skip("root writes whatever the mode says")
			}
			a, err := certs.NewACME(certs.ACMEConfig{CName: "api.example.com", Storage: tt.storage, TLSAddr: ":443"}, zerolog.Nop())
			if err == nil {
				a.Stop()
				t.Fatalf("NewACME with storage %s: nil error, want one", tt.storage)
			}
			var ce *certs.ConfigError
			if !errors.As(err, &ce) || ce.Field != "Storage" || ce.Value != tt.storage {
				t.Errorf("NewACME error = %v (%T), want a *certs.ConfigError for Storage %q", err, err, tt.storage)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewACME error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	t.Run("created, probed, left clean", func(t *testing.T) {
		storage := filepath.Join(dir, "new", "acme")
		a, err := certs.NewACME(certs.ACMEConfig{CName: "api.example.com", Storage: storage, TLSAddr: ":443"}, zerolog.Nop())
		if err != nil {
			t.Fatalf("NewACME: %v", err)
		}
		a.Stop()
		entries, err := os.ReadDir(storage)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("storage holds %s after NewACME, want nothing left of the probe", e.Name())
		}
	})
}

// breakStorage replaces the directory storage by a regular file, as a
// volume that is gone or a file system that refuses writes would (file
// modes do not stop root, as whom tests may run). It returns where the
// directory went.
func breakStorage(t *testing.T, storage string) string {
	t.Helper()
	moved := storage + ".moved"
	if err := os.Rename(storage, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(moved) })
	writeFile(t, storage, []byte("not a directory"))
	return moved
}

// TestACMEStorageFailingBeforeTheOrder: storage that fails after NewACME
// is counted, shown in Status and logged, and nothing is ordered; once it
// works again the certificate is ordered.
func TestACMEStorageFailingBeforeTheOrder(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "brokenstore.scoregate.test"
	storage := acmetest.Storage(t)
	cfg := e.config(name, storage)
	cfg.DNSCheckInterval, cfg.DNSCheckMaxInterval = testDNSCheckInterval, testDNSCheckMaxInterval
	a := e.newACME(t, cfg)
	e.use(a)
	moved := breakStorage(t, storage)
	start(t, a)

	waitFor(t, 5*time.Second, "a storage failure counted", func() bool { return a.counts(t).Failures >= 1 })
	st := a.Status()
	if st.LastError == nil || !strings.Contains(st.LastError.Error(), `storage "`+storage+`"`) || !strings.Contains(st.LastError.Error(), "not a directory") {
		t.Errorf("Status().LastError = %v, want it to name storage %q and the error", st.LastError, storage)
	}
	if !strings.Contains(st.Pending, "the ACME storage failed") {
		t.Errorf("Status().Pending = %q, want it to say the storage failed", st.Pending)
	}
	if !strings.Contains(e.out.String(), storageFailedLog) {
		t.Errorf("no log line for the storage failure in:\n%s", e.out)
	}
	if got := e.pebble.Orders(); got != 0 {
		t.Errorf("Pebble saw %d orders, want 0", got)
	}

	// The storage comes back.
	if err := os.Remove(storage); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moved, storage); err != nil {
		t.Fatal(err)
	}
	waitReady(t, a)
	if got := e.pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1", got)
	}
}

// TestACMEStorageFailingAfterTheCertificate: a renewal that fails on the
// storage (certmagic's storage check, which it reports only in a log
// line) is counted and shown in Status, and the certificate in hand is
// still served.
func TestACMEStorageFailingAfterTheCertificate(t *testing.T) {
	// As TestACMERenewsNearExpiry: 8-second certificates, renewed about
	// 2.5 s after issuance.
	e := newACMEEnv(t, 8*time.Second)
	const name = "lostvolume.scoregate.test"
	storage := acmetest.Storage(t)
	cfg := e.config(name, storage)
	cfg.RenewalWindowRatio = 0.7
	cfg.RenewCheckInterval = 200 * time.Millisecond
	a := e.newACME(t, cfg)
	e.use(a)
	start(t, a)
	waitReady(t, a)
	if got := a.counts(t); got != (acmeCounts{Orders: 1}) {
		t.Fatalf("ACME counters = %+v before the storage broke, want one order", got)
	}
	breakStorage(t, storage)

	waitFor(t, issueTimeout, "a storage failure counted", func() bool { return a.counts(t).Failures >= 1 })
	st := a.Status()
	t.Logf("Status().LastError = %v", st.LastError)
	if st.LastError == nil || !strings.Contains(st.LastError.Error(), `storage "`+storage+`"`) {
		t.Errorf("Status().LastError = %v, want it to name storage %q", st.LastError, storage)
	}
	if st.Leaf == nil {
		t.Error("Status().Leaf = nil, want the certificate in hand")
	}
	if _, err := e.handshake(name); err != nil {
		t.Errorf("handshake while the storage fails: %v", err)
	}
	if !strings.Contains(e.out.String(), storageFailedLog) {
		t.Errorf("no log line for the storage failure in:\n%s", e.out)
	}
}
