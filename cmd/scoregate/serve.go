package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/metrics"
	"github.com/scoregate/scoregate/proxy"
)

// serveConfig is everything `scoregate serve` reads from its flags.
type serveConfig struct {
	listen, metricsListen, httpListen, httpsPort string
	backend                                      string
	certFile, keyFile, cname, caFile             string
	allowMissingSNI                              bool
	authKeyFile                                  string
	authExemptHealth                             bool
	reloadSettle, watchPoll, backendProbe        time.Duration
	watch                                        bool

	upstreamTimeout, dialTimeout           time.Duration
	bodyReadTimeout                        time.Duration
	readHeaderTimeout, idleTimeout         time.Duration
	shutdownTimeout                        time.Duration
	maxBodyBytes, maxHeaderBytes           byteSize
	maxIdleConns, h2MaxConcurrentStreams   int
	logLevel, logFormat                    string
	dev, pprof, accessLog                  bool
	devDir                                 string
	acme, overwriteDomain                  bool
	acmeCA, acmeCARoot, acmeEmail, storage string
	leafLabel, region                      string
	preopened                              map[string]net.Listener // tests: listeners by flag name, used instead of binding
	given                                  map[string]bool         // flags set on the command line or from the environment
}

const (
	flagCert = "ssl-cert-pem-file"
	flagKey  = "ssl-key-pem-file"
)

func serveFlags(c *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", ":8443", "TLS `address` clients connect to")
	fs.StringVar(&c.backend, "backend", "http://127.0.0.1:5001", "scoring backend `URL` (the model container on this node)")
	fs.StringVar(&c.certFile, flagCert, "", "full-chain certificate `file`, PEM, leaf first (Azure ML: ssl_cert_pem_file)")
	fs.StringVar(&c.keyFile, flagKey, "", "private key `file`, PEM, unencrypted (Azure ML: ssl_key_pem_file)")
	fs.StringVar(&c.cname, "ssl-cname", "", "the `name` clients use; the certificate must cover it, and TLS SNI and HTTP Host must match it (Azure ML: ssl_cname)")
	fs.StringVar(&c.caFile, "ca-file", "", "extra trusted root certificates, PEM `file`, used to check that the chain is complete")
	fs.BoolVar(&c.allowMissingSNI, "allow-missing-sni", false, "accept TLS clients that send no server name (SNI)")
	fs.StringVar(&c.authKeyFile, "auth-key-file", "", "`file` with one or two bearer keys (primary, secondary), one per line; requests must send Authorization: Bearer <key>. Reloaded on change")
	fs.BoolVar(&c.authExemptHealth, "auth-exempt-health", false, "let GET / (the health probe) through without a key when --auth-key-file is set")
	fs.BoolVar(&c.watch, "watch", true, "reload the certificate, key and auth key files when they change on disk (SIGHUP always reloads)")
	fs.DurationVar(&c.reloadSettle, "reload-settle", 5*time.Second, "how long a changed certificate, key or auth key file may stay invalid (say, the key written after the certificate) before the reload counts as failed")
	fs.DurationVar(&c.watchPoll, "watch-poll", 10*time.Second, "how often the watched files are also compared by content, in case a change event was lost")
	fs.StringVar(&c.metricsListen, "metrics-listen", "127.0.0.1:9090", "`address` for /healthz and /readyz (empty: off)")
	fs.StringVar(&c.httpListen, "http-listen", "", "optional plain-HTTP `address` that redirects (308) to https://<cname>")
	fs.StringVar(&c.httpsPort, "https-port", "", "`port` that --http-listen redirects to (default: the port of --listen; set 443 behind a port-mapping load balancer)")
	fs.DurationVar(&c.upstreamTimeout, "upstream-timeout", 60*time.Second, "how long the backend may take to send its response headers, counted from the end of the request (504 after)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 5*time.Second, "how long connecting to the backend may take (504 after; a refused connection is 502 at once)")
	fs.DurationVar(&c.bodyReadTimeout, "body-read-timeout", 60*time.Second, "how long a client may leave its request body stalled, between two reads (408 after)")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 10*time.Second, "how long a client may take for the TLS handshake and the request headers")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive client connection stays open")
	fs.DurationVar(&c.backendProbe, "backend-probe-interval", 5*time.Second, "how often the backend's health (GET /) is checked for /readyz")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	c.maxBodyBytes = 100 << 20
	fs.Var(&c.maxBodyBytes, "max-body-bytes", "request body `limit` (413 above it)")
	c.maxHeaderBytes = 64 << 10
	fs.Var(&c.maxHeaderBytes, "max-header-bytes", "request header `limit` (431 above it)")
	fs.IntVar(&c.maxIdleConns, "backend-idle-conns", 256, "idle keep-alive connections kept open to the backend")
	fs.IntVar(&c.h2MaxConcurrentStreams, "h2-max-concurrent-streams", 250, "HTTP/2 streams a client connection may have open at once")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "json", "log `format`: json or console")
	fs.BoolVar(&c.acme, "acme", false, "obtain and renew the certificate for --ssl-cname (or the --leaf-domain-label name) by ACME, instead of reading PEM files")
	fs.StringVar(&c.acmeCA, "acme-ca", certmagic.LetsEncryptProductionCA, "ACME directory `URL`")
	fs.StringVar(&c.acmeCARoot, "acme-ca-root", "", "PEM `file` of the root to trust for the ACME directory's HTTPS (a private CA)")
	fs.StringVar(&c.acmeEmail, "acme-email", "", "contact `address` for the ACME account (expiry notices)")
	fs.StringVar(&c.storage, "storage", "/var/lib/scoregate", "`directory` for ACME accounts, certificates and the leaf domain name; instances sharing it (Azure Files) order once per name")
	fs.StringVar(&c.leafLabel, "leaf-domain-label", "", "with --acme and --region: use the name LABEL + 6 random characters + .REGION.cloudapp.azure.com, kept in --storage")
	fs.StringVar(&c.region, "region", "", "Azure `region` for --leaf-domain-label, such as westeurope")
	fs.BoolVar(&c.overwriteDomain, "overwrite-existing-domain", false, "with --leaf-domain-label: draw a new random suffix instead of reusing the stored name")
	fs.BoolVar(&c.pprof, "debug-pprof", false, "serve Go's profiler at /debug/pprof/ on --metrics-listen (keep that address private)")
	fs.BoolVar(&c.accessLog, "access-log", true, "log one line per request (at info level)")
	fs.BoolVar(&c.dev, "dev", false, "development mode: a self-signed CA and a certificate for localhost (or --ssl-cname), and a demo backend unless --backend is given")
	fs.StringVar(&c.devDir, "dev-dir", "", "`directory` for the --dev CA and certificate (default: the user cache directory's scoregate/dev)")
	return fs
}

func defaultDevDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "scoregate", "dev")
	}
	return filepath.Join(os.TempDir(), "scoregate-dev")
}

// parseServe reads flags, then the environment, and checks them.
func parseServe(args []string, getenv func(string) (string, bool), stdout io.Writer) (serveConfig, error) {
	var c serveConfig
	given, err := parseFlags(serveFlags(&c), args, getenv, stdout,
		"Usage: scoregate serve [flags]\n\nFlags (each also read from SCOREGATE_<FLAG_IN_UPPER_SNAKE>; a flag wins):\n")
	if err != nil {
		return c, err
	}
	c.given = given
	return c, c.check()
}

func (c *serveConfig) check() error {
	if c.dev && c.cname == "" {
		c.cname = "localhost"
	}
	if c.dev && c.devDir == "" {
		c.devDir = defaultDevDir()
	}
	if err := c.checkACME(); err != nil {
		return err
	}
	var missing []string
	if !c.dev && !c.acme {
		for _, f := range []struct{ name, v string }{{flagCert, c.certFile}, {flagKey, c.keyFile}, {"ssl-cname", c.cname}} {
			if f.v == "" {
				missing = append(missing, "--"+f.name)
			}
		}
	}
	if len(missing) > 0 {
		return usagef("%s required (or %s); for a quick local try, use --dev", strings.Join(missing, ", "), envName(strings.TrimPrefix(missing[0], "--")))
	}
	if (c.certFile == "") != (c.keyFile == "") {
		return usagef("--%s and --%s go together: give both or neither", flagCert, flagKey)
	}
	if _, err := zerolog.ParseLevel(c.logLevel); err != nil || c.logLevel == "" {
		return usagef("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if c.logFormat != "json" && c.logFormat != "console" {
		return usagef("--log-format %q: want json or console", c.logFormat)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"upstream-timeout", c.upstreamTimeout}, {"dial-timeout", c.dialTimeout}, {"body-read-timeout", c.bodyReadTimeout}, {"read-header-timeout", c.readHeaderTimeout}, {"idle-timeout", c.idleTimeout}, {"shutdown-timeout", c.shutdownTimeout}, {"reload-settle", c.reloadSettle}, {"watch-poll", c.watchPoll}, {"backend-probe-interval", c.backendProbe}} {
		if d.v <= 0 {
			return usagef("--%s %s: want a positive duration such as 30s", d.name, d.v)
		}
	}
	if c.maxBodyBytes == 0 {
		return usagef("--max-body-bytes 0: want a positive size such as 100MiB")
	}
	if c.maxHeaderBytes < 1024 {
		return usagef("--max-header-bytes %s: want at least 1KiB", &c.maxHeaderBytes)
	}
	if c.maxIdleConns < 1 || c.h2MaxConcurrentStreams < 1 {
		return usagef("--backend-idle-conns and --h2-max-concurrent-streams must be at least 1")
	}
	if c.httpsPort != "" {
		if _, err := net.LookupPort("tcp", c.httpsPort); err != nil {
			return usagef("--https-port %q: not a port", c.httpsPort)
		}
	}
	return nil
}

