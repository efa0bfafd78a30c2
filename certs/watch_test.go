package certs_test

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
	"github.com/scoregate/scoregate/metrics"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pairBytes is a certificate chain and key as PEM, with the leaf's serial.
type pairBytes struct {
	cert, key []byte
	serial    *big.Int
}

func mintPair(t *testing.T, f certstest.Files, opts certstest.LeafOptions) pairBytes {
	t.Helper()
	if opts.DNSNames == nil {
		opts.DNSNames = []string{cname}
	}
	l := f.Intermediate.Leaf(t, opts)
	chain := append(append([]byte{}, l.CertPEM...), f.Intermediate.CertPEM...)
	return pairBytes{cert: chain, key: l.KeyPEM, serial: l.Cert.SerialNumber}
}

// gap is how far apart the "a moment apart" updates write certificate and
// key: longer than the debounce, so that a reload sees the mismatched pair
// in between. It simulates a slow writer; nothing waits on it.
const (
	testDebounce = 50 * time.Millisecond
	gap          = 3 * testDebounce
)

// A method writes a new pair into a volume the way one kind of writer does.
type method struct {
	name string
	// setup prepares dir and returns the certificate and key paths.
	setup func(t *testing.T, dir string, p pairBytes) (certFile, keyFile string)
	// update installs p.
	update func(t *testing.T, dir string, p pairBytes)
}

func plainSetup(t *testing.T, dir string, p pairBytes) (string, string) {
	writeFile(t, filepath.Join(dir, "cert.pem"), p.cert)
	writeFile(t, filepath.Join(dir, "key.pem"), p.key)
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

func renameInto(t *testing.T, dir, name string, b []byte) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	writeFile(t, tmp, b)
	must(t, os.Rename(tmp, filepath.Join(dir, name)))
}

// kubeletSwap does what the kubelet's AtomicWriter does to a Secret volume:
// the data goes into a new timestamped directory, "..data_tmp" is pointed
// at it and renamed over "..data", and the old directory is removed. The
// visible names are symlinks into "..data", made once.
func kubeletSwap(t *testing.T, dir string, p pairBytes, first bool) {
	ts := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), time.Now().UnixNano())
	must(t, os.Mkdir(filepath.Join(dir, ts), 0o755))
	writeFile(t, filepath.Join(dir, ts, "tls.crt"), p.cert)
	writeFile(t, filepath.Join(dir, ts, "tls.key"), p.key)
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	must(t, os.Symlink(ts, filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	if first {
		must(t, os.Symlink("..data/tls.crt", filepath.Join(dir, "tls.crt")))
		must(t, os.Symlink("..data/tls.key", filepath.Join(dir, "tls.key")))
	} else {
		must(t, os.RemoveAll(filepath.Join(dir, old)))
	}
}

var methods = []method{
	{"rewrite in place", plainSetup, func(t *testing.T, dir string, p pairBytes) {
		writeFile(t, filepath.Join(dir, "cert.pem"), p.cert)
		writeFile(t, filepath.Join(dir, "key.pem"), p.key)
	}},
	{"replace by rename", plainSetup, func(t *testing.T, dir string, p pairBytes) {
		renameInto(t, dir, "cert.pem", p.cert)
		renameInto(t, dir, "key.pem", p.key)
	}},
	{"delete and re-create", plainSetup, func(t *testing.T, dir string, p pairBytes) {
		must(t, os.Remove(filepath.Join(dir, "cert.pem")))
		must(t, os.Remove(filepath.Join(dir, "key.pem")))
		writeFile(t, filepath.Join(dir, "cert.pem"), p.cert)
		writeFile(t, filepath.Join(dir, "key.pem"), p.key)
	}},
	{"kubernetes secret swap", func(t *testing.T, dir string, p pairBytes) (string, string) {
		kubeletSwap(t, dir, p, true)
		return filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	}, func(t *testing.T, dir string, p pairBytes) { kubeletSwap(t, dir, p, false) }},
	{"one file with the key and the chain (Key Vault's PEM), replaced by rename", func(t *testing.T, dir string, p pairBytes) (string, string) {
		writeFile(t, filepath.Join(dir, "kv.pem"), append(append([]byte{}, p.key...), p.cert...))
		return filepath.Join(dir, "kv.pem"), filepath.Join(dir, "kv.pem")
	}, func(t *testing.T, dir string, p pairBytes) {
		renameInto(t, dir, "kv.pem", append(append([]byte{}, p.key...), p.cert...))
	}},
	{"key first, certificate a moment later", plainSetup, func(t *testing.T, dir string, p pairBytes) {
		renameInto(t, dir, "key.pem", p.key)
		time.Sleep(gap)
		renameInto(t, dir, "cert.pem", p.cert)
	}},
	{"certificate first, key a moment later", plainSetup, func(t *testing.T, dir string, p pairBytes) {
		renameInto(t, dir, "cert.pem", p.cert)
		time.Sleep(gap)
		renameInto(t, dir, "key.pem", p.key)
	}},
}

// watched is a Source being watched and served on 127.0.0.1.
type watched struct {
	src  *certs.Source
	reg  *prometheus.Registry // the Source's and the server's metrics
	addr string
	f    certstest.Files
}

func startWatched(t *testing.T, f certstest.Files, certFile, keyFile string, cfg certs.WatchConfig) *watched {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src, err := certs.NewSource(certs.SourceConfig{CertFile: certFile, KeyFile: keyFile, CName: cname, Metrics: m}, zerolog.New(t.Output()))
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { src.Watch(ctx, cfg) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &watched{src: src, reg: reg, addr: serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, m)), f: f}
}

