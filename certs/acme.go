package certs

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// Log field keys used by ACME.
const (
	keyCName     = "cname"
	keyCA        = "ca"
	keyStorage   = "storage"
	keyRenewal   = "renewal"
	keyReason    = "reason"
	keyCertmagic = "certmagic"
)

// alpnACMETLS1 is the ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737).
const alpnACMETLS1 = "acme-tls/1"

// ACMEConfig configures an ACME source. Zero values are documented per field.
type ACMEConfig struct {
	// CName is required: the one DNS name that is ordered and served. It
	// is compared without regard to ASCII case or a trailing dot.
	CName string
	// CA is the ACME directory URL. If empty, Let's Encrypt production
	// (certmagic.LetsEncryptProductionCA), whose failed orders certmagic
	// retries against Let's Encrypt staging first.
	CA string
	// CARoot holds the roots to trust for the CA's own HTTPS endpoint, for
	// a private CA such as Pebble or step-ca. If nil, the system pool.
	CARoot *x509.CertPool
	// Email is the ACME account's contact address. If empty, the account
	// has no contact and the CA cannot warn about expiry.
	Email string
	// Storage is required: the directory for certificates, keys, the ACME
	// account and locks (a certmagic.FileStorage), created with mode 0700
	// if missing. NewACME writes, flushes and removes a probe file in it,
	// so that storage that cannot be written (a read-only file system, a
	// path under a regular file) fails at once, as a ConfigError for
	// Storage. Instances sharing it (a shared volume) form a cluster:
	// certmagic's storage locks make exactly one of them order a
	// certificate, or renew it, while the others wait and load the result.
	// A storage operation that fails later (a full disk, a volume gone) is
	// counted in the metrics' ACME failures and reported by Status.
	Storage string
	// AllowMissingSNI makes the cname's certificate the one served to
	// clients that send no server name (certmagic's DefaultServerName).
	// Whether they are served at all is the SNIPolicy's decision, given to
	// ServerTLSConfig.
	AllowMissingSNI bool
	// HTTPAddr is the address the HTTP listener serving
	// HTTPChallengeHandler is bound to, such as ":80" or
	// ln.Addr().String(). If empty, the HTTP-01 challenge is not used.
	// certmagic tries to bind this address and, finding it taken, leaves
	// the challenge to that listener; so Start must be called after the
	// listener is bound. The CA connects to port 80 of the name: forward
	// it here.
	HTTPAddr string
	// TLSAddr is the address the TLS listener serving TLSConfig is bound
	// to. If empty, the TLS-ALPN-01 challenge is not used. As for
	// HTTPAddr, bind it before Start; the CA connects to port 443.
	// At least one of HTTPAddr and TLSAddr is required, and if both are
	// set their hosts must agree (an unspecified host such as "" or
	// "0.0.0.0" agrees with any other unspecified host).
	TLSAddr string
	// RenewalWindowRatio is the share of a certificate's lifetime, at its
	// end, in which it is renewed. If zero, certmagic's default (1/3).
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certificates are checked for
	// renewal. If zero, certmagic's default (10 minutes).
	RenewCheckInterval time.Duration

	// DNSResolver is the DNS server asked whether CName resolves before a
	// certificate is ordered (see Start): "host:port", or an IP address
	// alone for port 53. It is always asked over TCP, which every DNS
	// server must answer (RFC 7766). If empty, the system's resolver
	// (net.DefaultResolver), as the process would resolve the name.
	DNSResolver string
	// DNSCheckInterval is the wait after the first check that finds CName
	// unresolved; each later wait doubles, up to DNSCheckMaxInterval. If
	// zero, 2s.
	DNSCheckInterval time.Duration
	// DNSCheckMaxInterval is the longest wait between two checks. If zero,
	// 30s, or DNSCheckInterval if that is longer.
	DNSCheckMaxInterval time.Duration

	// EAB, if not nil, is the External Account Binding registered with
	// the ACME account, which CAs such as ZeroSSL, Google Trust Services,
	// DigiCert and Sectigo require. It only matters when the account is
	// registered: an account already in Storage for this CA and Email is
	// used as it is.
	EAB *EAB

	// Metrics records orders, renewals, failures and the certificate's
	// expiry; it may be nil. (Handshakes are recorded by ServerTLSConfig's
	// metrics.)
	Metrics *metrics.Metrics
}