// checkACME checks the flags of the ACME mode.
func (c *serveConfig) checkACME() error {
	switch {
	case (c.leafLabel != "" || c.region != "" || c.overwriteDomain) && !c.acme:
		return usagef("--leaf-domain-label, --region and --overwrite-existing-domain need --acme")
	case !c.acme:
		return nil
	case c.dev:
		return usagef("--acme and --dev exclude each other")
	case c.certFile != "" || c.keyFile != "":
		return usagef("--acme obtains the certificate itself: drop --%s and --%s", flagCert, flagKey)
	case c.storage == "":
		return usagef("--acme needs --storage, a directory to keep the account and certificates in")
	case (c.leafLabel == "") != (c.region == ""):
		return usagef("--leaf-domain-label and --region go together")
	case c.leafLabel != "" && c.cname != "":
		return usagef("--leaf-domain-label makes the name: drop --ssl-cname")
	case c.leafLabel == "" && c.cname == "":
		return usagef("--acme needs the name to obtain a certificate for: --ssl-cname, or --leaf-domain-label with --region")
	}
	return nil
}

// backendURL parses --backend.
func (c *serveConfig) backendURL() (*url.URL, error) {
	u, err := url.Parse(c.backend)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--backend %q: want an http:// or https:// URL such as http://127.0.0.1:5001", c.backend)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, usagef("--backend %q: give scheme, host and port only; the request path is forwarded as is", c.backend)
	}
	return u, nil
}

func newLogger(c serveConfig, w io.Writer) zerolog.Logger {
	lvl, _ := zerolog.ParseLevel(c.logLevel)
	if c.logFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// server is one running `scoregate serve`: its listeners are open once
// newServer returns, so tests can read their addresses.
type server struct {
	cfg    serveConfig
	log    zerolog.Logger
	stdout io.Writer

	backend    *url.URL
	reg        *prometheus.Registry
	metrics    *metrics.Metrics
	src        *certs.Source   // PEM files; nil with --acme
	acme       *certs.ACME     // nil without --acme
	redirect   *http.Server    // the --http-listen server; nil without it
	authKeys   *certs.AuthKeys // nil without --auth-key-file
	proxy      *proxy.Proxy
	tlsLn      net.Listener
	listeners  []listener // TLS first; shut down in this order
	devBackend *listener  // the demo backend of --dev without --backend
	devCAFile  string     // the CA of --dev's certificate
}

// listener is one server of the process and the listener it serves.
type listener struct {
	name string // the flag that configures it, for logs and errors
	srv  *http.Server
	ln   net.Listener
}

func runServe(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stdout)
	if err != nil {
		return err
	}
	s, err := newServer(cfg, stdout, stderr)
	if err != nil {
		return err
	}
	if _, ok := getenv("GOGC"); !ok {
		// The live heap of a proxy is small (a few MiB) while each request
		// allocates; collecting at 5x the live heap instead of 2x costs a
		// few tens of MiB and saves most of the GC's CPU. GOGC overrides.
		debug.SetGCPercent(defaultGCPercent)
	}
	return s.run(ctx)
}

