package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/bench"
	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/metrics"
	"github.com/scoregate/scoregate/proxy"
	"github.com/scoregate/scoregate/proxy/front"
)

// defaultShutdownTimeout is serverConfig.ShutdownTimeout's default.
const defaultShutdownTimeout = 30 * time.Second

// server is one running scoregate: its listeners are open once newServer
// returns, so tests can read their addresses. run serves until its context
// is done.
type server struct {
	cfg    serverConfig
	log    zerolog.Logger
	stdout io.Writer
	reload <-chan os.Signal // SIGHUP, from runServe; nil: none

	reg        *prometheus.Registry
	metrics    *metrics.Metrics
	certs      certProvider
	keys       *proxy.KeyFile       // nil without AuthKeyFile
	clientCAs  *certs.ClientCAs     // nil without ClientCAFile
	ticketKeys *certs.TicketKeyFile // nil without SessionTicketKeyFile
	refusals   *certs.Refusals      // handshakes the SNI policy refused, logged with the name asked
	proxy      *proxy.Proxy
	redirect   *http.Server // the HTTPListen server; nil without it
	tlsLn      net.Listener
	listeners  []listener // TLS first; shut down in this order
	devBackend *listener  // the demo backend of --dev without --backend; served last
}

// listener is one server of the process and the listener it serves.
type listener struct {
	name  string // the flag that configures it, for logs and errors
	srv   *http.Server
	front *front.Server // the TLS listener's server, configured by srv; nil for the others
	ln    net.Listener
}

func (l *listener) serve() error {
	if l.front != nil {
		return l.front.Serve(l.ln)
	}
	return l.srv.Serve(l.ln)
}

func (l *listener) shutdown(ctx context.Context) error {
	if l.front != nil {
		return l.front.Shutdown(ctx)
	}
	return l.srv.Shutdown(ctx)
}

func (l *listener) close() error {
	if l.front != nil {
		return l.front.Close()
	}
	return l.srv.Close()
}

