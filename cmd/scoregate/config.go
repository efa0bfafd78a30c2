package main

import (
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/proxy"
)

// serverConfig is what a server is built from: serve's flags resolved
// (serveConfig.resolve), or a Go literal (the bench command, tests). The
// zero value of a field means what its comment says.
type serverConfig struct {
	Listen        string // TLS address; required
	MetricsListen string // /healthz, /readyz, /metrics; "": none
	HTTPListen    string // plain-HTTP redirect (and ACME HTTP-01); "": none
	HTTPSPort     string // the port the redirect points to; "": Listen's

	Backends []*url.URL            // the default service's replicas; none with Dev: the demo backend
	Services map[string][]*url.URL // the routed services (--service)
	CName    string                // the name clients use; required

	// The certificate: a PEM pair, or ACME when ACME is not nil.
	CertFile, KeyFile string
	ACME              *acmeSettings
	Roots             *x509.CertPool // extra roots for the chain-completeness warning
	AllowMissingSNI   bool

	AuthKeyFile      string // bearer keys; "": none required
	AuthExemptHealth bool

	SessionTicketKeyFile string // shared session ticket keys; "": keys made and rotated in process

	Watch       bool              // watch the certificate, key and key files (SIGHUP reloads either way)
	WatchConfig certs.WatchConfig // the watch's debounce, poll and settle

	// Proxy configures the request path; its CName, backends and Auth are
	// set by newServer.
	Proxy proxy.Config

	ReadHeaderTimeout      time.Duration // if zero, none
	IdleTimeout            time.Duration // if zero, net/http's (none without a ReadTimeout)
	ShutdownTimeout        time.Duration // if zero, 30s
	MaxHeaderBytes         int           // if zero, net/http's 1 MiB
	H2MaxConcurrentStreams int           // if zero, net/http's 250
	MaxConns               int           // client connections open at once; if zero, no limit
	MaxConnsPerIP          int           // per client address; if zero, no limit
	ClientCAFile           string        // mutual TLS: CAs for client certificates; "": none asked for
	ClientCertRequired     bool          // with ClientCAFile: refuse clients without a valid certificate
	HSTSMaxAge             time.Duration // Strict-Transport-Security max-age; if zero, none sent
	Pprof                  bool

	Dev       bool   // development mode: the loud warning and the curl line
	DevCAFile string // the CA of Dev's certificate, for the curl line
	LeafLabel string // --leaf-domain-label, for the DNS instruction
	Region    string

	Log zerolog.Logger

	// Preopened are listeners bound by a test, by the flag that would
	// name their address ("listen", "http-listen", "metrics-listen").
	Preopened map[string]net.Listener
}

// acmeSettings are the ACME flags.
type acmeSettings struct {
	CA          string
	CARoot      *x509.CertPool
	Email       string
	Storage     string
	DNSResolver string     // "": the system's
	EAB         *certs.EAB // nil: none
}

