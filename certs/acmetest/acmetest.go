// Package acmetest runs an ACME CA for tests, as net/http/httptest runs
// HTTP servers: Pebble (github.com/letsencrypt/pebble/v2), in process, on
// 127.0.0.1, with a DNS server that resolves every name to 127.0.0.1 so
// that Pebble's validation authority validates challenges against the
// test's own listeners. Validation is real: Pebble's always-valid switch
// is never used. StartDNS runs a DNS server whose names a test adds as
// it goes, for the check that a name resolves before it is ordered.
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
	"strings"
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
// 80 and 443, issues Pebble's default 90-day certificates and registers
// accounts without External Account Binding.
type Options struct {
	// HTTPPort is the port Pebble's validation authority connects to for
	// HTTP-01 challenges (on 127.0.0.1); if zero, 80.
	HTTPPort int
	// TLSPort is the port for TLS-ALPN-01 challenges; if zero, 443.
	TLSPort int
	// Validity is the lifetime of issued certificates, in whole seconds;
	// if zero, Pebble's default (90 days).
	Validity time.Duration
	// ExternalAccountBindingRequired makes Pebble refuse to register an
	// account without External Account Binding (RFC 8555 §7.3.4), as
	// ZeroSSL and other commercial CAs do (Pebble's
	// externalAccountBindingRequired).
	ExternalAccountBindingRequired bool
	// ExternalAccountMACKeys are the MAC keys Pebble knows, by key ID,
	// each base64url-encoded without padding (Pebble's
	// externalAccountMACKeys); pass one as certs.ACMEConfig.EAB. If nil,
	// none: with ExternalAccountBindingRequired, no account can be
	// registered.
	ExternalAccountMACKeys map[string]string
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
	// DNSAddr is the "host:port" of the DNS server Pebble's validation
	// authority uses, which answers every A question with 127.0.0.1 (over
	// TCP only). Pass it as certs.ACMEConfig.DNSResolver (--acme-dns-resolver)
	// so that the check that a name resolves before it is ordered passes
	// for every name.
	DNSAddr string

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

	dns := startDNS(t, true)
	profiles := map[string]ca.Profile{
		"default": {Description: "acmetest", ValidityPeriod: uint64(opts.Validity / time.Second)},
	}
	store := db.NewMemoryStore()
	for kid, key := range opts.ExternalAccountMACKeys {
		if err := store.AddExternalAccountKeyByID(kid, key); err != nil {
			t.Fatalf("acmetest: Options.ExternalAccountMACKeys[%q]: %v", kid, err)
		}
	}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, opts.HTTPPort, opts.TLSPort, false, dns.Addr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, opts.ExternalAccountBindingRequired, 0, 0)

	p := &Pebble{DNSAddr: dns.Addr}
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

// DNS is a DNS server for tests, on 127.0.0.1 over TCP only (Pebble's
// validation authority and certs.ACMEConfig.DNSResolver both ask over
// TCP). It answers A questions for the names added with Add with
// 127.0.0.1, AAAA questions for them with no records, and every question
// for any other name with NXDOMAIN. Its methods are safe for concurrent
// use. It stops when the test ends.
type DNS struct {
	// Addr is the server's "host:port".
	Addr string

	all bool // every name resolves (Pebble's server)

	mu      sync.Mutex
	names   map[string]bool // added names, canonical (lowercase, no trailing dot)
	queries map[string]int  // A questions by canonical name
}

// StartDNS runs a DNS server that resolves no name until the test adds it
// with Add.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	return startDNS(t, false)
}

// Add makes name resolve to 127.0.0.1 from now on. Case and a trailing
// dot do not matter.
func (d *DNS) Add(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names[canonical(name)] = true
}

// Queries returns how many A questions for name the server has answered,
// resolved or not.
func (d *DNS) Queries(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[canonical(name)]
}

func canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// answer builds the reply to q.
func (d *DNS) answer(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, question := range q.Question {
		name := canonical(question.Name)
		if question.Qtype == dns.TypeA {
			d.queries[name]++
		}
		if !d.all && !d.names[name] {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if question.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   net.IPv4(127, 0, 0, 1),
			})
		}
	}
	return m
}

// startDNS serves DNS over TCP on 127.0.0.1 until the test ends; if all,
// every name resolves.
func startDNS(t testing.TB, all bool) *DNS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("acmetest: DNS listener: %v", err)
	}
	d := &DNS{Addr: ln.Addr().String(), all: all, names: map[string]bool{}, queries: map[string]int{}}
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		w.WriteMsg(d.answer(q))
	})}
	// Shutdown fails on a server that has not started yet, which would
	// leave it running: wait for it to start (or fail).
	started := make(chan struct{})
	var once sync.Once
	notify := func() { once.Do(func() { close(started) }) }
	srv.NotifyStartedFunc = notify
	var wg sync.WaitGroup
	wg.Go(func() {
		srv.ActivateAndServe()
		notify()
	})
	<-started
	t.Cleanup(func() {
		srv.Shutdown()
		wg.Wait()
	})
	return d
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