// defaultGCPercent is the GC target of `serve` unless GOGC is set.
const defaultGCPercent = 400

func newServer(cfg serveConfig, stdout, stderr io.Writer) (_ *server, err error) {
	s := &server{cfg: cfg, log: newLogger(cfg, stderr), stdout: stdout, reg: prometheus.NewRegistry()}
	s.metrics = metrics.New(s.reg)
	defer func() {
		if err != nil {
			s.closeListeners()
			if s.acme != nil {
				s.acme.Stop() // NewACME started certmagic's cache maintenance
			}
		}
	}()

	backend, err := s.cfg.backendURL()
	if err != nil {
		return nil, err
	}
	s.backend = backend
	var roots *x509.CertPool
	if s.cfg.caFile != "" {
		if roots, err = certs.LoadRoots(s.cfg.caFile); err != nil {
			return nil, usageError{flagError(err)}
		}
	}
	if cfg.dev {
		if err := s.setupDev(); err != nil {
			return nil, err
		}
		if s.devBackend != nil {
			backend = &url.URL{Scheme: "http", Host: s.devBackend.ln.Addr().String()}
		}
		s.backend = backend
		if roots == nil && s.devCAFile != "" {
			if roots, err = certs.LoadRoots(s.devCAFile); err != nil {
				return nil, usagef("--dev-dir: %w", err)
			}
		}
	}
	if s.cfg.acme {
		if s.cfg.leafLabel != "" {
			if s.cfg.cname, err = certs.LeafDomainName(s.cfg.storage, s.cfg.leafLabel, s.cfg.region, s.cfg.overwriteDomain); err != nil {
				return nil, usageError{err}
			}
		}
	} else {
		s.src, err = certs.NewSource(certs.SourceConfig{
			CertFile:        s.cfg.certFile,
			KeyFile:         s.cfg.keyFile,
			CName:           s.cfg.cname,
			Roots:           roots,
			AllowMissingSNI: s.cfg.allowMissingSNI,
			Metrics:         s.metrics,
		}, s.log)
		if err != nil {
			return nil, usageError{flagError(err)}
		}
	}
	var auth *proxy.KeySet
	if s.cfg.authKeyFile != "" {
		auth = proxy.NewKeySet(nil)
		if s.authKeys, err = certs.NewAuthKeys(s.cfg.authKeyFile, auth.Store, s.log, s.metrics); err != nil {
			return nil, usageError{flagError(err)}
		}
	}

	s.proxy, err = proxy.New(proxy.Config{
		CName:            s.cfg.cname,
		Backend:          backend,
		UpstreamTimeout:  s.cfg.upstreamTimeout,
		DialTimeout:      s.cfg.dialTimeout,
		BodyReadTimeout:  s.cfg.bodyReadTimeout,
		ProbeInterval:    s.cfg.backendProbe,
		MaxBodyBytes:     int64(s.cfg.maxBodyBytes),
		MaxIdleConns:     s.cfg.maxIdleConns,
		Auth:             auth,
		AuthExemptHealth: s.cfg.authExemptHealth,
		DisableAccessLog: !s.cfg.accessLog,
	}, s.log, s.metrics)
	if err != nil {
		return nil, usageError{err}
	}

	tlsSrv := &http.Server{
		Handler:           s.proxy,
		ReadHeaderTimeout: s.cfg.readHeaderTimeout,
		IdleTimeout:       s.cfg.idleTimeout,
		MaxHeaderBytes:    int(s.cfg.maxHeaderBytes),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: s.cfg.h2MaxConcurrentStreams},
		ErrorLog:          log.New(tlsErrorLog{s.log, s.metrics}, "", 0),
		ConnState:         s.metrics.ConnState,
	}
	tlsSrv.Protocols = new(http.Protocols)
	tlsSrv.Protocols.SetHTTP1(true)
	tlsSrv.Protocols.SetHTTP2(true)
	if err := s.listen("listen", s.cfg.listen, tlsSrv); err != nil {
		return nil, err
	}
	s.tlsLn = s.listeners[len(s.listeners)-1].ln

	if s.cfg.httpListen != "" {
		port := s.cfg.httpsPort
		if port == "" {
			_, port, _ = net.SplitHostPort(s.tlsAddr())
		}
		s.redirect = &http.Server{
			Handler:           proxy.Redirect(s.cfg.cname, port),
			ReadHeaderTimeout: s.cfg.readHeaderTimeout,
			IdleTimeout:       s.cfg.idleTimeout,
			MaxHeaderBytes:    int(s.cfg.maxHeaderBytes),
			ErrorLog:          newServerErrorLog(s.log),
		}
		if err := s.listen("http-listen", s.cfg.httpListen, s.redirect); err != nil {
			return nil, err
		}
	}
	// The listeners are bound: ACME's challenges can be answered on them.
	if err := s.setupTLS(tlsSrv); err != nil {
		return nil, err
	}
	if s.cfg.metricsListen != "" {
		ms := &http.Server{
			Handler:           metrics.NewMux(metrics.HealthConfig{Ready: s.readiness, Gatherer: s.reg, Pprof: s.cfg.pprof}),
			ReadHeaderTimeout: s.cfg.readHeaderTimeout,
			ErrorLog:          newServerErrorLog(s.log),
		}
		if err := s.listen("metrics-listen", s.cfg.metricsListen, ms); err != nil {
			return nil, err
		}
	}
	if s.devBackend != nil {
		// Last, so that it outlives the front ends at shutdown.
		s.listeners = append(s.listeners, *s.devBackend)
	}
	return s, nil
}