// newServer builds a server from cfg and binds its listeners. Everything
// in cfg, the PEM certificate and key included, is checked before the
// listeners are bound, so that a configuration error is reported as such
// when a port is taken too; only an ACME source is made after, as it
// answers its challenges on the bound addresses. Errors about the
// configuration are usageErrors naming the flag.
func newServer(cfg serverConfig, stdout io.Writer) (_ *server, err error) {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = defaultShutdownTimeout
	}
	s := &server{cfg: cfg, log: cfg.Log, stdout: stdout, reg: prometheus.NewRegistry()}
	s.metrics = metrics.New(s.reg)
	s.refusals = certs.NewRefusals(s.log)
	defer func() {
		if err != nil {
			s.closeListeners()
			if a, ok := s.certs.(acmeCerts); ok {
				a.Stop() // NewACME started certmagic's cache maintenance
			}
		}
	}()
	if len(s.cfg.Backends) == 0 && len(s.cfg.Services) == 0 {
		if err := s.startDevBackend(); err != nil {
			return nil, err
		}
	}

	pcfg := cfg.Proxy
	pcfg.CName, pcfg.Backends, pcfg.Services, pcfg.AuthExemptHealth = cfg.CName, s.cfg.Backends, cfg.Services, cfg.AuthExemptHealth
	if cfg.AuthKeyFile != "" {
		if s.keys, err = proxy.OpenKeyFile(cfg.AuthKeyFile, s.log, s.metrics); err != nil {
			return nil, usageError{flagError(err)}
		}
		pcfg.Auth = s.keys.Keys()
	}
	if s.proxy, err = proxy.New(pcfg, s.log, s.metrics); err != nil {
		return nil, usageError{err}
	}
	if cfg.ClientCAFile != "" {
		if s.clientCAs, err = certs.LoadClientCAs(cfg.ClientCAFile, s.log); err != nil {
			var fe *certs.FileError
			if errors.As(err, &fe) {
				return nil, usagef("--client-ca-file %q: %w", fe.Path, fe.Err)
			}
			return nil, usageError{err}
		}
	}
	if cfg.SessionTicketKeyFile != "" {
		if s.ticketKeys, err = certs.OpenTicketKeyFile(cfg.SessionTicketKeyFile, s.log); err != nil {
			var te *certs.TicketKeyFileError
			if errors.As(err, &te) {
				return nil, usagef("--session-ticket-key-file %q: %w", te.Path, te.Err)
			}
			return nil, usageError{err}
		}
	}

	tlsSrv := &http.Server{
		Handler:           hsts(s.proxy, cfg.HSTSMaxAge),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: cfg.H2MaxConcurrentStreams, MaxReadFrameSize: 16 << 10}, // frames: HTTP/2's default 16 KiB (RFC 9113 section 4.2), not Go's 1 MiB; larger is FRAME_SIZE_ERROR (h2spec 4.2/3)
		ErrorLog:          certs.NewHandshakeErrorLog(s.log, s.metrics, s.refusals),
		ConnState:         s.metrics.ConnState,
	}
	tlsSrv.Protocols = new(http.Protocols)
	tlsSrv.Protocols.SetHTTP1(true)
	tlsSrv.Protocols.SetHTTP2(true)
	if cfg.ACME == nil {
		// The PEM pair is checked before any listener is bound, so that
		// a bad certificate is reported as such even when the port is
		// taken (and nothing listens while serve cannot serve).
		if s.certs, err = s.newCertProvider(); err != nil {
			return nil, err
		}
	}
	if err := s.listen("listen", cfg.Listen, tlsSrv); err != nil {
		return nil, err
	}
	tl := &s.listeners[len(s.listeners)-1]
	tl.ln = limitConns(tl.ln, cfg.MaxConns, cfg.MaxConnsPerIP, s.log, s.metrics)
	s.tlsLn = tl.ln

	if cfg.HTTPListen != "" {
		port := cfg.HTTPSPort
		if port == "" {
			_, port, _ = net.SplitHostPort(s.tlsAddr())
		}
		s.redirect = &http.Server{
			Handler:           proxy.Redirect(cfg.CName, port),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
			ErrorLog:          newServerErrorLog(s.log),
		}
		if err := s.listen("http-listen", cfg.HTTPListen, s.redirect); err != nil {
			return nil, err
		}
	}
	if s.certs == nil {
		// ACME needs the bound addresses: its challenges are answered
		// on these listeners.
		if s.certs, err = s.newCertProvider(); err != nil {
			return nil, err
		}
	}
	// The SNI policy, once, around whichever source.
	tlsSrv.TLSConfig = certs.ServerTLSConfig(s.certs, certs.SNIPolicy{CName: cfg.CName, AllowMissingSNI: cfg.AllowMissingSNI, Refusals: s.refusals}, s.metrics)
	tlsSrv.TLSConfig.NextProtos = append(tlsSrv.TLSConfig.NextProtos, s.certs.ALPN()...)
	if s.ticketKeys != nil {
		certs.UseTicketKeyFile(tlsSrv.TLSConfig, s.ticketKeys)
	}
	if s.clientCAs != nil {
		certs.VerifyClientCerts(tlsSrv.TLSConfig, s.clientCAs, cfg.ClientCertRequired)
	}
	// HTTP/1.1 is served by front, HTTP/2 by tlsSrv (see proxy/front).
	if s.listeners[0].front, err = front.New(tlsSrv); err != nil {
		return nil, err
	}
	if s.redirect != nil {
		s.redirect.Handler = s.certs.HTTPHandler(s.redirect.Handler)
	}
	if cfg.MetricsListen != "" {
		ms := &http.Server{
			Handler:           metrics.NewMux(metrics.HealthConfig{Ready: s.readiness, Gatherer: s.reg, Pprof: cfg.Pprof}),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ErrorLog:          newServerErrorLog(s.log),
		}
		if err := s.listen("metrics-listen", cfg.MetricsListen, ms); err != nil {
			return nil, err
		}
	}
	if s.devBackend != nil {
		// Last, so that it outlives the front ends at shutdown.
		s.listeners = append(s.listeners, *s.devBackend)
		s.devBackend = nil
	}
	return s, nil
}

