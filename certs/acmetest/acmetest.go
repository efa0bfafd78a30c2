// Package acmetest runs an ACME CA for tests, as net/http/httptest runs
// HTTP servers: Pebble (github.com/letsencrypt/pebble/v2), in process, on
// 127.0.0.1, with a DNS server that resolves every name to 127.0.0.1 so
// that Pebble's validation authority validates challenges against the
// test's own listeners. Validation is real: Pebble's always-valid switch
// is never used.
//
// Start sets environment variables with t.Setenv (Pebble reads its knobs
// from the environment), so tests that use it cannot call t.Parallel.
package acmetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/scoregate/scoregate/certs/certstest"
)

// Pebble's environment knobs (see pebble's va and wfe packages).
const (
	envAlwaysValid = "PEBBLE_VA_ALWAYS_VALID" // must stay unset: validation is real
	envNoSleep     = "PEBBLE_VA_NOSLEEP"      // no random 0–5 s delay before each validation
	envNonceReject = "PEBBLE_WFE_NONCEREJECT" // no deliberately rejected nonces
	envAuthzReuse  = "PEBBLE_AUTHZREUSE"      // every order validates its challenge afresh
)

// newOrderPath is Pebble's newOrder endpoint (wfe's unexported
// newOrderPath).
const newOrderPath = "/order-plz"

// Options configures Start. The zero value validates challenges on ports
// 80 and 443 and issues Pebble's default 90-day certificates.
type Options struct {
	// HTTPPort is the port Pebble's validation authority connects to for
	// HTTP-01 challenges (on 127.0.0.1); if zero, 80.
	HTTPPort int
	// TLSPort is the port for TLS-ALPN-01 challenges; if zero, 443.
	TLSPort int
	// Validity is the lifetime of issued certificates, in whole seconds;
	// if zero, Pebble's default (90 days).
	Validity time.Duration
}

// Pebble is a running in-process Pebble. Its methods are safe for
// concurrent use. It stops when the test ends.
type Pebble struct {
	// DirectoryURL is the ACME directory, https://127.0.0.1:port/dir.
	DirectoryURL string
	// TLSRoots trusts the directory's HTTPS certificate; pass it as
	// certs.ACMEConfig.CARoot.
	TLSRoots *x509.CertPool
	// TLSRootsPEM is TLSRoots as PEM, for a file given to --acme-ca-root.
	TLSRootsPEM []byte
	// Roots trusts the certificates Pebble issues; TLS clients of the
	// server under test use it.
	Roots *x509.CertPool

	orders atomic.Int64
}

// Orders returns the number of ACME orders Pebble created (newOrder
// requests it answered with 201 Created).
func (p *Pebble) Orders() int { return int(p.orders.Load()) }

// Start runs Pebble and its DNS server until the test ends. Their logs go
// to a buffer that is written to the test log only if the test fails.
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	// Real validation, at full speed, deterministically.
	t.Setenv(envAlwaysValid, "")
	os.Unsetenv(envAlwaysValid) // t.Setenv restores any previous value
	t.Setenv(envNoSleep, "1")
	t.Setenv(envNonceReject, "0")
	t.Setenv(envAuthzReuse, "0")

	if opts.HTTPPort == 0 {
		opts.HTTPPort = 80
	}
	if opts.TLSPort == 0 {
		opts.TLSPort = 443
	}
	logger := log.New(Output(t), "pebble ", log.Lmicroseconds)

	dnsAddr := startDNS(t)
	profiles := map[string]ca.Profile{
		"default": {Description: "acmetest", ValidityPeriod: uint64(opts.Validity / time.Second)},
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, opts.HTTPPort, opts.TLSPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	p := &Pebble{}
	inner := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != newOrderPath {
			inner.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		inner.ServeHTTP(rec, r)
		if rec.status == http.StatusCreated {
			p.orders.Add(1)
		}
	}))
	srv.Config.ErrorLog = logger
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert(t)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	p.DirectoryURL = srv.URL + wfe.DirectoryPath
	p.TLSRoots = x509.NewCertPool()
	for _, c := range srv.TLS.Certificates[0].Certificate[1:] {
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			t.Fatalf("acmetest: %v", err)
		}
		p.TLSRoots.AddCert(cert)
		p.TLSRootsPEM = append(p.TLSRootsPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	p.Roots = x509.NewCertPool()
	for i := range authority.GetNumberOfRootCerts() {
		p.Roots.AddCert(authority.GetRootCert(i).Cert)
	}
	return p
}

// serverCert mints a certificate for 127.0.0.1, followed by its root, for
// Pebble's HTTPS listener. (certstest's leaves carry DNS names only.)
func serverCert(t testing.TB) tls.Certificate {
	t.Helper()
	root := certstest.NewRootCA(t, "acmetest Pebble TLS root")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("acmetest: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("acmetest: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "pebble"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, key.Public(), root.Key)
	if err != nil {
		t.Fatalf("acmetest: %v", err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("acmetest: %v", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(append(leafPEM, root.CertPEM...), keyPEM)
	if err != nil {
		t.Fatalf("acmetest: %v", err)
	}
	return pair
}

// startDNS serves DNS over TCP (Pebble's validation authority uses TCP)
// on 127.0.0.1, answering every A question with 127.0.0.1 and every other
// question with no records. It returns the server's address.
func startDNS(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("acmetest: DNS listener: %v", err)
	}
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ActivateAndServe() })
	t.Cleanup(func() {
		srv.Shutdown()
		wg.Wait()
	})
	return ln.Addr().String()
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Output returns a writer, safe for concurrent use, that collects
// everything written to it and copies it to the test log when the test
// ends, only if the test failed. Unlike t.Output, it may be written after
// the test has ended, by goroutines of Pebble or certmagic that outlive
// it (Pebble's validation authority has no Stop); such writes stay in the
// buffer. Use it for Pebble's and the ACME source's logs.
func Output(t testing.TB) *Buffer {
	b := &Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collected log:\n%s", b.String())
		}
	})
	return b
}

// Buffer is a bytes.Buffer guarded by a mutex.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Storage returns a new certmagic storage directory for a test. It is
// removed when the test ends, once it can be: certmagic may still release a
// lock file in it just after ACME.Stop returns, which a t.TempDir cleanup
// would trip over.
func Storage(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "scoregate-acme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for os.RemoveAll(dir) != nil {
			if time.Now().After(deadline) {
				t.Errorf("acmetest: storage %s still not removable after 10s", dir)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir
}