// resolve derives what the flags imply: the logger, the backend URL, the
// extra roots, the --dev certificate and demo backend, the ACME settings and
// the name made from --leaf-domain-label. The parsed flags stay as given.
// Errors name the flag at fault.
func (c serveConfig) resolve(stderr io.Writer) (serverConfig, error) {
	backends, services, err := c.backendURLs()
	if err != nil {
		return serverConfig{}, err
	}
	sc := serverConfig{
		Listen:               c.listen,
		MetricsListen:        c.metricsListen,
		HTTPListen:           c.httpListen,
		HTTPSPort:            c.httpsPort,
		Backends:             backends,
		Services:             services,
		CName:                c.cname,
		CertFile:             c.certFile,
		KeyFile:              c.keyFile,
		AllowMissingSNI:      c.allowMissingSNI,
		AuthKeyFile:          c.authKeyFile,
		AuthExemptHealth:     c.authExemptHealth,
		SessionTicketKeyFile: c.sessionTicketKeyFile,
		Watch:                c.watch,
		WatchConfig:          certs.WatchConfig{Settle: c.reloadSettle, Poll: c.watchPoll},
		Proxy: proxy.Config{
			UpstreamTimeout:         c.upstreamTimeout,
			StreamIdleTimeout:       streamIdle(c.streamIdleTimeout),
			DialTimeout:             c.dialTimeout,
			BodyReadTimeout:         c.bodyReadTimeout,
			ProbeInterval:           c.backendProbe,
			ResolveInterval:         c.resolveInterval,
			MaxConcurrentPerReplica: c.maxPerReplica,
			MaxQueueWait:            c.maxQueueWait,
			MaxQueueLength:          c.maxQueueLength,
			MaxBodyBytes:            int64(c.maxBodyBytes),
			MaxIdleConns:            c.maxIdleConns,
			MaxHeaderCount:          c.maxHeaderCount,
			DisableAccessLog:        !c.accessLog,
		},
		ReadHeaderTimeout:      c.readHeaderTimeout,
		IdleTimeout:            c.idleTimeout,
		ShutdownTimeout:        c.shutdownTimeout,
		MaxHeaderBytes:         int(c.maxHeaderBytes),
		H2MaxConcurrentStreams: c.h2MaxConcurrentStreams,
		MaxConns:               c.maxConns,
		MaxConnsPerIP:          c.maxConnsPerIP,
		ClientCAFile:           c.clientCAFile,
		ClientCertRequired:     c.clientCertRequired,
		HSTSMaxAge:             c.hstsMaxAge,
		Pprof:                  c.pprof,
		Dev:                    c.dev,
		LeafLabel:              c.leafLabel,
		Region:                 c.region,
		Log:                    newLogger(c, stderr),
	}
	if err := c.backendOpts.apply(backends, services, &sc.Proxy); err != nil {
		return sc, err
	}
	if err := c.bufferOpts.apply(&sc.Proxy); err != nil {
		return sc, err
	}
	if c.caFile != "" {
		if sc.Roots, err = certs.LoadRoots(c.caFile); err != nil {
			return sc, usageError{flagError(err)}
		}
	}
	if c.dev {
		if err := c.resolveDev(&sc); err != nil {
			return sc, err
		}
	}
	if c.acme {
		sc.ACME = &acmeSettings{CA: c.acmeCA, Email: c.acmeEmail, Storage: c.storage, DNSResolver: c.acmeDNSResolver}
		if c.acmeEABKID != "" {
			key, err := os.ReadFile(c.acmeEABKey)
			if err != nil {
				return sc, usagef("--acme-eab-hmac-key-file %q: %v", c.acmeEABKey, errors.Unwrap(err))
			}
			sc.ACME.EAB = &certs.EAB{KeyID: c.acmeEABKID, MACKey: string(key)}
		}
		if c.acmeCARoot != "" {
			if sc.ACME.CARoot, err = certs.LoadRoots(c.acmeCARoot); err != nil {
				return sc, usagef("--acme-ca-root: %w", err)
			}
		}
		if c.leafLabel != "" {
			overwrite := certs.LeafKeep
			if c.overwriteDomain {
				// Azure ML's meaning: a new name for a new label,
				// once; restarts and siblings keep it.
				overwrite = certs.LeafReplaceOtherLabel
			}
			d, err := certs.LeafDomainName(c.storage, c.leafLabel, c.region,
				certs.LeafDomainOptions{Overwrite: overwrite, AllowUnknownRegion: c.allowUnknownRegion})
			if err != nil {
				return sc, leafDomainError(err)
			}
			sc.CName = d.Name
			if d.Replaced != "" {
				sc.Log.Warn().Str("old", d.Replaced).Str("new", d.Name).Msg("--overwrite-existing-domain: the stored name was drawn for another label; replaced it (update the DNS label)")
			}
		}
	}
	return sc, nil
}

// resolveDev makes the --dev certificate (unless files were given) and asks
// for the demo scoring backend (unless --backend was given).
func (c serveConfig) resolveDev(sc *serverConfig) error {
	if c.certFile == "" {
		files, err := certs.WriteDev(c.devDir, sc.CName)
		if err != nil {
			return usagef("--dev-dir %q: %w", c.devDir, err)
		}
		sc.CertFile, sc.KeyFile, sc.DevCAFile = files.CertFile, files.KeyFile, files.CAFile
		roots, err := certs.LoadRoots(files.CAFile)
		if err != nil {
			return usagef("--dev-dir: %w", err)
		}
		if sc.Roots == nil {
			sc.Roots = roots
		}
	}
	if !c.given["backend"] && len(sc.Services) == 0 {
		sc.Backends = nil // the demo backend
	}
	return nil
}

// streamIdle is --stream-idle-timeout as proxy.Config takes it: 0 (no
// limit) is negative there, where zero means the default.
func streamIdle(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