// setupTLS gives the TLS server its certificates: from the PEM Source, or
// from ACME, whose HTTP-01 challenges the redirect listener answers and
// whose TLS-ALPN-01 challenges the TLS listener answers.
func (s *server) setupTLS(tlsSrv *http.Server) error {
	if !s.cfg.acme {
		tlsSrv.TLSConfig = certs.ServerTLSConfig(s.src)
		return nil
	}
	var caRoot *x509.CertPool
	if s.cfg.acmeCARoot != "" {
		var err error
		if caRoot, err = certs.LoadRoots(s.cfg.acmeCARoot); err != nil {
			return usagef("--acme-ca-root: %w", err)
		}
	}
	cfg := certs.ACMEConfig{
		CName:           s.cfg.cname,
		CA:              s.cfg.acmeCA,
		CARoot:          caRoot,
		Email:           s.cfg.acmeEmail,
		Storage:         s.cfg.storage,
		AllowMissingSNI: s.cfg.allowMissingSNI,
		TLSAddr:         s.tlsAddr(),
		Metrics:         s.metrics,
	}
	if s.redirect != nil {
		cfg.HTTPAddr = s.addr("http-listen")
	}
	a, err := certs.NewACME(cfg, s.log)
	if err != nil {
		return usageError{err}
	}
	s.acme = a
	tlsSrv.TLSConfig = a.TLSConfig()
	if s.redirect != nil {
		s.redirect.Handler = a.HTTPChallengeHandler(s.redirect.Handler)
	}
	return nil
}