// startDevBackend starts the demo scoring backend of --dev without
// --backend. It is served last, so that it outlives the front ends at
// shutdown.
func (s *server) startDevBackend() error {
	if !s.cfg.Dev {
		return usagef("--backend: required")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("--dev: starting the demo backend: %w", err)
	}
	srv := &http.Server{Handler: bench.NewBackend(bench.BackendConfig{}), ReadHeaderTimeout: 10 * time.Second}
	s.devBackend = &listener{name: "dev-backend", srv: srv, ln: ln}
	s.cfg.Backends = []*url.URL{{Scheme: "http", Host: ln.Addr().String()}}
	return nil
}

func (s *server) listen(flagName, addr string, srv *http.Server) error {
	ln, ok := s.cfg.Preopened[flagName]
	if !ok {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return usagef("--%s %q: %w (another process has the port: choose another with --%s or %s)", flagName, addr, errors.Unwrap(err), flagName, envName(flagName))
			}
			return usagef("--%s %q: %w", flagName, addr, errors.Unwrap(err))
		}
	}
	s.listeners = append(s.listeners, listener{name: flagName, srv: srv, ln: ln})
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

func (s *server) closeListeners() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
	if s.devBackend != nil {
		s.devBackend.ln.Close()
	}
}

func (s *server) tlsAddr() string { return s.tlsLn.Addr().String() }

// run serves until ctx is done, then shuts down gracefully: listeners close
// at once and in-flight requests get ShutdownTimeout to finish.
func (s *server) run(ctx context.Context) error {
	defer s.proxy.Close()
	errc := make(chan error, len(s.listeners))
	var wg sync.WaitGroup
	ev := s.log.Info().Stringer("backend", urls(s.cfg.Backends)).Str("cname", s.cfg.CName).Str("version", version())
	for _, name := range slices.Sorted(maps.Keys(s.cfg.Services)) {
		ev = ev.Stringer("service_"+name, urls(s.cfg.Services[name]))
	}
	for _, l := range s.listeners {
		ev = ev.Str(l.name, l.ln.Addr().String())
		wg.Go(func() {
			if err := l.serve(); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("--%s %s: %w", l.name, l.ln.Addr(), err)
			}
		})
	}
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	s.startBackground(bgCtx, &wg)
	ev.Msg("scoregate serving")
	s.logStartupWarnings()
	if s.cfg.LeafLabel != "" {
		s.printLeafDomainHelp()
	}
	if s.cfg.Dev {
		s.log.Warn().Msg("DEVELOPMENT MODE: the certificate is signed by a local, self-made CA; never use --dev in production")
		s.printDevHelp()
	}

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info().Dur("timeout", s.cfg.ShutdownTimeout).Msg("shutting down: finishing in-flight requests")
	case runErr = <-errc:
		s.log.Error().Err(runErr).Msg("listener failed; shutting down")
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	var shutdownErr error
	for _, l := range s.listeners {
		if err := l.shutdown(sctx); err != nil {
			shutdownErr = fmt.Errorf("shutdown: in-flight requests did not finish within --shutdown-timeout %s", s.cfg.ShutdownTimeout)
			l.close()
		}
	}
	stopBackground() // after the servers: ACME stops once nothing uses it
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	if shutdownErr != nil {
		s.log.Warn().Msg(shutdownErr.Error())
	}
	s.log.Info().Msg("stopped")
	return nil
}

