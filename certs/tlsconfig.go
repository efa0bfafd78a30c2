package certs

import "crypto/tls"

// ServerTLSConfig returns scoregate's server TLS settings, following
// Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only; for TLS 1.2, only
// ECDHE key exchange with AEAD ciphers (AES-GCM and ChaCha20-Poly1305);
// ALPN offering "h2" then "http/1.1"; session tickets on. (TLS 1.3 suites
// are not configurable in crypto/tls and are all AEAD.) Certificates come
// from src, usually a *Source; Certificates is left empty so that a nil,
// nil result sends the unrecognized_name alert.
//
// Each call returns a new Config that the caller owns.
func ServerTLSConfig(src CertSource) *tls.Config {
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
		GetCertificate:   src.GetCertificate,
		VerifyConnection: src.VerifyConnection,
	}
}

// CertSource is what ServerTLSConfig needs of a certificate source: a
// certificate for each full handshake, and a last look at every handshake,
// resumed ones included (those skip GetCertificate).
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	VerifyConnection(tls.ConnectionState) error
}
