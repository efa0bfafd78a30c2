package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
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
	CertFile string         // required; PEM chain, leaf first
	KeyFile  string         // required; PEM private key
	CName    string         // required; the only SNI name served, and the leaf must cover it
	Roots    *x509.CertPool // extra trust anchors for the incomplete-chain warning; if nil, the system pool only
	// AllowMissingSNI serves clients that send no SNI. If false, they are
	// refused with an unrecognized_name alert.
	AllowMissingSNI bool
	Now             func() time.Time // for validity checks and the expiry warning; if nil, time.Now
	Metrics         *metrics.Metrics // handshakes, refusals, reloads and expiry are recorded here; may be nil
}

// Source serves the current certificate pair to crypto/tls and applies the
// SNI policy. Its methods are safe for concurrent use. A Source holds no
// goroutines or open files, so there is nothing to close; file watching
// (certs/filewatch) calls Reload.
type Source struct {
	certFile, keyFile string
	opts              LoadOptions
	sni               sniGate
	log               zerolog.Logger

	// reloadMu serialises Reload so that a slow load cannot publish an
	// older pair over a newer one. GetCertificate never takes it.
	reloadMu sync.Mutex

	cur atomic.Pointer[Pair] // never nil after NewSource; a published Pair is never mutated

	reloadsOK, reloadErrors atomic.Uint64
	lastReload              atomic.Pointer[ReloadStatus]
	metrics                 *metrics.Metrics
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
		return nil, errors.New("certs: SourceConfig.CertFile is required")
	case cfg.KeyFile == "":
		return nil, errors.New("certs: SourceConfig.KeyFile is required")
	case cfg.CName == "":
		return nil, errors.New("certs: SourceConfig.CName is required")
	}
	s := &Source{
		certFile: cfg.CertFile,
		keyFile:  cfg.KeyFile,
		opts:     LoadOptions{CName: cfg.CName, Roots: cfg.Roots, Now: cfg.Now},
		sni:      sniGate{policy: SNIPolicy{CName: cfg.CName, AllowMissingSNI: cfg.AllowMissingSNI}, metrics: cfg.Metrics},
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

// GetCertificate implements tls.Config.GetCertificate: it applies the SNI
// policy and returns the current pair's certificate. It does no I/O and
// never logs, because it runs once per handshake.
//
// A refused name is counted and answered with (nil, nil): with an empty
// tls.Config.Certificates, crypto/tls then sends the unrecognized_name
// alert, whereas returning an error would send internal_error. A resumed
// session skips GetCertificate; VerifyConnection applies the policy to it.
func (s *Source) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var name string
	if h != nil {
		name = h.ServerName
	}
	if s.sni.refused(name) {
		return nil, nil
	}
	return &s.cur.Load().Certificate, nil
}

// VerifyConnection implements tls.Config.VerifyConnection. It refuses a
// resumed session whose server name the SNI policy refuses: a session
// ticket issued for the cname must not open a connection for another
// name. Full handshakes were already checked by GetCertificate. It also
// records every completed handshake in the metrics.
func (s *Source) VerifyConnection(cs tls.ConnectionState) error {
	return s.sni.verifyConnection(cs)
}

// Reload reads and validates the files again. If they are valid and differ
// from the current pair, it publishes the new pair with one atomic store
// and logs one info line and its warnings; identical files publish and log
// nothing. If they are invalid, the current pair keeps serving, the error
// is logged as one warn line and counted, and Reload returns it.
func (s *Source) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.publish(LoadPair(s.certFile, s.keyFile, s.opts))
}

// publish stores p, or logs and counts err; s.reloadMu must be held.
func (s *Source) publish(p *Pair, err error) error {
	s.lastReload.Store(&ReloadStatus{At: s.now(), Err: err})
	if err != nil {
		s.reloadErrors.Add(1)
		s.metrics.CertReloadFailed()
		s.log.Warn().Err(err).Msg("certificate reload failed; still serving the previous certificate")
		return err
	}
	if p.Hash == s.cur.Load().Hash {
		return nil
	}
	s.cur.Store(p)
	s.reloadsOK.Add(1)
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

// Counts are a Source's cumulative counters since NewSource.
type Counts struct {
	RefusedUnrecognizedName uint64 // handshakes refused for another server name
	RefusedMissingSNI       uint64 // handshakes refused for sending no server name
	ReloadsOK               uint64 // reloads that published a changed pair
	ReloadErrors            uint64 // reloads that failed and kept the old pair
}

// Counts returns the current counters. Each field is read atomically, but
// the four are not one snapshot.
func (s *Source) Counts() Counts {
	return Counts{
		RefusedUnrecognizedName: s.sni.refusedName.Load(),
		RefusedMissingSNI:       s.sni.refusedMissing.Load(),
		ReloadsOK:               s.reloadsOK.Load(),
		ReloadErrors:            s.reloadErrors.Load(),
	}
}
