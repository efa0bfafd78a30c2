package certs

import (
	"crypto/tls"
	"errors"

	"github.com/scoregate/scoregate/metrics"
)

// sniGate applies an SNIPolicy around a certificate source and records
// what it refuses and every completed handshake in the metrics, which are
// the only count of them. ServerTLSConfig builds one per tls.Config: the
// one SNI code path, whichever the source. Its methods are safe for
// concurrent use.
type sniGate struct {
	policy  SNIPolicy
	src     CertSource
	metrics *metrics.Metrics // may be nil
}

// refused applies the policy and records a refusal in the metrics and
// the policy's Refusals; client is the client's address, "" if unknown.
func (g *sniGate) refused(serverName, client string) bool {
	err := g.policy.Check(serverName)
	if err == nil {
		return false
	}
	reason := metrics.HandshakeUnrecognizedName
	if errors.Is(err, ErrMissingSNI) {
		reason = metrics.HandshakeMissingSNI
	}
	g.metrics.HandshakeError(reason)
	g.policy.Refusals.refused(reason, serverName, g.policy.CName, client)
	return true
}

// getCertificate is tls.Config.GetCertificate: the policy, then the
// source. A refused name is answered with (nil, nil): with an empty
// tls.Config.Certificates, crypto/tls then sends the unrecognized_name
// alert, whereas returning an error would send internal_error.
func (g *sniGate) getCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var name, client string
	if h != nil {
		name = h.ServerName
		if h.Conn != nil {
			client = h.Conn.RemoteAddr().String()
		}
	}
	if g.refused(name, client) {
		return nil, nil
	}
	return g.src.GetCertificate(h)
}

// verifyConnection refuses a resumed session whose server name the policy
// refuses (a session ticket issued for the cname must not open a connection
// for another name; full handshakes were checked in getCertificate), and
// records every completed handshake.
func (g *sniGate) verifyConnection(cs tls.ConnectionState) error {
	// ConnectionState has no connection: the refusal is logged without
	// the client's address.
	if cs.DidResume && g.refused(cs.ServerName, "") {
		if cs.ServerName == "" {
			return ErrMissingSNI
		}
		return ErrUnrecognizedName
	}
	g.metrics.HandshakeOK(metrics.TLSVersion(cs.Version), cs.DidResume)
	return nil
}