// ACME obtains and renews the certificate for one name with ACME, using
// certmagic built explicitly (certmagic.NewCache, certmagic.New,
// certmagic.NewACMEIssuer; none of certmagic's package-level defaults are
// modified), and serves it to crypto/tls through ServerTLSConfig, which
// applies the SNI policy as it does for a Source. Its methods are safe for
// concurrent use. Orders, renewals and failures are counted in the metrics
// only. No certificate is ordered before the name resolves (see Start).
//
// NewACME starts certmagic's maintenance goroutine; whoever called NewACME
// must call Stop once, after the servers using the ACME have shut down.
type ACME struct {
	cname          string // normalized: lowercase, no trailing dot
	ca             string
	tlsALPN        bool
	eab            bool
	storagePath    string
	dnsServer      string // "host:port"; "" for the system's resolver
	dnsInterval    time.Duration
	dnsMaxInterval time.Duration
	metrics        *metrics.Metrics
	log            zerolog.Logger
	resolver       *net.Resolver
	storage        *reportingStorage
	cache          *certmagic.Cache
	magic          *certmagic.Config
	issuer         *certmagic.ACMEIssuer

	wg sync.WaitGroup // the goroutine Start starts (manage)

	// haveCert is set once a certificate for the cname is in the cache;
	// before that GetCertificate fails handshakes without asking
	// certmagic. loggedPending says the current pending state was logged.
	haveCert, loggedPending atomic.Bool

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc // from Start; nil before
	reason  string             // why there is no certificate, for Status
	lastErr error              // the last failed order or storage operation, if any
}

// NewACME validates cfg, creates Storage if it is missing and proves it
// writable, and builds the certmagic cache, config and ACME issuer. It does
// no network I/O; Start begins obtaining. It logs one info line describing
// the setup, and a warning if CName is under cloudapp.azure.com.
func NewACME(cfg ACMEConfig, log zerolog.Logger) (*ACME, error) {
	cname := normalizeName(cfg.CName)
	switch {
	case cname == "":
		return nil, &ConfigError{Field: "CName", Err: errRequired}
	case strings.Contains(cname, "*"):
		return nil, &ConfigError{Field: "CName", Value: cfg.CName, Err: errors.New("wildcard names need the DNS-01 challenge, which scoregate does not do")}
	case CheckName(cfg.CName) != nil:
		return nil, &ConfigError{Field: "CName", Value: cfg.CName, Err: CheckName(cfg.CName)}
	case cfg.Storage == "":
		return nil, &ConfigError{Field: "Storage", Err: errRequired}
	case cfg.HTTPAddr == "" && cfg.TLSAddr == "":
		return nil, &ConfigError{Field: "HTTPAddr", Err: errors.New("HTTPAddr, TLSAddr or both are needed: no ACME challenge can be answered")}
	case cfg.RenewalWindowRatio < 0 || cfg.RenewalWindowRatio >= 1:
		return nil, &ConfigError{Field: "RenewalWindowRatio", Value: fmt.Sprint(cfg.RenewalWindowRatio), Err: errors.New("must be in [0, 1)")}
	case cfg.RenewCheckInterval < 0:
		return nil, &ConfigError{Field: "RenewCheckInterval", Value: cfg.RenewCheckInterval.String(), Err: errors.New("must not be negative")}
	case cfg.DNSCheckInterval < 0:
		return nil, &ConfigError{Field: "DNSCheckInterval", Value: cfg.DNSCheckInterval.String(), Err: errors.New("must not be negative")}
	case cfg.DNSCheckMaxInterval < 0:
		return nil, &ConfigError{Field: "DNSCheckMaxInterval", Value: cfg.DNSCheckMaxInterval.String(), Err: errors.New("must not be negative")}
	}
	dnsServer, err := parseDNSResolver(cfg.DNSResolver)
	if err != nil {
		return nil, err
	}
	eab, err := acmeEAB(cfg.EAB)
	if err != nil {
		return nil, err
	}
	ca := cfg.CA
	if ca == "" {
		ca = certmagic.LetsEncryptProductionCA
	}
	if u, err := url.Parse(ca); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, &ConfigError{Field: "CA", Value: ca, Err: errors.New("not an https:// directory URL")}
	}
	host, httpPort, tlsPort, err := challengeAddrs(cfg.HTTPAddr, cfg.TLSAddr)
	if err != nil {
		return nil, err
	}
	if err := probeStorage(cfg.Storage); err != nil {
		return nil, &ConfigError{Field: "Storage", Value: cfg.Storage, Err: err}
	}
	dnsInterval := cmp.Or(cfg.DNSCheckInterval, defaultDNSCheckInterval)
	dnsMaxInterval := max(cmp.Or(cfg.DNSCheckMaxInterval, defaultDNSCheckMaxInterval), dnsInterval)

	a := &ACME{
		cname:          cname,
		ca:             ca,
		tlsALPN:        cfg.TLSAddr != "",
		eab:            eab != nil,
		storagePath:    cfg.Storage,
		dnsServer:      dnsServer,
		dnsInterval:    dnsInterval,
		dnsMaxInterval: dnsMaxInterval,
		metrics:        cfg.Metrics,
		log:            log.With().Str(keyCName, cname).Logger(),
		resolver:       newDNSResolver(dnsServer),
		reason:         "certificate management has not started",
	}
	a.storage = &reportingStorage{FileStorage: &certmagic.FileStorage{Path: cfg.Storage}, report: a.storageFailed}
	zl := newZapLogger(log)
	// The cache asks which config manages a certificate; there is one.
	var magic *certmagic.Config
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zl,
	})
	mc := certmagic.Config{
		RenewalWindowRatio: cfg.RenewalWindowRatio,
		OnEvent:            a.onEvent,
		// tls_get_certificate fires per handshake and is not used.
		ShouldEmitFunc: func(event string) bool { return event != "tls_get_certificate" },
		KeySource:      certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		Storage:        a.storage,
		Logger:         zl,
	}
	if cfg.AllowMissingSNI {
		mc.DefaultServerName = cname
	}
	magic = certmagic.New(a.cache, mc)
	a.magic = magic
	a.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:              ca,
		Email:           cfg.Email,
		Agreed:          true, // configuring a CA is agreeing to its terms; nobody is there to ask
		TrustedRoots:    cfg.CARoot,
		ExternalAccount: eab,
		// certmagic binds ListenHost:Alt*Port to answer challenges
		// itself unless the address is taken; ours are, so our
		// listeners answer through HTTPChallengeHandler and
		// GetCertificate (and, via storage, for any instance in the
		// cluster).
		DisableHTTPChallenge:    cfg.HTTPAddr == "",
		DisableTLSALPNChallenge: cfg.TLSAddr == "",
		ListenHost:              host,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		Logger:                  zl,
	})
	magic.Issuers = []certmagic.Issuer{a.issuer}

	var challenges []string
	if cfg.HTTPAddr != "" {
		challenges = append(challenges, "http-01 on "+cfg.HTTPAddr)
	}
	if cfg.TLSAddr != "" {
		challenges = append(challenges, "tls-alpn-01 on "+cfg.TLSAddr)
	}
	ev := a.log.Info().Str(keyCA, ca).Str(keyStorage, cfg.Storage).Strs("challenges", challenges).Str(keyResolver, a.resolverName())
	if eab != nil {
		ev = ev.Str("eab_key_id", eab.KeyID) // an identifier, not the secret
	}
	ev.Msg("ACME configured")
	if strings.HasSuffix(cname, ".cloudapp.azure.com") {
		a.log.Warn().Msg("names under cloudapp.azure.com share one rate-limit bucket at public CAs such as Let's Encrypt, " +
			"so orders may be refused when others order at the same time; use a domain of your own (a CNAME to this name works)")
	}
	return a, nil
}

