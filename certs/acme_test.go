package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/acmetest"
	"github.com/scoregate/scoregate/metrics"
)

// These tests run Pebble in process (certs/acmetest) and let its
// validation authority validate real HTTP-01 and TLS-ALPN-01 challenges
// against listeners on 127.0.0.1. acmetest uses t.Setenv, so they are not
// parallel.

// issueTimeout bounds one issuance against Pebble (usually well under a
// second; certmagic's file locks poll every second).
const issueTimeout = 20 * time.Second

// acmeEnv is a Pebble and the two listeners its validation authority
// connects to. The listeners serve whichever ACME was passed to use last,
// as a restarted process would.
type acmeEnv struct {
	pebble        *acmetest.Pebble
	out           *acmetest.Buffer // the servers' and the ACMEs' logs (Pebble keeps its own)
	httpLn, tlsLn net.Listener
	cur           atomic.Pointer[acmeInstance]

	// What the validation authority asked of our listeners.
	httpChallenges, alpnChallenges atomic.Int64
}

func newACMEEnv(t *testing.T, validity time.Duration) *acmeEnv {
	t.Helper()
	return newACMEEnvWith(t, acmetest.Options{Validity: validity})
}

// newACMEEnvWith is newACMEEnv with Pebble's options; their ports are set
// here.
func newACMEEnvWith(t *testing.T, opts acmetest.Options) *acmeEnv {
	t.Helper()
	e := &acmeEnv{out: acmetest.Output(t)}
	e.httpLn, e.tlsLn = listenLocal(t), listenLocal(t)
	opts.HTTPPort = e.httpLn.Addr().(*net.TCPAddr).Port
	opts.TLSPort = e.tlsLn.Addr().(*net.TCPAddr).Port
	e.pebble = acmetest.Start(t, opts)

	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				e.httpChallenges.Add(1)
			}
			e.cur.Load().HTTPChallengeHandler(http.NotFoundHandler()).ServeHTTP(w, r)
		}),
		ErrorLog: log.New(e.out, "http ", 0),
	}
	tlsCfg := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return e.cur.Load().tls, nil
	}}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(e.httpLn) })
	wg.Go(func() {
		for {
			c, err := e.tlsLn.Accept()
			if err != nil {
				return // closed
			}
			wg.Go(func() {
				tc := tls.Server(c, tlsCfg)
				defer tc.Close()
				tc.SetDeadline(time.Now().Add(ioTimeout))
				if tc.Handshake() != nil {
					return
				}
				if tc.ConnectionState().NegotiatedProtocol == "acme-tls/1" {
					e.alpnChallenges.Add(1)
					return
				}
				tc.Write([]byte{'x'})
			})
		}
	})
	t.Cleanup(func() {
		srv.Close()
		e.tlsLn.Close()
		wg.Wait()
	})
	return e
}

// config returns an ACMEConfig for this Pebble and these listeners. Names
// resolve through Pebble's DNS server, which resolves every name.
func (e *acmeEnv) config(cname, storage string) certs.ACMEConfig {
	return certs.ACMEConfig{
		CName:       cname,
		CA:          e.pebble.DirectoryURL,
		CARoot:      e.pebble.TLSRoots,
		Storage:     storage,
		HTTPAddr:    e.httpLn.Addr().String(),
		TLSAddr:     e.tlsLn.Addr().String(),
		DNSResolver: e.pebble.DNSAddr,
	}
}

// newACME builds an ACME that logs to e.out and is stopped when the test
// ends.
func (e *acmeEnv) newACME(t *testing.T, cfg certs.ACMEConfig) *acmeInstance {
	t.Helper()
	return newACMEInstance(t, cfg, zerolog.New(e.out).Level(zerolog.DebugLevel))
}

// use makes the listeners serve a.
func (e *acmeEnv) use(a *acmeInstance) { e.cur.Store(a) }

