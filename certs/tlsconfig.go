package certs

import (
	"crypto/tls"

	"github.com/scoregate/scoregate/metrics"
)

// ServerTLSConfig returns scoregate's server TLS settings, following
// Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only; for TLS 1.2, only
// ECDHE key exchange with AEAD ciphers (AES-GCM and ChaCha20-Poly1305);
// ALPN offering "h2" then "http/1.1"; session tickets on. (TLS 1.3 suites
// are not configurable in crypto/tls and are all AEAD.)
//
// Certificates come from src (a *Source or an *ACME), behind policy: the
// SNI policy is applied here, once, around whichever source, to full
// handshakes and to resumed sessions alike. Refusals and completed
// handshakes are recorded in m, which may be nil. Certificates is left
// empty so that a refused name gets the unrecognized_name alert.
//
// Each call returns a new Config that the caller owns.
func ServerTLSConfig(src CertSource, policy SNIPolicy, m *metrics.Metrics) *tls.Config {
	g := &sniGate{policy: policy, src: src, metrics: m}
	return &tls.Config{
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
		NextProtos:       []string{"h2", "http/1.1"},
		GetCertificate:   g.getCertificate,
		VerifyConnection: g.verifyConnection,
	}
}

// CertSource is what ServerTLSConfig needs of a certificate source: the
// certificate for a full handshake whose server name the policy accepted.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}
