package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// keyClientCAFile is the log field naming a ClientCAs file.
const keyClientCAFile = "client_ca_file"

// ClientCAs is the set of certificate authorities that TLS client
// certificates must chain to (mutual TLS), read from one PEM file and kept
// current by Reload (or Watch). A refused reload leaves the previous pool
// in force. Its methods are safe for concurrent use; it holds no goroutines
// or open files, so there is nothing to close.
type ClientCAs struct {
	path string
	log  zerolog.Logger

	// reloadMu serialises reloads, so that a slow load cannot publish an
	// older pool over a newer one. Pool never takes it.
	reloadMu sync.Mutex

	cur atomic.Pointer[x509.CertPool] // never nil after LoadClientCAs; never mutated once published
}

// LoadClientCAs reads the CA certificates in the PEM file at path. Its
// error is LoadRoots's: a *FileError (role CAFileRole) naming the file.
func LoadClientCAs(path string, log zerolog.Logger) (*ClientCAs, error) {
	pool, err := LoadRoots(path)
	if err != nil {
		return nil, err
	}
	c := &ClientCAs{path: path, log: log.With().Str(keyClientCAFile, path).Logger()}
	c.cur.Store(pool)
	return c, nil
}

// Path returns the file the CAs are read from.
func (c *ClientCAs) Path() string { return c.path }

// Pool returns the CAs in force. It does no I/O, and the pool it returns
// is never modified: a reload publishes a new one.
func (c *ClientCAs) Pool() *x509.CertPool { return c.cur.Load() }

// Reload reads the file again. A valid file that holds other CAs than the
// current pool replaces it (one info line); an unchanged one does nothing.
// An invalid file is logged as one warn line and returned, and the current
// pool stays in force.
func (c *ClientCAs) Reload() error { return c.TryReload(true) }

// TryReload is Reload for a watcher that tries again within a settle
// window (filewatch's Reload): unless final is set, an invalid file is
// returned without being logged.
func (c *ClientCAs) TryReload(final bool) error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	pool, err := LoadRoots(c.path)
	switch {
	case err != nil && !final:
		return err
	case err != nil:
		c.log.Warn().Err(err).Msg("client CA reload failed; the previous client CAs stay in force")
		return err
	case pool.Equal(c.cur.Load()):
		return nil
	}
	c.cur.Store(pool)
	c.log.Info().Msg("client CAs reloaded")
	return nil
}

// Watch reloads the CAs whenever the file changes on disk, until ctx is
// done, as Source.Watch does for the certificate pair; it returns ctx's
// error. Call it at most once per ClientCAs, from a goroutine the caller
// owns.
func (c *ClientCAs) Watch(ctx context.Context, cfg WatchConfig) error {
	return WatchFiles(ctx, []string{c.path}, cfg, c.log, c.TryReload)
}

// VerifyClientCerts makes cfg, a Config from ServerTLSConfig, ask every
// TLS client for a certificate and verify it against cas's pool in force
// at the handshake. With required (tls.RequireAndVerifyClientCert), a
// client without a valid certificate is refused; without it
// (tls.VerifyClientCertIfGiven), a client that sends none is served and
// one that sends an invalid one is refused. Refusals fail the handshake,
// and the handshake error log (NewHandshakeErrorLog) counts them as
// metrics.HandshakeClientCertRequired or metrics.HandshakeBadClientCert.
// The CA-issued chain of a verified client is in
// tls.ConnectionState.VerifiedChains, for the request path to pass on.
//
// The pool is swapped in with cfg.GetConfigForClient, which
// VerifyClientCerts sets (it must be unset): the handshake then runs on a
// copy of cfg whose ClientCAs is the current pool. Doing the verification
// in VerifyConnection instead would leave crypto/tls's own verification
// off, and with it VerifiedChains, the CA names sent in the certificate
// request, and the check crypto/tls makes when a session is resumed that
// the session's chain still ends at one of ClientCAs: with
// GetConfigForClient, a session established under a CA that has since
// been removed from the file is not resumed, and the client must present a
// certificate again.
//
// The copy is made from cfg at the first handshake after each reload, so
// changes to cfg must be made before the server starts. The TLS-ALPN-01
// validation handshake of an ACME CA (ALPN "acme-tls/1" alone), which
// carries no client certificate, runs on cfg itself, without client
// authentication.
func VerifyClientCerts(cfg *tls.Config, cas *ClientCAs, required bool) {
	auth := tls.VerifyClientCertIfGiven
	if required {
		auth = tls.RequireAndVerifyClientCert
	}
	type derived struct {
		pool *x509.CertPool
		cfg  *tls.Config
	}
	var cur atomic.Pointer[derived]
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Equal(h.SupportedProtos, []string{alpnACMETLS1}) {
			return nil, nil
		}
		pool := cas.Pool()
		if d := cur.Load(); d != nil && d.pool == pool {
			return d.cfg, nil
		}
		// Two handshakes racing here both build a copy; either is right.
		c := cfg.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = pool
		c.ClientAuth = auth
		cur.Store(&derived{pool: pool, cfg: c})
		return c, nil
	}
}
