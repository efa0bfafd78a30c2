package main

import (
	"context"
	"flag"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/proxy"
)

// serveConfig is everything `scoregate serve` reads from its flags, as
// given. resolve turns it into the serverConfig a server is built from.
type serveConfig struct {
	listen, metricsListen, httpListen, httpsPort string
	backends                                     backendList
	services                                     serviceList
	backendOpts                                  backendOptions // --health-url, --service-health, --backend-ca-file
	bufferOpts                                   bufferOptions  // --buffer-response-bytes, --buffer-total-bytes
	resolveInterval, maxQueueWait                time.Duration
	maxPerReplica, maxQueueLength                int
	certFile, keyFile, cname, caFile             string
	allowMissingSNI                              bool
	authKeyFile, sessionTicketKeyFile            string
	authExemptHealth                             bool
	reloadSettle, watchPoll, backendProbe        time.Duration
	watch                                        bool

	upstreamTimeout, dialTimeout            time.Duration
	streamIdleTimeout                       time.Duration
	bodyReadTimeout                         time.Duration
	readHeaderTimeout, idleTimeout          time.Duration
	shutdownTimeout                         time.Duration
	maxBodyBytes, maxHeaderBytes            byteSize
	maxIdleConns, h2MaxConcurrentStreams    int
	logLevel, logFormat                     string
	dev, pprof, accessLog                   bool
	devDir                                  string
	acme, overwriteDomain                   bool
	allowUnknownRegion                      bool
	acmeCA, acmeCARoot, acmeEmail, storage  string
	acmeDNSResolver, acmeEABKID, acmeEABKey string
	maxConns, maxConnsPerIP, maxHeaderCount int
	clientCAFile                            string
	clientCertRequired                      bool
	hstsMaxAge                              time.Duration
	leafLabel, region                       string
	given                                   map[string]bool // flags set on the command line or from the environment
}

const (
	flagCert = "ssl-cert-pem-file"
	flagKey  = "ssl-key-pem-file"

	defaultListen = ":8443"
	// devListen is --listen's default with --dev: a development server
	// with a demo backend and a self-made CA has no business on the
	// network.
	devListen = "127.0.0.1:8443"
)