// addr is the bound address of the listener configured by flagName.
func (s *server) addr(flagName string) string {
	for _, l := range s.listeners {
		if l.name == flagName {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// flagError names the flag in an error about one of the files.
func flagError(err error) error {
	var fe *certs.FileError
	if !errors.As(err, &fe) {
		return err
	}
	name, ok := map[certs.Role]string{
		certs.CertFileRole:    flagCert,
		certs.KeyFileRole:     flagKey,
		certs.CAFileRole:      "ca-file",
		certs.AuthKeyFileRole: "auth-key-file",
	}[fe.Role]
	if !ok {
		return err
	}
	return fmt.Errorf("--%s %q: %w", name, fe.Path, fe.Err)
}

func (s *server) listen(flagName, addr string, srv *http.Server) error {
	ln, ok := s.cfg.preopened[flagName]
	if !ok {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return usagef("--%s %q: %w", flagName, addr, errors.Unwrap(err))
		}
	}
	s.listeners = append(s.listeners, listener{name: flagName, srv: srv, ln: ln})
	return nil
}

func (s *server) closeListeners() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
	if s.devBackend != nil {
		s.devBackend.ln.Close()
	}
}

func (s *server) tlsAddr() string { return s.tlsLn.Addr().String() }

// readiness answers /readyz: ready when a valid certificate is loaded and
// the backend answered its last health check.
func (s *server) readiness(context.Context) metrics.Readiness {
	var rd metrics.Readiness
	certReason := ""
	if s.acme != nil {
		if ok, reason := s.acme.Ready(); !ok {
			certReason = "no certificate yet: " + reason
		} else if leaf := s.acme.Current(); leaf != nil {
			rd.Certificate = certInfo(leaf, "acme")
		}
	} else {
		rd.Certificate = certInfo(s.src.Current().Leaf, "file")
		last := s.src.LastReload()
		rd.LastReload = &metrics.ReloadInfo{Result: metrics.ResultOK, At: last.At}
		if last.Err != nil {
			rd.LastReload.Result, rd.LastReload.Error = metrics.ResultError, last.Err.Error()
		}
	}
	rd.Backend = s.proxy.BackendHealth()
	switch {
	case certReason != "":
		rd.Reason = certReason
	case rd.Certificate == nil:
		rd.Reason = "no certificate loaded"
	case rd.Backend.CheckedAt.IsZero():
		rd.Reason = "backend not checked yet"
	case !rd.Backend.Ready:
		rd.Reason = "backend not ready: " + rd.Backend.Error
	default:
		rd.Ready = true
	}
	return rd
}

func certInfo(leaf *x509.Certificate, source string) *metrics.CertInfo {
	return &metrics.CertInfo{Subject: leaf.Subject.String(), DNSNames: leaf.DNSNames, NotAfter: leaf.NotAfter, Source: source}
}

// run serves until ctx is done, then shuts down gracefully: listeners close
// at once and in-flight requests get --shutdown-timeout to finish.
func (s *server) run(ctx context.Context) error {
	defer s.proxy.Close()
	errc := make(chan error, len(s.listeners))
	var wg sync.WaitGroup
	ev := s.log.Info().Str("backend", s.backend.String()).Str("cname", s.cfg.cname).Str("version", version())
	for _, l := range s.listeners {
		ev = ev.Str(l.name, l.ln.Addr().String())
		wg.Go(func() {
			var err error
			if l.srv.TLSConfig != nil {
				err = l.srv.ServeTLS(l.ln, "", "")
			} else {
				err = l.srv.Serve(l.ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("--%s %s: %w", l.name, l.ln.Addr(), err)
			}
		})
	}
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	s.startBackground(bgCtx, &wg)
	ev.Msg("scoregate serving")
	s.logStartupWarnings()
	if s.cfg.leafLabel != "" {
		s.printLeafDomainHelp()
	}
	if s.cfg.dev {
		s.log.Warn().Msg("DEVELOPMENT MODE: the certificate is signed by a local, self-made CA; never use --dev in production")
		s.printDevHelp()
	}

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info().Dur("timeout", s.cfg.shutdownTimeout).Msg("shutting down: finishing in-flight requests")
	case runErr = <-errc:
		s.log.Error().Err(runErr).Msg("listener failed; shutting down")
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.shutdownTimeout)
	defer cancel()
	var shutdownErr error
	for _, l := range s.listeners {
		if err := l.srv.Shutdown(sctx); err != nil {
			shutdownErr = fmt.Errorf("shutdown: in-flight requests did not finish within --shutdown-timeout %s", s.cfg.shutdownTimeout)
			l.srv.Close()
		}
	}
	stopBackground()
	wg.Wait()
	if s.acme != nil {
		s.acme.Stop()
	}
	if runErr != nil {
		return runErr
	}
	if shutdownErr != nil {
		s.log.Warn().Msg(shutdownErr.Error())
	}
	s.log.Info().Msg("stopped")
	return nil
}

// printLeafDomainHelp prints the name derived from --leaf-domain-label and
// the DNS step it needs: the operator must give the public IP that name.
func (s *server) printLeafDomainHelp() {
	first, _, _ := strings.Cut(s.cfg.cname, ".")
	s.log.Info().Str("name", s.cfg.cname).Msg("leaf domain name (kept in --storage)")
	fmt.Fprintf(s.stdout, "\nscoregate: the service's name is %s\n"+
		"DNS: set the DNS name label of the public IP (or the ACI container group's dnsNameLabel) in %s to %q,\n"+
		"so that Azure publishes %s; the certificate is issued once it resolves to this service.\n\n",
		s.cfg.cname, s.cfg.region, first, s.cfg.cname)
}

// logStartupWarnings logs what does not stop scoregate but needs the
// operator's attention. It runs once startup has succeeded, so that a
// startup failure stays one line on stderr.
func (s *server) logStartupWarnings() {
	if s.src != nil {
		for _, w := range s.src.Current().Warnings {
			s.log.Warn().Str("file", s.cfg.certFile).Msg(w)
		}
	}
	for _, f := range certs.SubPathMountsOfProcess(s.cfg.certFile, s.cfg.keyFile, s.cfg.authKeyFile) {
		s.log.Warn().Str("file", f).Msg("this file is mounted by itself (a Kubernetes subPath mount?): updates to the Secret will never reach it; mount the volume's directory instead")
	}
}

// startBackground starts the file watchers, the SIGHUP handler and the
// refusal summary; they stop when ctx is done and join wg.
func (s *server) startBackground(ctx context.Context, wg *sync.WaitGroup) {
	if s.acme != nil {
		if err := s.acme.Start(ctx); err != nil {
			s.log.Error().Err(err).Msg("starting ACME certificate management")
		}
	}
	wcfg := certs.WatchConfig{Settle: s.cfg.reloadSettle, Poll: s.cfg.watchPoll}
	if s.cfg.watch && s.src != nil {
		wg.Go(func() { s.src.Watch(ctx, wcfg) })
	}
	if s.cfg.watch {
		if s.authKeys != nil {
			wg.Go(func() { s.authKeys.Watch(ctx, wcfg) })
		}
	}
	wg.Go(func() { s.logRefusals(ctx, time.Minute) })
	wg.Go(func() { s.proxy.RunProbes(ctx) })

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			s.log.Info().Msg("SIGHUP: reloading the certificate and keys")
			if s.src != nil {
				s.src.Reload()
			}
			if s.authKeys != nil {
				s.authKeys.Reload()
			}
		}
	})
}

// logRefusals logs refused handshakes as one summary line per interval,
// never one line per connection: load-balancer probes without SNI would
// flood the log.
func (s *server) logRefusals(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last certs.Counts
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var c certs.Counts
		if s.acme != nil {
			a := s.acme.Counts()
			c.RefusedUnrecognizedName, c.RefusedMissingSNI = a.RefusedUnrecognizedName, a.RefusedMissingSNI
		} else {
			c = s.src.Counts()
		}
		name, sni := c.RefusedUnrecognizedName-last.RefusedUnrecognizedName, c.RefusedMissingSNI-last.RefusedMissingSNI
		if name+sni > 0 {
			s.log.Warn().Uint64("unrecognized_name", name).Uint64("missing_sni", sni).Dur("interval", every).
				Msg("refused TLS handshakes for other server names or without SNI")
		}
		last = c
	}
}

// serverErrorLog routes net/http's own log lines (TLS handshake errors
// among them, one per failed connection) to zerolog at debug level.
type serverErrorLog struct{ log zerolog.Logger }

func newServerErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(serverErrorLog{l}, "", 0)
}

func (e serverErrorLog) Write(p []byte) (int, error) {
	e.log.Debug().Str("source", "net/http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
