package certs

import (
	"crypto/rand"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scoregate/scoregate/metrics"
)

// ServerTLSConfig returns scoregate's server TLS settings, following
// Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only; for TLS 1.2, only
// ECDHE key exchange with AEAD ciphers (AES-GCM and ChaCha20-Poly1305);
// ALPN offering "h2" then "http/1.1"; session tickets on, each resuming a
// session for at most MaxTicketAge. (TLS 1.3 suites are not configurable
// in crypto/tls and are all AEAD.)
//
// Certificates come from src (a *Source or an *ACME), behind policy: the
// SNI policy is applied here, once, around whichever source, to full
// handshakes and to resumed sessions alike. Refusals and completed
// handshakes are recorded in m, which may be nil. Certificates is left
// empty so that a refused name gets the unrecognized_name alert.
//
// Session tickets are sealed by WrapSession and UnwrapSession with keys
// the Config makes itself, replaced every 6 hours and forgotten
// MaxTicketAge after they were made (see MaxTicketAge). Time, if set on
// the returned Config before it is used, is their clock too.
// UseTicketKeyFile replaces them with keys shared by every instance that
// reads the same file.
//
// Each call returns a new Config, with its own ticket keys, that the
// caller owns.
func ServerTLSConfig(src CertSource, policy SNIPolicy, m *metrics.Metrics) *tls.Config {
	g := &sniGate{policy: policy, src: src, metrics: m}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		MaxVersion: tls.VersionTLS13,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		// http/1.0 too: a client that offers only it (curl --http1.0)
		// would otherwise be refused with no_application_protocol.
		NextProtos:       []string{"h2", "http/1.1", "http/1.0"},
		GetCertificate:   g.getCertificate,
		VerifyConnection: g.verifyConnection,
	}
	// The clock is read from cfg at each use, so that a Time set by the
	// caller after this returns (tests) applies to the keys as well.
	tk := &ticketKeys{now: func() time.Time {
		if cfg.Time != nil {
			return cfg.Time()
		}
		return time.Now()
	}}
	cfg.WrapSession = tk.wrap
	cfg.UnwrapSession = tk.unwrap
	return cfg
}

// CertSource is what ServerTLSConfig needs of a certificate source: the
// certificate for a full handshake whose server name the policy accepted.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// MaxTicketAge is the longest a session ticket issued by a ServerTLSConfig
// resumes a session: the key that sealed it is forgotten that long after
// it was made, at the latest. testssl.sh rates ticket keys used for longer
// than a day LOW ("PFS requires session ticket keys to be rotated <
// daily"); crypto/tls, left to itself, makes a new key daily but accepts
// each for 7 days.
//
// Two limits remain, both crypto/tls's own. The lifetime a TLS 1.3
// NewSessionTicket message announces is always 7 days (crypto/tls's
// maxSessionTicketLifetime, not configurable), so clients keep tickets
// that long, and testssl.sh, which reads that hint, still reports 7 days;
// a ticket offered after MaxTicketAge gets a full handshake. And in TLS
// 1.2, crypto/tls re-issues a ticket on every resumption that carries the
// original session's master secret (sealed with the current key), so a
// TLS 1.2 client that resumes at least once every MaxTicketAge keeps one
// master secret for up to crypto/tls's 7-day limit on a session's age.
// TLS 1.3 derives a new secret on each resumption, with a fresh (EC)DHE
// exchange.
const MaxTicketAge = 24 * time.Hour

// ticketKeyRotation is how often a new ticket key starts sealing tickets.
// A ticket resumes for between MaxTicketAge-ticketKeyRotation and
// MaxTicketAge after it was issued, and at most
// MaxTicketAge/ticketKeyRotation keys are tried on each.
const ticketKeyRotation = 6 * time.Hour

// ticketKeys seals and opens session tickets (tls.Config's WrapSession and
// UnwrapSession) with keys of its own, replaced every ticketKeyRotation and
// dropped MaxTicketAge after they were made. A tls.Config with
// SetSessionTicketKeys would rotate the same way, but net/http serves a
// clone of the Config it is given, made when serving starts, and the
// clone does not see keys set later; the two functions are shared by every
// clone. Its methods are safe for concurrent use.
type ticketKeys struct {
	now func() time.Time

	mu  sync.Mutex                   // serialises rotations; the handshake path only loads cur
	cur atomic.Pointer[ticketKeySet] // nil until the first ticket; a published set is never mutated
}

// ticketKeySet is the keys in force, newest first.
type ticketKeySet struct {
	seal    *tls.Config // holds only the keys, for EncryptTicket and DecryptTicket
	created []time.Time // of each key, in the order given to SetSessionTicketKeys
	keys    [][32]byte
	until   time.Time // when a new key is due or the oldest expires
}

func (k *ticketKeys) wrap(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	return k.current().seal.EncryptTicket(cs, ss)
}

// unwrap returns (nil, nil) for a ticket that no key in force opens, which
// makes crypto/tls do a full handshake.
func (k *ticketKeys) unwrap(ticket []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	return k.current().seal.DecryptTicket(ticket, cs)
}

// current returns the keys in force now, rotating them when a new key is
// due or the oldest has expired.
func (k *ticketKeys) current() *ticketKeySet {
	now := k.now()
	if s := k.cur.Load(); s != nil && now.Before(s.until) {
		return s
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.cur.Load()
	if old != nil && now.Before(old.until) {
		return old // another handshake rotated them
	}
	s := &ticketKeySet{}
	if old == nil || now.Sub(old.created[0]) >= ticketKeyRotation {
		var key [32]byte
		rand.Read(key[:]) // never fails (crypto/rand since Go 1.24)
		s.keys, s.created = append(s.keys, key), append(s.created, now)
	}
	if old != nil {
		for i, c := range old.created {
			if now.Sub(c) < MaxTicketAge {
				s.keys, s.created = append(s.keys, old.keys[i]), append(s.created, c)
			}
		}
	}
	s.until = s.created[0].Add(ticketKeyRotation)
	if exp := s.created[len(s.created)-1].Add(MaxTicketAge); exp.Before(s.until) {
		s.until = exp
	}
	s.seal = &tls.Config{}
	s.seal.SetSessionTicketKeys(s.keys)
	k.cur.Store(s)
	return s
}
