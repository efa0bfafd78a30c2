package certs

import (
	"crypto/tls"
	"errors"
	"sync/atomic"

	"github.com/scoregate/scoregate/metrics"
)

// sniGate applies an SNIPolicy and counts what it refuses: the one SNI code
// path that Source and ACME share. Its methods are safe for concurrent use.
type sniGate struct {
	policy                      SNIPolicy
	metrics                     *metrics.Metrics // may be nil
	refusedName, refusedMissing atomic.Uint64
}

// refused applies the policy and counts a refusal.
func (g *sniGate) refused(serverName string) bool {
	err := g.policy.Check(serverName)
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrMissingSNI):
		g.refusedMissing.Add(1)
		g.metrics.HandshakeError(metrics.HandshakeMissingSNI)
	default:
		g.refusedName.Add(1)
		g.metrics.HandshakeError(metrics.HandshakeUnrecognizedName)
	}
	return true
}

// verifyConnection refuses a resumed session whose server name the policy
// refuses (a session ticket issued for the cname must not open a connection
// for another name; full handshakes were checked in GetCertificate), and
// records every completed handshake.
func (g *sniGate) verifyConnection(cs tls.ConnectionState) error {
	if cs.DidResume && g.refused(cs.ServerName) {
		return ErrUnrecognizedName
	}
	g.metrics.HandshakeOK(metrics.TLSVersion(cs.Version), cs.DidResume)
	return nil
}
