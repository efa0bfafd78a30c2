package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// Log field keys.
const (
	keyCertFile = "cert_file"
	keyKeyFile  = "key_file"
	keySerial   = "serial"
	keyNotAfter = "not_after"
	keyHash     = "sha256"
)

// SourceConfig configures a Source.
type SourceConfig struct {
	CertFile string           // required; PEM chain, leaf first
	KeyFile  string           // required; PEM private key
	CName    string           // required; the leaf must cover it
	Roots    *x509.CertPool   // extra trust anchors for the incomplete-chain warning; if nil, the system pool only
	Now      func() time.Time // for validity checks; if nil, time.Now
	Metrics  *metrics.Metrics // reloads and expiry are recorded here; may be nil
}

// Source serves the current certificate pair from PEM files to crypto/tls
// (through ServerTLSConfig, which applies the SNI policy). Its methods are
// safe for concurrent use. A Source holds no goroutines or open files, so
// there is nothing to close; Watch (or the caller's own watcher) calls
// Reload.
type Source struct {
	certFile, keyFile string
	opts              LoadOptions
	log               zerolog.Logger
	metrics           *metrics.Metrics

	// reloadMu serialises reloads so that a slow load cannot publish an
	// older pair over a newer one. GetCertificate never takes it.
	reloadMu sync.Mutex

	cur        atomic.Pointer[Pair] // never nil after NewSource; a published Pair is never mutated
	lastReload atomic.Pointer[ReloadStatus]
}

// ReloadStatus is the outcome of the last load of a Source's files.
type ReloadStatus struct {
	At  time.Time
	Err error // nil: the files were valid (and published if they changed)
}

// NewSource loads and validates the pair once. Its error is LoadPair's
// (usually a *FileError). NewSource does not log the pair's Warnings; the
// caller reports Current().Warnings as it sees fit.
func NewSource(cfg SourceConfig, log zerolog.Logger) (*Source, error) {
	switch {
	case cfg.CertFile == "":
		return nil, &ConfigError{Field: "CertFile", Err: errRequired}
	case cfg.KeyFile == "":
		return nil, &ConfigError{Field: "KeyFile", Err: errRequired}
	case cfg.CName == "":
		return nil, &ConfigError{Field: "CName", Err: errRequired}
	}
	if err := CheckName(cfg.CName); err != nil {
		return nil, &ConfigError{Field: "CName", Value: cfg.CName, Err: err}
	}
	s := &Source{
		certFile: cfg.CertFile,
		keyFile:  cfg.KeyFile,
		opts:     LoadOptions{CName: cfg.CName, Roots: cfg.Roots, Now: cfg.Now},
		log:      log.With().Str(keyCertFile, cfg.CertFile).Str(keyKeyFile, cfg.KeyFile).Logger(),
		metrics:  cfg.Metrics,
	}
	p, err := LoadPair(cfg.CertFile, cfg.KeyFile, s.opts)
	if err != nil {
		return nil, err
	}
	s.cur.Store(p)
	s.lastReload.Store(&ReloadStatus{At: s.now()})
	s.metrics.CertLoaded(sourceFile, p.Leaf.NotAfter, false)
	return s, nil
}

// GetCertificate returns the current pair's certificate: it is the
// CertSource of ServerTLSConfig, which applies the SNI policy first. It
// does no I/O and never logs, because it runs once per handshake.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &s.cur.Load().Certificate, nil
}

// Reload reads and validates the files again. If they are valid and differ
// from the current pair, it publishes the new pair with one atomic store
// and logs one info line and its warnings; identical files publish and log
// nothing. If they are invalid, the current pair keeps serving, the error
// is logged as one warn line and counted, and Reload returns it.
func (s *Source) Reload() error { return s.TryReload(true) }

// TryReload is Reload for a watcher that tries again (filewatch's Reload):
// unless final is set, invalid files are neither logged nor counted, and
// the last reload's status is left alone.
func (s *Source) TryReload(final bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	p, err := LoadPair(s.certFile, s.keyFile, s.opts)
	if err != nil && !final {
		return err
	}
	return s.publish(p, err)
}

// publish stores p, or logs and counts err; s.reloadMu must be held.
func (s *Source) publish(p *Pair, err error) error {
	s.lastReload.Store(&ReloadStatus{At: s.now(), Err: err})
	if err != nil {
		s.metrics.CertReloadFailed()
		s.log.Warn().Err(err).Msg("certificate reload failed; still serving the previous certificate")
		return err
	}
	if p.Hash == s.cur.Load().Hash {
		return nil
	}
	s.cur.Store(p)
	s.metrics.CertLoaded(sourceFile, p.Leaf.NotAfter, true)
	s.log.Info().
		Str(keySerial, p.Leaf.SerialNumber.Text(16)).
		Time(keyNotAfter, p.Leaf.NotAfter).
		Str(keyHash, hex.EncodeToString(p.Hash[:8])).
		Msg("certificate reloaded")
	for _, w := range p.Warnings {
		s.log.Warn().Msg(w)
	}
	return nil
}

func (s *Source) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// LastReload returns the outcome of the last load of the files: at
// NewSource, by Reload or by Watch.
func (s *Source) LastReload() ReloadStatus { return *s.lastReload.Load() }

// sourceFile is the metrics' source label of certificates from files.
const sourceFile = "file"

// Current returns the pair being served. It is never nil and must not be
// modified.
func (s *Source) Current() *Pair { return s.cur.Load() }

// Status reports the pair being served and the last load of the files.
func (s *Source) Status() Status {
	last := s.LastReload()
	return Status{Source: sourceFile, Leaf: s.Current().Leaf, LastReload: &last}
}