// acmeInstance is an ACME with the metrics it records in and the server
// TLS configuration that serves it, as one scoregate process has them.
type acmeInstance struct {
	*certs.ACME
	reg *prometheus.Registry
	tls *tls.Config
}

// newACMEInstance builds an ACME for cfg that records in a fresh registry,
// and its server TLS configuration: ServerTLSConfig with the cname's SNI
// policy and the ACME's ALPN protocols, as scoregate serve builds it. The
// ACME is stopped when the test ends.
func newACMEInstance(t *testing.T, cfg certs.ACMEConfig, log zerolog.Logger) *acmeInstance {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	cfg.Metrics = m
	a, err := certs.NewACME(cfg, log)
	if err != nil {
		t.Fatalf("NewACME: %v", err)
	}
	t.Cleanup(a.Stop)
	tlsCfg := certs.ServerTLSConfig(a, certs.SNIPolicy{CName: cfg.CName, AllowMissingSNI: cfg.AllowMissingSNI}, m)
	tlsCfg.NextProtos = append(tlsCfg.NextProtos, a.ALPN()...)
	return &acmeInstance{ACME: a, reg: reg, tls: tlsCfg}
}

// acmeCounts are an instance's ACME counters.
type acmeCounts struct {
	Orders   float64 // first certificates this instance obtained
	Renewals float64 // renewals this instance completed
	Failures float64 // failed orders, first ones or renewals
}

func (a *acmeInstance) counts(t *testing.T) acmeCounts {
	t.Helper()
	return acmeCounts{
		Orders:   counter(t, a.reg, acmeOrdersTotal, nil),
		Renewals: counter(t, a.reg, acmeRenewalsTotal, nil),
		Failures: counter(t, a.reg, acmeFailuresTotal, nil),
	}
}

// handshake completes a TLS handshake with the TLS listener for
// serverName, verifying the chain against Pebble's root, and returns the
// leaf.
func (e *acmeEnv) handshake(serverName string) (*x509.Certificate, error) {
	st, err := dial(e.tlsLn.Addr().String(), &tls.Config{
		ServerName: serverName,
		RootCAs:    e.pebble.Roots,
		NextProtos: []string{"h2", "http/1.1"},
	})
	if err != nil {
		return nil, err
	}
	return st.PeerCertificates[0], nil
}

// listenLocal listens on 127.0.0.1 on a free port.
func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// waitReady waits for a to report a certificate that has not expired and
// returns its leaf.
func waitReady(t *testing.T, a *acmeInstance) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	waitFor(t, issueTimeout, "the ACME certificate", func() bool {
		leaf = a.Status().Leaf
		return leaf != nil && time.Now().Before(leaf.NotAfter)
	})
	return leaf
}