func serveFlags(c *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", defaultListen, "TLS `address` clients connect to (with --dev: "+devListen+", loopback only)")
	c.backends.vals = []string{defaultBackend}
	fs.Var(&c.backends, "backend", "scoring backend `URL` (the model container on this node); repeat for replicas, and a DNS name stands for every address it resolves to (a headless Service). http:// speaks HTTP/1.1 (Azure ML's inference server, MLflow, vLLM, TGI, TorchServe's REST API), https:// HTTP/1.1 or HTTP/2 as TLS negotiates, h2c:// HTTP/2 without TLS for gRPC (Triton's and KServe's gRPC port, TorchServe's 7070, grpc-go); an h2c replica's health is checked by grpc.health.v1.Health/Check unless --health-url is given")
	fs.Var(&c.services, "service", "`NAME=URL`: route /api/v1/service/NAME/... to URL as /..., as Azure ML's front end does; repeat NAME to add replicas. With it, --backend serves other paths only when given")
	c.backendOpts.register(fs)
	c.bufferOpts.register(fs)
	fs.DurationVar(&c.resolveInterval, "backend-resolve-interval", 10*time.Second, "how often backends given by DNS name are resolved again (new addresses join, vanished ones drain)")
	fs.IntVar(&c.maxPerReplica, "max-concurrent-requests-per-replica", 32, "requests one replica gets at once; more wait in the queue (Azure ML: max_concurrent_requests_per_instance, default 1 there). 32 keeps a one-worker inference server's backlog and connections bounded without throttling a concurrent server; set the replica's real concurrency for Azure ML's queueing")
	fs.DurationVar(&c.maxQueueWait, "max-queue-wait", 500*time.Millisecond, "how long a request may wait for a replica slot before 503 with Retry-After (Azure ML: max_queue_wait_ms)")
	fs.IntVar(&c.maxQueueLength, "max-queue-length", 1024, "requests that may wait per service; more get 503 at once")
	fs.StringVar(&c.certFile, flagCert, "", "full-chain certificate `file`, PEM, leaf first (Azure ML: ssl_cert_pem_file)")
	fs.StringVar(&c.keyFile, flagKey, "", "private key `file`, PEM, unencrypted (Azure ML: ssl_key_pem_file)")
	fs.StringVar(&c.cname, "ssl-cname", "", "the `name` clients use; the certificate must cover it, and TLS SNI and HTTP Host must match it (Azure ML: ssl_cname)")
	fs.StringVar(&c.caFile, "ca-file", "", "extra trusted root certificates, PEM `file`, used to check that the chain is complete")
	fs.BoolVar(&c.allowMissingSNI, "allow-missing-sni", false, "accept TLS clients that send no server name (SNI)")
	fs.StringVar(&c.authKeyFile, "auth-key-file", "", "`file` with one or two bearer keys (primary, secondary), one per line; requests must send Authorization: Bearer <key>. Reloaded on change")
	fs.StringVar(&c.sessionTicketKeyFile, "session-ticket-key-file", "", "`file` of TLS session ticket keys shared by instances behind one name, so that each resumes the others' sessions: one base64 key (32, 48 or 80 bytes) per line, or one binary key (nginx/HAProxy format); the first seals new tickets, all open them. Reloaded on change (default: keys made in process, rotated every 6h)")
	fs.BoolVar(&c.authExemptHealth, "auth-exempt-health", false, "let GET / (the health probe) through without a key when --auth-key-file is set")
	fs.BoolVar(&c.watch, "watch", true, "reload the certificate, key, auth key and session ticket key files when they change on disk (SIGHUP always reloads)")
	fs.DurationVar(&c.reloadSettle, "reload-settle", 5*time.Second, "how long a changed certificate, key or auth key file may stay invalid (say, the key written after the certificate) before the reload counts as failed")
	fs.DurationVar(&c.watchPoll, "watch-poll", 10*time.Second, "how often the watched files are also compared by content, in case a change event was lost")
	fs.StringVar(&c.metricsListen, "metrics-listen", "127.0.0.1:9464", "`address` for /healthz, /readyz and /metrics (empty: off); not 9090, which is Prometheus's own port and taken where a Prometheus runs on the same machine or in the same container group")
	fs.StringVar(&c.httpListen, "http-listen", "", "optional plain-HTTP `address` that redirects (308) to https://<cname>")
	fs.StringVar(&c.httpsPort, "https-port", "", "`port` that --http-listen redirects to (default: the port of --listen; set 443 behind a port-mapping load balancer)")
	fs.DurationVar(&c.upstreamTimeout, "upstream-timeout", 60*time.Second, "how long the backend may take to send its response headers, counted from the end of the request (504 after); a streamed answer may then last as long as it keeps sending (--stream-idle-timeout)")
	fs.DurationVar(&c.streamIdleTimeout, "stream-idle-timeout", proxy.DefaultStreamIdleTimeout, "how long a streamed answer (token stream, SSE, NDJSON, chunked, gRPC stream) may go without a byte from the backend before scoregate ends it for the client and the backend; no total cap. 0 turns the limit off")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 5*time.Second, "how long connecting to the backend may take (504 after; a refused connection is 502 at once)")
	fs.DurationVar(&c.bodyReadTimeout, "body-read-timeout", 60*time.Second, "how long a client may leave its request body stalled, between two reads (408 after)")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 10*time.Second, "how long a client may take for the TLS handshake and the request headers")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive client connection stays open")
	fs.DurationVar(&c.backendProbe, "health-interval", 5*time.Second, "how often each replica's health (GET /, or --health-url) is checked (one check may take as long, at most 5s); a failing replica gets no requests, and /readyz needs one healthy replica per service. A check that times out while the replica has requests outstanding, or answered one since the check before, counts as busy, not down (a one-worker model answers nothing while it scores): it stays in rotation and ready, unless it answered nothing for longer than --upstream-timeout. A refused connection, a non-2xx answer or a timeout while idle is down")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	c.maxBodyBytes = 100 << 20
	fs.Var(&c.maxBodyBytes, "max-body-bytes", "request body `limit` (413 above it)")
	c.maxHeaderBytes = 64 << 10
	fs.Var(&c.maxHeaderBytes, "max-header-bytes", "request header `limit` (431 above it)")
	fs.IntVar(&c.maxIdleConns, "backend-idle-conns", 256, "idle keep-alive connections kept open to the backend")
	fs.IntVar(&c.h2MaxConcurrentStreams, "h2-max-concurrent-streams", 250, "HTTP/2 streams a client connection may have open at once")
	fs.IntVar(&c.maxConns, "max-connections", 4096, "client connections open at once; beyond it new ones wait in the kernel's accept backlog (4096 × at most ~40 KB each fits the shipped 256 MiB pod limit)")
	fs.IntVar(&c.maxConnsPerIP, "max-connections-per-ip", 0, "client connections one address may have open at once; more are closed at accept (0: no limit)")
	fs.IntVar(&c.maxHeaderCount, "max-header-count", 100, "request header fields a request may carry (431 above it)")
	fs.StringVar(&c.clientCAFile, "client-ca-file", "", "PEM `file` of CAs for client certificates (mutual TLS), reloaded when it changes; verified clients' subject and SHA-256 go to the backend")
	fs.BoolVar(&c.clientCertRequired, "client-cert-required", false, "with --client-ca-file: refuse handshakes without a valid client certificate (otherwise one is asked for and verified if sent)")
	fs.DurationVar(&c.hstsMaxAge, "hsts-max-age", 0, "send Strict-Transport-Security with this max-age (0: none; HSTS on a scoring API is a choice)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "json", "log `format`: json or console")
	fs.BoolVar(&c.acme, "acme", false, "obtain and renew the certificate for --ssl-cname (or the --leaf-domain-label name) by ACME, instead of reading PEM files")
	fs.StringVar(&c.acmeCA, "acme-ca", certmagic.LetsEncryptProductionCA, "ACME directory `URL`")
	fs.StringVar(&c.acmeCARoot, "acme-ca-root", "", "PEM `file` of the root to trust for the ACME directory's HTTPS (a private CA)")
	fs.StringVar(&c.acmeEmail, "acme-email", "", "contact `address` for the ACME account (expiry notices)")
	fs.StringVar(&c.acmeDNSResolver, "acme-dns-resolver", "", "DNS server `host:port` asked whether the name resolves yet before the first order (default: the system's resolver)")
	fs.StringVar(&c.acmeEABKID, "acme-eab-kid", "", "External Account Binding key `ID`, for CAs that require one (ZeroSSL, Google Trust Services, DigiCert, Sectigo)")
	fs.StringVar(&c.acmeEABKey, "acme-eab-hmac-key-file", "", "`file` holding the External Account Binding HMAC key (base64url, as the CA gives it); never pass the key itself as a flag")
	fs.StringVar(&c.storage, "storage", "/var/lib/scoregate", "`directory` for ACME accounts, certificates and the leaf domain name; instances sharing it (Azure Files) order once per name")
	fs.StringVar(&c.leafLabel, "leaf-domain-label", "", "with --acme and --region: use the name LABEL + 6 random characters + .REGION.cloudapp.azure.com, kept in --storage")
	fs.StringVar(&c.region, "region", "", "Azure `region` for --leaf-domain-label, such as westeurope")
	fs.BoolVar(&c.overwriteDomain, "overwrite-existing-domain", false, "with --leaf-domain-label: replace a stored name drawn for another label with a new one (once: restarts and instances sharing --storage keep it); without it a label change is an error")
	fs.BoolVar(&c.allowUnknownRegion, "allow-unknown-region", false, "accept a --region that is not in scoregate's list of Azure regions (a region newer than the list)")
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
	if c.dev && !c.given["listen"] {
		c.listen = devListen
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
	if c.cname != "" {
		if err := certs.CheckName(c.cname); err != nil {
			return usagef("--ssl-cname %q: %v", c.cname, err)
		}
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
	}{{"upstream-timeout", c.upstreamTimeout}, {"dial-timeout", c.dialTimeout}, {"body-read-timeout", c.bodyReadTimeout}, {"read-header-timeout", c.readHeaderTimeout}, {"idle-timeout", c.idleTimeout}, {"shutdown-timeout", c.shutdownTimeout}, {"reload-settle", c.reloadSettle}, {"watch-poll", c.watchPoll}, {"health-interval", c.backendProbe}, {"backend-resolve-interval", c.resolveInterval}, {"max-queue-wait", c.maxQueueWait}} {
		if d.v <= 0 {
			return usagef("--%s %s: want a positive duration such as 30s", d.name, d.v)
		}
	}
	if c.streamIdleTimeout < 0 {
		return usagef("--stream-idle-timeout %s: want a positive duration such as 5m, or 0 for no limit", c.streamIdleTimeout)
	}
	if c.maxBodyBytes == 0 {
		return usagef("--max-body-bytes 0: want a positive size such as 100MiB")
	}
	if c.maxHeaderBytes < 1024 {
		return usagef("--max-header-bytes %s: want at least 1KiB", &c.maxHeaderBytes)
	}
	if c.maxConns < 1 || c.maxConnsPerIP < 0 || c.maxHeaderCount < 1 {
		return usagef("--max-connections and --max-header-count must be at least 1, --max-connections-per-ip at least 0")
	}
	if c.hstsMaxAge < 0 {
		return usagef("--hsts-max-age %s: want 0 (off) or a positive duration such as 8760h", c.hstsMaxAge)
	}
	if c.clientCertRequired && c.clientCAFile == "" {
		return usagef("--client-cert-required needs --client-ca-file")
	}
	if c.maxPerReplica < 1 || c.maxQueueLength < 1 {
		return usagef("--max-concurrent-requests-per-replica and --max-queue-length must be at least 1")
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
	case (c.leafLabel != "" || c.region != "" || c.overwriteDomain || c.allowUnknownRegion) && !c.acme:
		return usagef("--leaf-domain-label, --region, --overwrite-existing-domain and --allow-unknown-region need --acme")
	case (c.acmeDNSResolver != "" || c.acmeEABKID != "" || c.acmeEABKey != "") && !c.acme:
		return usagef("--acme-dns-resolver, --acme-eab-kid and --acme-eab-hmac-key-file need --acme")
	case !c.acme:
		return nil
	case c.dev:
		return usagef("--acme and --dev exclude each other")
	case c.certFile != "" || c.keyFile != "":
		return usagef("--acme obtains the certificate itself: drop --%s and --%s", flagCert, flagKey)
	case c.storage == "":
		return usagef("--acme needs --storage, a directory to keep the account and certificates in")
	case (c.acmeEABKID == "") != (c.acmeEABKey == ""):
		return usagef("--acme-eab-kid and --acme-eab-hmac-key-file go together")
	case (c.leafLabel == "") != (c.region == ""):
		return usagef("--leaf-domain-label and --region go together")
	case c.leafLabel != "" && c.cname != "":
		return usagef("--leaf-domain-label makes the name: drop --ssl-cname")
	case c.leafLabel == "" && c.cname == "":
		return usagef("--acme needs the name to obtain a certificate for: --ssl-cname, or --leaf-domain-label with --region")
	}
	return nil
}

func newLogger(c serveConfig, w io.Writer) zerolog.Logger {
	lvl, _ := zerolog.ParseLevel(c.logLevel)
	if c.logFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// runServe is `scoregate serve`: flags, then a server, run until ctx is
// done. SIGHUP reloads the certificate and keys; only serve registers it.
func runServe(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stdout)
	if err != nil {
		return err
	}
	sc, err := cfg.resolve(stderr)
	if err != nil {
		return err
	}
	s, err := newServer(sc, stdout)
	if err != nil {
		return err
	}
	if _, ok := getenv("GOGC"); !ok {
		// The live heap of a proxy is small (a few MiB) while each request
		// allocates; collecting at 5x the live heap instead of 2x costs a
		// few tens of MiB and saves most of the GC's CPU. Once idle
		// connections make the live heap large, the headroom is held to
		// maxGCHeadroom (gcPercentFor). GOGC overrides.
		debug.SetGCPercent(defaultGCPercent)
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		go tuneGC(tctx, time.Second)
	}
	if _, ok := getenv("GOMEMLIMIT"); !ok {
		// The GC target above lets garbage grow to 5x the live heap; near
		// the container's memory limit the collector must work harder
		// instead, or the kernel kills the pod (idle connections are what
		// fill it). GOMEMLIMIT overrides.
		limit, ok, err := containerMemoryLimit(os.ReadFile, cgroupMemoryFiles)
		switch {
		case err != nil:
			sc.Log.Warn().Err(err).Msg("cannot read the container's memory limit; set GOMEMLIMIT")
		case ok:
			debug.SetMemoryLimit(softMemoryLimit(limit))
			sc.Log.Info().Int64("container_limit_bytes", limit).Int64("go_memory_limit_bytes", softMemoryLimit(limit)).Msg("Go's soft memory limit set from the container's")
		}
	}
	hup := notifySIGHUP()
	defer signal.Stop(hup)
	s.reload = hup
	return s.run(ctx)
}

// notifySIGHUP returns a channel that receives SIGHUP; signal.Stop it.
func notifySIGHUP() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}
