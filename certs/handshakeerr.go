package certs

import (
	"log"
	"strings"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// handshakeErrorPrefix starts the error text in the line net/http logs for
// each failed TLS handshake: "http: TLS handshake error from ADDR: ERR".
const handshakeErrorPrefix = "TLS handshake error from "

// keyLogSource is the log field that names where a line came from.
const keyLogSource = "source"

// errNoCertificatesText is crypto/tls's error when GetCertificate returns
// nil, nil, as the SNI policy's refusals do. It says nothing of the
// reason, so NewHandshakeErrorLog never logs it as it is.
const errNoCertificatesText = "tls: no certificates configured"

// handshakeReasons maps substrings of a failed handshake's error text to
// scoregate_tls_handshake_errors_total reasons; the first match wins.
// crypto/tls errors have no types to branch on (and net/http logs only
// their text), so text is all there is. Each substring is crypto/tls's or
// net/http's wording; the real handshakes in handshakeerr_test.go pin the
// ones that matter.
var handshakeReasons = []struct{ substr, reason string }{
	// GetCertificate returned nil, nil: the SNI policy refused the name,
	// and sniGate counted it (crypto/tls's errNoCertificates).
	{errNoCertificatesText, ""},
	// net/http replaces the error when the first bytes look like an HTTP
	// request (and answers 400 on the raw connection).
	{"client sent an HTTP request to an HTTPS server", metrics.HandshakeNotTLS},
	{"does not look like a TLS handshake", metrics.HandshakeNotTLS},
	{"unsupported SSLv2 handshake", metrics.HandshakeProtocolVersion},
	{"unsupported versions", metrics.HandshakeProtocolVersion},
	{"protocol version", metrics.HandshakeProtocolVersion},
	{"no cipher suite supported", metrics.HandshakeNoSharedCipher},
	{"no mutual cipher", metrics.HandshakeNoSharedCipher},
	{"no ECDHE curve", metrics.HandshakeNoSharedCipher},
	{"bad record MAC", metrics.HandshakeBadRecord},
	{"record overflow", metrics.HandshakeBadRecord},
	{"oversized record", metrics.HandshakeBadRecord},
	{"unexpected message", metrics.HandshakeBadRecord},
	{"error decoding message", metrics.HandshakeBadRecord},
	{"i/o timeout", metrics.HandshakeTimeout},
	{"connection reset", metrics.HandshakeReset},
	{"broken pipe", metrics.HandshakeReset},
	{"EOF", metrics.HandshakeEOF},
	// Mutual TLS (VerifyClientCerts): the client's certificate is missing
	// or does not verify. crypto/tls's texts for the server's side; a
	// CertificateVerificationError reads "tls: failed to verify
	// certificate: x509: ...".
	{"client didn't provide a certificate", metrics.HandshakeClientCertRequired},
	{"failed to verify certificate", metrics.HandshakeBadClientCert},
	{"client certificate", metrics.HandshakeBadClientCert},
	{"client sent certificate", metrics.HandshakeBadClientCert},
	{"bad certificate", metrics.HandshakeBadCertificate},
	{"unknown certificate", metrics.HandshakeBadCertificate},
}

// HandshakeErrorReason maps the error text of a failed TLS handshake, as
// net/http logs it after "TLS handshake error from ADDR: ", to a
// scoregate_tls_handshake_errors_total reason (one of the
// metrics.Handshake* constants), or metrics.HandshakeOther for text it does
// not know. A leading "ADDR: " does no harm.
//
// It returns "" for the refusals of the SNI policy, which the tls.Config
// from ServerTLSConfig already counts where it decides them: a name
// refused in GetCertificate (crypto/tls then fails with "tls: no
// certificates configured"; TLS 1.2 asks GetCertificate even when a
// session is offered), and a TLS 1.3 session resumed for a refused name,
// refused in VerifyConnection, whose error crypto/tls returns as it is, so
// the text ends with ErrUnrecognizedName's or ErrMissingSNI's. Those are
// matched by the sentinels' own Error(), so rewording a sentinel cannot
// change the metric.
func HandshakeErrorReason(detail string) string {
	if strings.HasSuffix(detail, ErrUnrecognizedName.Error()) || strings.HasSuffix(detail, ErrMissingSNI.Error()) {
		return ""
	}
	if strings.Contains(detail, ErrCertificatePending.Error()) {
		return metrics.HandshakeNoCertificate // ACME's GetCertificate, before the first certificate
	}
	for _, r := range handshakeReasons {
		if strings.Contains(detail, r.substr) {
			return r.reason
		}
	}
	return metrics.HandshakeOther
}

// NewHandshakeErrorLog returns a logger for http.Server.ErrorLog on the
// TLS listener. net/http logs each failed handshake there, one line per
// connection; each is counted once in m by HandshakeErrorReason (refusals
// by the SNI policy are not counted again) and logged at debug level only,
// since scanners and probes would flood the log. Other lines are logged at
// warn level. Lines carry the field source=net/http.
//
// A handshake the SNI policy refused fails in crypto/tls with "tls: no
// certificates configured", which misleads; its line says instead what
// was refused: with refusals (the policy's SNIPolicy.Refusals), the name
// the client asked for (server_name) and the reason, as Refusals logged
// it; without, that the policy refused the name.
//
// m and refusals may be nil, which count and name nothing. The logger is
// safe for concurrent use.
func NewHandshakeErrorLog(logger zerolog.Logger, m *metrics.Metrics, refusals *Refusals) *log.Logger {
	return log.New(handshakeErrorLog{log: logger, metrics: m, refusals: refusals}, "", 0)
}

// handshakeErrorLog is the io.Writer behind NewHandshakeErrorLog; it gets
// one line per Write.
type handshakeErrorLog struct {
	log      zerolog.Logger
	metrics  *metrics.Metrics // may be nil
	refusals *Refusals        // may be nil
}

func (e handshakeErrorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if prefix, detail, ok := strings.Cut(line, handshakeErrorPrefix); ok {
		addr := ""
		if a, err, ok := strings.Cut(detail, ": "); ok {
			addr, detail = a, err // drop ADDR
		}
		if reason := HandshakeErrorReason(detail); reason != "" {
			e.metrics.HandshakeError(reason)
		}
		if strings.Contains(detail, errNoCertificatesText) {
			e.refused(prefix+handshakeErrorPrefix+addr, addr)
			return len(p), nil
		}
		e.log.Debug().Str(keyLogSource, "net/http").Msg(line)
		return len(p), nil
	}
	e.log.Warn().Str(keyLogSource, "net/http").Msg(line)
	return len(p), nil
}

// refused logs the handshake error line of a connection the SNI policy
// refused, head being the line up to the error ("http: TLS handshake
// error from ADDR"), with the reason in place of crypto/tls's text.
func (e handshakeErrorLog) refused(head, addr string) {
	f, ok := e.refusals.take(addr) // taken even when debug is off: it frees the entry
	ev := e.log.Debug().Str(keyLogSource, "net/http")
	if !ok {
		ev.Msg(head + ": refused by the SNI policy: the client asked for a server name other than the one served, or for none")
		return
	}
	ev.Str(keyReason, f.reason).Str(keyServerName, f.name).Str(keyServed, f.served).
		Msg(head + ": refused: " + refusalReason(f.reason, f.name, f.served))
}