func start(t *testing.T, a *acmeInstance) {
	t.Helper()
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func TestACMEIssues(t *testing.T) {
	for _, tt := range []struct {
		name                  string
		http, tlsALPN         bool
		wantHTTP, wantTLSALPN bool
	}{
		{"http-01", true, false, true, false},
		{"tls-alpn-01", false, true, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newACMEEnv(t, 0)
			const name = "api.scoregate.test"
			cfg := e.config(name, acmetest.Storage(t))
			if !tt.http {
				cfg.HTTPAddr = ""
			}
			if !tt.tlsALPN {
				cfg.TLSAddr = ""
			}
			a := e.newACME(t, cfg)
			e.use(a)
			var wantALPN []string
			if tt.tlsALPN {
				wantALPN = []string{"acme-tls/1"}
			}
			if got := a.ALPN(); !slices.Equal(got, wantALPN) {
				t.Errorf("ALPN() = %q, want %q", got, wantALPN)
			}
			if st := a.Status(); st.Source != "acme" || st.Leaf != nil || st.Pending == "" {
				t.Errorf("before Start: Status() = %+v; want source acme, no leaf and a pending reason", st)
			}
			start(t, a)
			leaf := waitReady(t, a)

			served, err := e.handshake(name)
			if err != nil {
				t.Fatalf("handshake for %q: %v", name, err)
			}
			if served.SerialNumber.Cmp(leaf.SerialNumber) != 0 || !slices.Equal(served.DNSNames, []string{name}) {
				t.Errorf("served serial %x, names %q; want Current() serial %x, names [%q]", served.SerialNumber, served.DNSNames, leaf.SerialNumber, name)
			}
			if _, err := e.handshake("other.scoregate.test"); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
				t.Errorf("handshake for another name: err = %v, want unrecognized name", err)
			}
			if got := e.httpChallenges.Load() > 0; got != tt.wantHTTP {
				t.Errorf("HTTP-01 requests seen: %d; want some = %v", e.httpChallenges.Load(), tt.wantHTTP)
			}
			if got := e.alpnChallenges.Load() > 0; got != tt.wantTLSALPN {
				t.Errorf("TLS-ALPN-01 handshakes seen: %d; want some = %v", e.alpnChallenges.Load(), tt.wantTLSALPN)
			}
			if got := e.pebble.Orders(); got != 1 {
				t.Errorf("Pebble saw %d orders, want 1", got)
			}
			// One certificate obtained, and Pebble saw one order (above).
			if got, want := a.counts(t), (acmeCounts{Orders: 1}); got != want {
				t.Errorf("ACME counters = %+v, want %+v", got, want)
			}
			for reason, want := range map[string]float64{metrics.HandshakeUnrecognizedName: 1, metrics.HandshakeMissingSNI: 0} {
				if got := counter(t, a.reg, handshakeErrorsTotal, map[string]string{"reason": reason}); got != want {
					t.Errorf("%s{reason=%q} = %v, want %v", handshakeErrorsTotal, reason, got, want)
				}
			}
		})
	}
}

func TestACMERestartReusesStoredCertificate(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "restart.scoregate.test"
	storage := acmetest.Storage(t)

	first := e.newACME(t, e.config(name, storage))
	e.use(first)
	start(t, first)
	leaf := waitReady(t, first)
	first.Stop()

	second := e.newACME(t, e.config(name, storage))
	e.use(second)
	start(t, second)
	again := waitReady(t, second)
	if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after restart: serial %x, want the stored %x", again.SerialNumber, leaf.SerialNumber)
	}
	served, err := e.handshake(name)
	if err != nil {
		t.Fatalf("handshake after restart: %v", err)
	}
	if served.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("served serial %x, want %x", served.SerialNumber, leaf.SerialNumber)
	}
	if got := e.pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1 (the restart must reuse storage)", got)
	}
	// The restarted instance ordered nothing: no certificate obtained or
	// renewed, and no failed order.
	if got := second.counts(t); got != (acmeCounts{}) {
		t.Errorf("restarted instance: ACME counters = %+v, want all zero", got)
	}
}

