package main

import (
	"strings"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// tlsErrorLog is the TLS server's ErrorLog. net/http reports each failed
// handshake there, one line per connection ("http: TLS handshake error from
// ADDR: ERR"); they are counted by reason and logged at debug level only,
// since scanners and probes would flood the log. Other lines are logged at
// warn level.
type tlsErrorLog struct {
	log     zerolog.Logger
	metrics *metrics.Metrics
}

func (e tlsErrorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if _, detail, ok := strings.Cut(line, "TLS handshake error from "); ok {
		if reason := handshakeReason(detail); reason != "" {
			e.metrics.HandshakeError(reason)
		}
		e.log.Debug().Str("source", "net/http").Msg(line)
		return len(p), nil
	}
	e.log.Warn().Str("source", "net/http").Msg(line)
	return len(p), nil
}

// handshakeReason maps the error text of a failed handshake (crypto/tls
// errors have no types to branch on) to a scoregate_tls_handshake_errors_total
// reason. It returns "" for refusals by the SNI policy, which certs counts
// where it decides them.
func handshakeReason(detail string) string {
	for _, r := range []struct{ substr, reason string }{
		{"no certificates configured", ""}, // GetCertificate refused the name
		{"unrecognized server name", ""},   // VerifyConnection refused a resumed name
		{"missing server name", ""},        // VerifyConnection refused a resumed, SNI-less session
		{"unsupported versions", metrics.HandshakeProtocolVersion},
		{"protocol version", metrics.HandshakeProtocolVersion},
		{"no cipher suite supported", metrics.HandshakeNoSharedCipher},
		{"no mutual cipher", metrics.HandshakeNoSharedCipher},
		{"no ECDHE curve", metrics.HandshakeNoSharedCipher},
		{"does not look like a TLS handshake", metrics.HandshakeNotTLS},
		{"bad record MAC", metrics.HandshakeBadRecord},
		{"record overflow", metrics.HandshakeBadRecord},
		{"oversized record", metrics.HandshakeBadRecord},
		{"unexpected message", metrics.HandshakeBadRecord},
		{"i/o timeout", metrics.HandshakeTimeout},
		{"connection reset", metrics.HandshakeReset},
		{"broken pipe", metrics.HandshakeReset},
		{"EOF", metrics.HandshakeEOF},
		{"bad certificate", metrics.HandshakeBadCertificate},
		{"unknown certificate", metrics.HandshakeBadCertificate},
	} {
		if strings.Contains(detail, r.substr) {
			return r.reason
		}
	}
	return metrics.HandshakeOther
}