// challengeAddrs returns the host and ports certmagic's solvers should try
// to bind (and find taken by our listeners).
func challengeAddrs(httpAddr, tlsAddr string) (host string, httpPort, tlsPort int, err error) {
	split := func(field, addr string) (string, int, error) {
		if addr == "" {
			return "", 0, nil
		}
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return "", 0, &ConfigError{Field: field, Value: addr, Err: err}
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return "", 0, &ConfigError{Field: field, Value: addr, Err: errors.New("the port must be a number from 1 to 65535 (the bound address, not port 0)")}
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			h = ""
		}
		return h, n, nil
	}
	httpHost, httpPort, err := split("HTTPAddr", httpAddr)
	if err != nil {
		return "", 0, 0, err
	}
	tlsHost, tlsPort, err := split("TLSAddr", tlsAddr)
	if err != nil {
		return "", 0, 0, err
	}
	if httpAddr != "" && tlsAddr != "" && httpHost != tlsHost {
		return "", 0, 0, &ConfigError{Field: "HTTPAddr", Value: httpAddr, Err: fmt.Errorf("its host and TLSAddr %q's must agree", tlsAddr)}
	}
	if httpAddr != "" {
		host = httpHost
	} else {
		host = tlsHost
	}
	return host, httpPort, tlsPort, nil
}

// Start begins managing the certificate in the background and returns. If
// the certificate is in Storage, it is loaded at once. Otherwise no order
// is placed until CName resolves (an A or AAAA record, directly or through
// a CNAME, from DNSResolver): a CA cannot validate a name that does not
// resolve, and a failed order costs failed validations at the CA and
// certmagic's first retry a minute later. Until then, resolution is
// checked with backoff (DNSCheckInterval doubling up to
// DNSCheckMaxInterval; 2 s up to 30 s by default); Status's Pending reads
// "waiting for DNS: <name> does not resolve yet: <the lookup error>",
// scoregate_acme_waiting_for_dns is 1, and a warning is logged at once and
// every 5 minutes. Storage is looked at again on every check, so a
// certificate another instance obtained meanwhile is loaded. Once the
// name resolves, certmagic (ManageAsync) orders at once; failed orders are
// retried with certmagic's backoff (1, 2, 2, 5, 10 … minutes, up to 30
// days), and the certificate is renewed in its renewal window. Bind the
// challenge listeners (HTTPAddr, TLSAddr) before calling Start.
// Cancelling ctx, or Stop, ends the management. Start may be called once;
// it fails only if called again or after Stop.
func (a *ACME) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.stopped {
		return errors.New("certs: ACME.Start called twice or after Stop")
	}
	a.started = true
	ctx, a.cancel = context.WithCancel(ctx)
	a.reason = "loading the certificate from storage or checking that " + a.cname + " resolves before ordering one from " + a.ca
	// Under mu, so that a concurrent Stop waits for it.
	a.wg.Go(func() { a.manage(ctx) })
	return nil
}