func TestACMEClusterOrdersOnce(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "cluster.scoregate.test"
	storage := acmetest.Storage(t)

	// Three instances share the storage; the listeners (the "load
	// balancer") reach only the first, so an order placed by another
	// instance is validated through the challenge data in storage.
	var instances []*acmeInstance
	for range 3 {
		instances = append(instances, e.newACME(t, e.config(name, storage)))
	}
	e.use(instances[0])
	var wg sync.WaitGroup
	for _, a := range instances {
		wg.Go(func() {
			if err := a.Start(context.Background()); err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	wg.Wait()
	var serials []*big.Int
	var sum acmeCounts
	for _, a := range instances {
		serials = append(serials, waitReady(t, a).SerialNumber)
		c := a.counts(t)
		sum.Orders += c.Orders
		sum.Renewals += c.Renewals
		sum.Failures += c.Failures
	}
	if got := e.pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1", got)
	}
	// One instance obtained the certificate; the others loaded it from
	// storage, and none failed an order.
	if want := (acmeCounts{Orders: 1}); sum != want {
		t.Errorf("the instances' ACME counters add up to %+v, want %+v", sum, want)
	}
	for i, s := range serials[1:] {
		if s.Cmp(serials[0]) != 0 {
			t.Errorf("instance %d serves serial %x, instance 0 serves %x", i+1, s, serials[0])
		}
	}
}

func TestACMERenewsNearExpiry(t *testing.T) {
	// Pebble issues 8-second certificates; with a renewal window of 70%
	// of the lifetime, certmagic renews each about 2.5 s after issuance.
	e := newACMEEnv(t, 8*time.Second)
	const name = "renew.scoregate.test"
	cfg := e.config(name, acmetest.Storage(t))
	cfg.RenewalWindowRatio = 0.7
	cfg.RenewCheckInterval = 200 * time.Millisecond
	a := e.newACME(t, cfg)
	e.use(a)
	start(t, a)
	waitReady(t, a)
	first, err := e.handshake(name)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}

	waitFor(t, issueTimeout, "a renewal", func() bool { return a.counts(t).Renewals >= 1 })
	waitFor(t, 5*time.Second, "the renewed certificate to be served", func() bool {
		leaf, err := e.handshake(name)
		return err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if got := e.pebble.Orders(); got < 2 {
		t.Errorf("Pebble saw %d orders, want at least 2", got)
	}
	if c := a.counts(t); c.Orders != 1 || c.Renewals < 1 || c.Failures != 0 {
		t.Errorf("ACME counters = %+v, want Orders 1, Renewals >= 1, Failures 0", c)
	}
}

// resolving returns the address of a DNS server, for
// ACMEConfig.DNSResolver, that resolves name (to 127.0.0.1).
func resolving(t *testing.T, name string) string {
	t.Helper()
	d := acmetest.StartDNS(t)
	d.Add(name)
	return d.Addr
}

// unreachableCA returns an https URL on 127.0.0.1 where nothing listens.
func unreachableCA(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr + "/dir"
}

func TestACMECAUnreachable(t *testing.T) {
	out := acmetest.Output(t)
	httpLn := listenLocal(t)
	const name = "down.scoregate.test"
	a := newACMEInstance(t, certs.ACMEConfig{
		CName:       name,
		CA:          unreachableCA(t),
		Storage:     acmetest.Storage(t),
		HTTPAddr:    httpLn.Addr().String(),
		DNSResolver: resolving(t, name),
	}, zerolog.New(out))
	addr := serve(t, a.tls)
	start(t, a)

	waitFor(t, issueTimeout, "the first failed order", func() bool { return a.counts(t).Failures >= 1 })
	st := a.Status()
	if st.Leaf != nil || !strings.Contains(st.Pending, "connection refused") ||
		st.LastError == nil || !strings.Contains(st.LastError.Error(), "connection refused") {
		t.Errorf("Status() = %+v; want no leaf, and a pending reason and last error naming the connection error", st)
	}
	if a.Current() != nil {
		t.Errorf("Current() = %v, want nil", a.Current())
	}
	// Handshakes refused for want of a certificate are not counted by certs
	// (the old Counts().RefusedPending is gone): net/http's error log counts
	// them through certs.HandshakeErrorLog (handshakeerr_test.go). Here
	// each must fail, with ErrCertificatePending on the server's side and
	// the internal_error alert on the client's, and none may be counted as
	// completed or as an SNI refusal.
	const handshakes = 3
	for range handshakes {
		_, err := dial(addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil || !strings.Contains(err.Error(), "internal error") {
			t.Errorf("handshake without a certificate: err = %v, want an internal_error alert", err)
		}
	}
	if c, err := a.tls.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); c != nil || !errors.Is(err, certs.ErrCertificatePending) {
		t.Errorf("GetCertificate(%q) = %v, %v; want ErrCertificatePending", name, c, err)
	}
	if got := counter(t, a.reg, handshakesTotal, map[string]string{"result": "ok"}); got != 0 {
		t.Errorf(`%s{result="ok"} = %v, want 0`, handshakesTotal, got)
	}
	if got := counter(t, a.reg, handshakeErrorsTotal, nil); got != 0 {
		t.Errorf("%s = %v, want 0 (no SNI refusal)", handshakeErrorsTotal, got)
	}
	if got := strings.Count(out.String(), "refusing TLS handshakes until a certificate is available"); got != 1 {
		t.Errorf("the pending state was logged %d times for %d handshakes, want once", got, handshakes)
	}
	if !strings.Contains(out.String(), `"message":"certificate order failed; certmagic retries with backoff"`) {
		t.Errorf("no log line for the failed order in:\n%s", out)
	}
}

// TestACMECAUnreachableRetried waits for certmagic's first retry, which
// comes a minute after the first failure (certmagic's unexported
// retryIntervals; there is no option to shorten it).
func TestACMECAUnreachableRetried(t *testing.T) {
	if os.Getenv("SCOREGATE_SLOW_TESTS") == "" {
		t.Skip("certmagic retries a failed order after 1 minute (unexported retryIntervals[0]); set SCOREGATE_SLOW_TESTS=1 to wait for it")
	}
	const name = "retry.scoregate.test"
	a := newACMEInstance(t, certs.ACMEConfig{
		CName:       name,
		CA:          unreachableCA(t),
		Storage:     acmetest.Storage(t),
		HTTPAddr:    listenLocal(t).Addr().String(),
		DNSResolver: resolving(t, name),
	}, zerolog.New(acmetest.Output(t)))
	start(t, a)
	waitFor(t, 90*time.Second, "a retried order", func() bool { return a.counts(t).Failures >= 2 })
}

func TestNewACMERejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	good := certs.ACMEConfig{CName: "api.example.com", Storage: dir, TLSAddr: ":443"}
	for _, tt := range []struct {
		name      string
		edit      func(*certs.ACMEConfig)
		wantField string // the *ConfigError's Field
		wantErr   string // in its message
	}{
		{"no cname", func(c *certs.ACMEConfig) { c.CName = "" }, "CName", "required"},
		{"wildcard", func(c *certs.ACMEConfig) { c.CName = "*.example.com" }, "CName", "DNS-01"},
		{"IP address", func(c *certs.ACMEConfig) { c.CName = "10.0.0.1" }, "CName", "IP address"},
		{"no storage", func(c *certs.ACMEConfig) { c.Storage = "" }, "Storage", "required"},
		{"no challenge", func(c *certs.ACMEConfig) { c.TLSAddr = "" }, "HTTPAddr", "HTTPAddr, TLSAddr or both"},
		{"plain http CA", func(c *certs.ACMEConfig) { c.CA = "http://ca.example.com/dir" }, "CA", "https://"},
		{"port zero", func(c *certs.ACMEConfig) { c.TLSAddr = "127.0.0.1:0" }, "TLSAddr", "port must be"},
		{"hosts differ", func(c *certs.ACMEConfig) { c.HTTPAddr = "10.0.0.1:80"; c.TLSAddr = "10.0.0.2:443" }, "HTTPAddr", "must agree"},
		{"window ratio", func(c *certs.ACMEConfig) { c.RenewalWindowRatio = 1 }, "RenewalWindowRatio", "must be in [0, 1)"},
		{"negative renew check interval", func(c *certs.ACMEConfig) { c.RenewCheckInterval = -time.Second }, "RenewCheckInterval", "negative"},
		{"resolver without port", func(c *certs.ACMEConfig) { c.DNSResolver = "dns.example.com" }, "DNSResolver", "host:port"},
		{"resolver port zero", func(c *certs.ACMEConfig) { c.DNSResolver = "10.0.0.10:0" }, "DNSResolver", "port from 1 to 65535"},
		{"negative DNS check interval", func(c *certs.ACMEConfig) { c.DNSCheckInterval = -time.Second }, "DNSCheckInterval", "negative"},
		{"negative DNS check max interval", func(c *certs.ACMEConfig) { c.DNSCheckMaxInterval = -time.Second }, "DNSCheckMaxInterval", "negative"},
		{"EAB without key ID", func(c *certs.ACMEConfig) { c.EAB = &certs.EAB{MACKey: testMACKey} }, "EABKeyID", "required"},
		{"EAB without MAC key", func(c *certs.ACMEConfig) { c.EAB = &certs.EAB{KeyID: "kid-1"} }, "EABMACKey", "required"},
		{"EAB MAC key not base64url", func(c *certs.ACMEConfig) { c.EAB = &certs.EAB{KeyID: "kid-1", MACKey: "sec+ret/key"} }, "EABMACKey", "not base64url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			a, err := certs.NewACME(cfg, zerolog.Nop())
			if err == nil {
				a.Stop()
				t.Fatalf("NewACME(%+v) = nil error, want one for %s containing %q", cfg, tt.wantField, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewACME error = %q, want it to contain %q", err, tt.wantErr)
			}
			var ce *certs.ConfigError
			switch {
			case !errors.As(err, &ce):
				t.Errorf("NewACME error = %q (%T), want a *certs.ConfigError", err, err)
			case ce.Field != tt.wantField:
				t.Errorf("NewACME error's Field = %q, want %q", ce.Field, tt.wantField)
			}
		})
	}
	t.Run("the MAC key is never in the error", func(t *testing.T) {
		cfg := good
		cfg.EAB = &certs.EAB{KeyID: "kid-1", MACKey: "sec+ret/key"}
		if _, err := certs.NewACME(cfg, zerolog.Nop()); err == nil || strings.Contains(err.Error(), "sec+ret") {
			t.Errorf("NewACME error = %v, want one without the key", err)
		}
	})
	for _, tt := range []struct{ name, resolver string }{
		{"resolver host and port", "10.0.0.10:5353"},
		{"resolver IP alone", "10.0.0.10"},
		{"resolver IPv6 alone", "fd00::10"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.DNSResolver = tt.resolver
			a, err := certs.NewACME(cfg, zerolog.Nop())
			if err != nil {
				t.Fatalf("NewACME with DNSResolver %q: %v", tt.resolver, err)
			}
			a.Stop()
		})
	}
	for _, tt := range []struct{ name, key string }{
		{"EAB MAC key unpadded", testMACKey},
		{"EAB MAC key padded, with a newline", testMACKeyPadded + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.EAB = &certs.EAB{KeyID: "kid-1", MACKey: tt.key}
			a, err := certs.NewACME(cfg, zerolog.Nop())
			if err != nil {
				t.Fatalf("NewACME: %v", err)
			}
			a.Stop()
		})
	}
	t.Run("unspecified hosts agree", func(t *testing.T) {
		cfg := good
		cfg.HTTPAddr, cfg.TLSAddr = ":80", "0.0.0.0:443"
		a, err := certs.NewACME(cfg, zerolog.Nop())
		if err != nil {
			t.Fatalf("NewACME: %v", err)
		}
		a.Stop()
	})
}