// startBackground starts what runs beside the listeners, each goroutine
// joining wg and ending when ctx is done: the certificate source (file
// watch or ACME), one file watcher each for the key file and the session
// ticket key file, the expiry watch, backend probes, the refused-handshake
// summary, and SIGHUP.
func (s *server) startBackground(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() {
		if err := s.certs.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("certificate management stopped")
		}
	})
	if s.keys != nil && s.cfg.Watch {
		wg.Go(func() {
			certs.WatchFiles(ctx, []string{s.keys.Path()}, s.cfg.WatchConfig, s.log, s.keys.TryReload)
		})
	}
	if s.ticketKeys != nil && s.cfg.Watch {
		wg.Go(func() {
			certs.WatchFiles(ctx, []string{s.ticketKeys.Path()}, s.cfg.WatchConfig, s.log, s.ticketKeys.TryReload)
		})
	}
	if s.clientCAs != nil && s.cfg.Watch {
		wg.Go(func() {
			if err := s.clientCAs.Watch(ctx, s.cfg.WatchConfig); err != nil && ctx.Err() == nil {
				s.log.Error().Err(err).Str("file", s.clientCAs.Path()).Msg("cannot watch the client CA file; SIGHUP still reloads it")
			}
		})
	}
	wg.Go(func() { certs.WatchExpiry(ctx, s.certs.Status, s.log) })
	wg.Go(func() { s.proxy.Run(ctx) })
	wg.Go(func() { s.refusals.Run(ctx, time.Minute) })
	if s.reload != nil {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.reload:
				}
				s.log.Info().Msg("SIGHUP: reloading the certificate and keys")
				s.certs.Reload()
				if s.keys != nil {
					s.keys.Reload()
				}
				if s.clientCAs != nil {
					s.clientCAs.Reload()
				}
				if s.ticketKeys != nil {
					s.ticketKeys.Reload()
				}
			}
		})
	}
}

// printLeafDomainHelp prints the name derived from --leaf-domain-label and
// the DNS step it needs: the operator must give the public IP that name.
func (s *server) printLeafDomainHelp() {
	s.log.Info().Str("name", s.cfg.CName).Msg("leaf domain name (kept in --storage)")
	fmt.Fprintf(s.stdout, "\nscoregate: the service's name is %s\n", s.cfg.CName)
	for _, l := range leafDNSHelp(s.cfg.CName) {
		fmt.Fprintln(s.stdout, l)
	}
	fmt.Fprintln(s.stdout, "The certificate is ordered once the name resolves (scoregate checks before ordering).")
	fmt.Fprintln(s.stdout)
}

// logStartupWarnings logs what does not stop scoregate but needs the
// operator's attention. It runs once startup has succeeded, so that a
// startup failure stays one line on stderr.
func (s *server) logStartupWarnings() {
	if f, ok := s.certs.(*fileCerts); ok {
		for _, w := range f.Current().Warnings {
			ev := s.log.Warn().Str("file", s.cfg.CertFile)
			if strings.Contains(w, "trusted roots") {
				ev = ev.Str("hint", "--ca-file adds trusted roots")
			}
			ev.Msg(w)
		}
	}
	for _, f := range certs.SubPathMountsOfProcess(s.cfg.CertFile, s.cfg.KeyFile, s.cfg.AuthKeyFile, s.cfg.SessionTicketKeyFile) {
		s.log.Warn().Str("file", f).Msg("this file is mounted by itself (a Kubernetes subPath mount?): updates to the Secret will never reach it; mount the volume's directory instead")
	}
}

// hsts returns h, adding Strict-Transport-Security with maxAge (rounded up
// to whole seconds, since max-age=0 would tell browsers to forget HSTS) to
// every response; with a maxAge of zero, h itself. It wraps the TLS
// listener's handler only: RFC 6797 has browsers ignore the header over
// plain HTTP. includeSubDomains and preload are left out, since they
// commit names beyond the cname. The header is set before h runs, so a
// backend's own Strict-Transport-Security comes after it, and browsers
// heed the first. Responses net/http writes itself, before any handler
// (400 for a malformed request, 431), go without it.
func hsts(h http.Handler, maxAge time.Duration) http.Handler {
	if maxAge <= 0 {
		return h
	}
	v := "max-age=" + strconv.FormatInt(int64((maxAge+time.Second-1)/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", v)
		h.ServeHTTP(w, r)
	})
}

// serverErrorLog routes net/http's own log lines to zerolog at debug level.
type serverErrorLog struct{ log zerolog.Logger }

func newServerErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(serverErrorLog{l}, "", 0)
}

func (e serverErrorLog) Write(p []byte) (int, error) {
	e.log.Debug().Str("source", "net/http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// urls prints URLs for a log line, passwords redacted.
type urls []*url.URL

func (us urls) String() string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.Redacted()
	}
	return strings.Join(s, ",")
}