// Stop cancels certificate management (an order in flight is abandoned,
// and so is the wait for DNS) and stops certmagic's maintenance goroutine,
// waiting for it and for Start's goroutine. It does not wait for an
// abandoned order's goroutine, which may still release its storage lock
// shortly after Stop returns. The owner of the ACME (whoever
// called NewACME) must call Stop, after the servers using it have shut
// down; later calls do nothing.
func (a *ACME) Stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	cancel := a.cancel
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	a.wg.Wait()
	a.cache.Stop()
}

// GetCertificate returns the certificate for a handshake that
// ServerTLSConfig's SNI policy accepted. A TLS-ALPN-01 challenge (ALPN
// "acme-tls/1" alone) for the cname is answered by certmagic with the
// challenge certificate. Until a certificate for the cname is available,
// the handshake fails with ErrCertificatePending (an internal_error alert;
// counted by HandshakeErrorLog), logged once per pending period rather than
// per handshake.
func (a *ACME) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if h == nil {
		return nil, errors.New("certs: GetCertificate: nil ClientHelloInfo")
	}
	if len(h.SupportedProtos) == 1 && h.SupportedProtos[0] == alpnACMETLS1 {
		return a.magic.GetCertificate(h)
	}
	// haveCert is set by certmagic's event for the cached certificate,
	// which comes just after the certificate is in the cache (where
	// Status, and so /readyz, finds it): in that window the cache decides.
	if !a.haveCert.Load() && a.Current() == nil {
		reason := a.pendingReason()
		if a.loggedPending.CompareAndSwap(false, true) {
			a.log.Warn().Str(keyReason, reason).Msg("refusing TLS handshakes until a certificate is available; this is logged once")
		}
		return nil, fmt.Errorf("%w: %s", ErrCertificatePending, reason)
	}
	return a.magic.GetCertificate(h)
}

// ALPN returns the protocols to add to the TLS listener's NextProtos:
// "acme-tls/1" when the TLS-ALPN-01 challenge is used, since crypto/tls
// must be able to negotiate it for the CA's validation handshake, which
// offers nothing else. Ordinary clients never offer it.
func (a *ACME) ALPN() []string {
	if a.tlsALPN {
		return []string{alpnACMETLS1}
	}
	return nil
}

// HTTPChallengeHandler returns a handler that answers ACME HTTP-01
// challenge requests (/.well-known/acme-challenge/…) for orders started by
// this instance or, through the shared storage, any instance in the
// cluster, and passes every other request to next. If HTTP-01 is not used
// (ACMEConfig.HTTPAddr is empty), every request goes to next.
func (a *ACME) HTTPChallengeHandler(next http.Handler) http.Handler {
	return a.issuer.HTTPChallengeHandler(next)
}

// Status reports the certificate being served, or why there is none yet
// (such as the wait for DNS, or a failing storage), and the last failed
// order or storage operation.
func (a *ACME) Status() Status {
	st := Status{Source: sourceACME, Leaf: a.Current()}
	a.mu.Lock()
	defer a.mu.Unlock()
	st.LastError = a.lastErr
	if st.Leaf == nil {
		st.Pending = a.reason
	}
	return st
}

// Run manages the certificate (Start) until ctx is done, then Stops. It
// is Start and Stop for a caller that owns one goroutine per task.
func (a *ACME) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		a.Stop()
		return err
	}
	<-ctx.Done()
	a.Stop()
	return ctx.Err()
}

func (a *ACME) pendingReason() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reason
}

// Current returns the leaf certificate being served for the cname, or nil
// if there is none yet. If several are cached, it is the one that expires
// last. It must not be modified.
func (a *ACME) Current() *x509.Certificate {
	var best *x509.Certificate
	for _, c := range a.cache.AllMatchingCertificates(a.cname) {
		if c.Leaf != nil && covers(c.Leaf.DNSNames, a.cname) && (best == nil || c.Leaf.NotAfter.After(best.NotAfter)) {
			best = c.Leaf
		}
	}
	return best
}