// reloads returns the reloads counted so far: those that published a
// changed pair, and those that were refused.
func (w *watched) reloads(t *testing.T) (ok, failed float64) {
	t.Helper()
	return counter(t, w.reg, reloadsTotal, map[string]string{"result": metrics.ResultOK}),
		counter(t, w.reg, reloadsTotal, map[string]string{"result": metrics.ResultError})
}

// servedSerial does a full, verified handshake and returns the leaf's serial.
func (w *watched) servedSerial() (*big.Int, error) {
	cs, err := dial(w.addr, clientConfig(w.f, cname))
	if err != nil {
		return nil, err
	}
	return cs.PeerCertificates[0].SerialNumber, nil
}

func (w *watched) waitServed(t *testing.T, d time.Duration, want *big.Int) {
	t.Helper()
	waitFor(t, d, "serial "+want.Text(16)+" to be served", func() bool {
		got, err := w.servedSerial()
		return err == nil && got.Cmp(want) == 0
	})
}

// load opens new verified TLS connections from several goroutines until
// stop is called, which returns the successes and the failures.
func (w *watched) load(t *testing.T, workers int) (stop func() (ok int64, failures []string)) {
	var (
		wg   sync.WaitGroup
		done atomic.Bool
		okN  atomic.Int64
		mu   sync.Mutex
		errs []string
	)
	for range workers {
		wg.Go(func() {
			for !done.Load() {
				if _, err := w.servedSerial(); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					continue
				}
				okN.Add(1)
			}
		})
	}
	return func() (int64, []string) {
		done.Store(true)
		wg.Wait()
		return okN.Load(), errs
	}
}

// TestRotationUnderLoad swaps the pair ten times by each method while
// clients keep making new connections: none may fail, and each new serial
// must be served within 2 s of the files settling.
func TestRotationUnderLoad(t *testing.T) {
	const rotations = 10
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			f := certstest.NewFiles(t, t.TempDir(), cname)
			first := mintPair(t, f, certstest.LeafOptions{})
			certFile, keyFile := m.setup(t, dir, first)
			w := startWatched(t, f, certFile, keyFile, certs.WatchConfig{Debounce: testDebounce, Poll: -1})
			w.waitServed(t, 2*time.Second, first.serial)

			stop := w.load(t, 4)
			for range rotations {
				p := mintPair(t, f, certstest.LeafOptions{})
				m.update(t, dir, p)
				w.waitServed(t, 2*time.Second, p.serial)
			}
			ok, failures := stop()
			if len(failures) > 0 {
				t.Errorf("%d of %d connections failed during %d rotations; first: %s", len(failures), ok+int64(len(failures)), rotations, failures[0])
			}
			if ok == 0 {
				t.Error("no connection succeeded under load")
			}
			if ok, failed := w.reloads(t); ok != rotations || failed != 0 {
				t.Errorf("%s ok, error = %v, %v; want %d, 0", reloadsTotal, ok, failed, rotations)
			}
		})
	}
}

// TestInvalidUpdateKeepsServing writes pairs that must be refused: the old
// certificate keeps serving, and the refusal is counted once the settle
// window has passed.
func TestInvalidUpdateKeepsServing(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	now := time.Now()
	other := mintPair(t, f, certstest.LeafOptions{})
	for _, tt := range []struct {
		name string
		p    func() pairBytes
		want string
	}{
		{"mismatched key", func() pairBytes { p := mintPair(t, f, certstest.LeafOptions{}); p.key = other.key; return p }, "does not match"},
		{"expired", func() pairBytes {
			return mintPair(t, f, certstest.LeafOptions{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
		}, "expired"},
		{"wrong name", func() pairBytes {
			return mintPair(t, f, certstest.LeafOptions{DNSNames: []string{"other.example.com"}})
		}, "does not cover"},
		{"garbage", func() pairBytes { return pairBytes{cert: []byte("garbage\n"), key: []byte("garbage\n")} }, "no certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			good := mintPair(t, f, certstest.LeafOptions{})
			certFile, keyFile := plainSetup(t, dir, good)
			w := startWatched(t, f, certFile, keyFile, certs.WatchConfig{Debounce: testDebounce, Poll: -1, Settle: 200 * time.Millisecond, Retry: 20 * time.Millisecond})
			bad := tt.p()
			renameInto(t, dir, "key.pem", bad.key)
			renameInto(t, dir, "cert.pem", bad.cert)
			waitFor(t, 5*time.Second, "the refused reload to be counted", func() bool { _, failed := w.reloads(t); return failed >= 1 })
			got, err := w.servedSerial()
			if err != nil || got.Cmp(good.serial) != 0 {
				t.Errorf("after an invalid update (%s): served serial %v, err %v; want the old %s", tt.name, got, err, good.serial.Text(16))
			}
			if ok, _ := w.reloads(t); ok != 0 {
				t.Errorf(`%s{result="ok"} = %v, want 0`, reloadsTotal, ok)
			}
			// And a valid pair afterwards is taken.
			next := mintPair(t, f, certstest.LeafOptions{})
			renameInto(t, dir, "key.pem", next.key)
			renameInto(t, dir, "cert.pem", next.cert)
			w.waitServed(t, 2*time.Second, next.serial)
		})
	}
}

// TestReloadWithinTwoSecondsByDefault checks the promise with the default
// WatchConfig: a new pair is served within 2 s of being written.
func TestReloadWithinTwoSecondsByDefault(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, t.TempDir(), cname)
	certFile, keyFile := plainSetup(t, dir, mintPair(t, f, certstest.LeafOptions{}))
	w := startWatched(t, f, certFile, keyFile, certs.WatchConfig{})
	next := mintPair(t, f, certstest.LeafOptions{})
	renameInto(t, dir, "key.pem", next.key)
	renameInto(t, dir, "cert.pem", next.cert)
	w.waitServed(t, 2*time.Second, next.serial)
}