// An External Account Binding MAC key: 32 bytes, base64url-encoded as a CA
// hands it out, without and with padding (43 and 44 characters).
const (
	testMACKey       = "c2NvcmVnYXRlLWVhYi10ZXN0LW1hYy1rZXktMzJieXQ"
	testMACKeyPadded = testMACKey + "="
	testWrongMACKey  = "d3JvbmctZWFiLW1hYy1rZXktd3Jvbmctd3Jvbmctd3I"
)

// TestACMEExternalAccountBinding runs Pebble requiring External Account
// Binding: the right key ID and MAC key obtain a certificate; a wrong MAC
// key, or none, is refused when the account is registered, which is
// logged, counted and shown in Status.
func TestACMEExternalAccountBinding(t *testing.T) {
	for _, tt := range []struct {
		name     string
		eab      *certs.EAB
		wantErr  string // in Status().LastError; "" for a certificate
		wantHint string
	}{
		{"right key", &certs.EAB{KeyID: "kid-1", MACKey: testMACKeyPadded + "\n"}, "", ""},
		{"wrong MAC key", &certs.EAB{KeyID: "kid-1", MACKey: testWrongMACKey}, "external account binding JWS verification error",
			"check the External Account Binding's key ID and MAC key"},
		{"unknown key ID", &certs.EAB{KeyID: "kid-2", MACKey: testMACKey}, "'kid' references a key that is not known",
			"check the External Account Binding's key ID and MAC key"},
		{"no EAB", nil, "externalAccountRequired", "the CA requires External Account Binding"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newACMEEnvWith(t, acmetest.Options{
				ExternalAccountBindingRequired: true,
				ExternalAccountMACKeys:         map[string]string{"kid-1": testMACKey},
			})
			const name = "eab.scoregate.test"
			cfg := e.config(name, acmetest.Storage(t))
			cfg.EAB = tt.eab
			a := e.newACME(t, cfg)
			e.use(a)
			start(t, a)
			if tt.wantErr == "" {
				waitReady(t, a)
				if _, err := e.handshake(name); err != nil {
					t.Errorf("handshake: %v", err)
				}
				if got, want := a.counts(t), (acmeCounts{Orders: 1}); got != want {
					t.Errorf("ACME counters = %+v, want %+v", got, want)
				}
			} else {
				waitFor(t, issueTimeout, "the refused account counted", func() bool { return a.counts(t).Failures >= 1 })
				st := a.Status()
				if st.Leaf != nil || st.LastError == nil {
					t.Fatalf("Status() = %+v, want no certificate and the refusal", st)
				}
				for _, want := range []string{"the CA refused to register the ACME account", tt.wantHint, tt.wantErr} {
					if !strings.Contains(st.LastError.Error(), want) {
						t.Errorf("Status().LastError = %q, want it to contain %q", st.LastError, want)
					}
				}
				if !strings.Contains(st.Pending, "refused to register the ACME account") {
					t.Errorf("Status().Pending = %q, want the refusal", st.Pending)
				}
				if !strings.Contains(e.out.String(), `"message":"the CA refused to register the ACME account, so no certificate can be ordered; certmagic retries with backoff"`) {
					t.Errorf("no log line for the refused account in:\n%s", e.out)
				}
				if got := e.pebble.Orders(); got != 0 {
					t.Errorf("Pebble saw %d orders, want 0", got)
				}
			}
			for _, key := range []string{testMACKey, testWrongMACKey} {
				if strings.Contains(e.out.String(), key) {
					t.Errorf("the log holds the MAC key %s", key)
				}
			}
		})
	}
}

func TestNewACMEWarnsAboutCloudapp(t *testing.T) {
	// Locked: certmagic's maintenance goroutine logs too.
	out := acmetest.Output(t)
	a, err := certs.NewACME(certs.ACMEConfig{
		CName:   "model1a2b3c.westeurope.cloudapp.azure.com",
		Storage: filepath.Join(t.TempDir(), "acme"),
		TLSAddr: ":443",
	}, zerolog.New(out))
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	if !strings.Contains(out.String(), `"level":"warn"`) || !strings.Contains(out.String(), "rate-limit bucket") {
		t.Errorf("log = %s; want a warning about the shared rate-limit bucket", out.String())
	}
}

func TestACMEStopBeforeStart(t *testing.T) {
	a, err := certs.NewACME(certs.ACMEConfig{CName: "api.example.com", Storage: t.TempDir(), TLSAddr: ":443"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	a.Stop() // a second Stop does nothing
	if err := a.Start(context.Background()); err == nil {
		t.Error("Start after Stop: nil error, want one")
	}
}
