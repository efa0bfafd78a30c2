package certs

import (
	"errors"
	"fmt"
)

// Sentinel errors. LoadPair, ParsePair, LoadRoots and SNIPolicy.Check return
// errors that wrap exactly one of these, so callers can branch with
// errors.Is. The wrapping error's message carries the details (indexes,
// subjects, names, dates).
var (
	// ErrNoCertificate means the certificate file (or CA file) holds no
	// PEM "CERTIFICATE" block: it is empty, not PEM, or DER.
	ErrNoCertificate = errors.New("no certificate found")
	// ErrMalformedCertificate means a "CERTIFICATE" block does not hold a
	// parsable X.509 certificate.
	ErrMalformedCertificate = errors.New("malformed certificate")
	// ErrUnexpectedBlock means a file holds a PEM block it should not, such
	// as a private key in the certificate file, or two keys in the key file.
	ErrUnexpectedBlock = errors.New("unexpected PEM block")
	// ErrChainOrder means the certificates in the certificate file are not
	// a chain: they are in the wrong order, an intermediate is missing (a
	// gap), or a certificate does not belong (a stray).
	ErrChainOrder = errors.New("certificates are not a chain")
	// ErrNoKey means the key file holds no PEM private key.
	ErrNoKey = errors.New("no private key found")
	// ErrMalformedKey means a private key block could not be parsed.
	ErrMalformedKey = errors.New("malformed private key")
	// ErrEncryptedKey means the private key is encrypted with a passphrase;
	// scoregate needs it decrypted.
	ErrEncryptedKey = errors.New("private key is encrypted")
	// ErrWeakKey means the key is too small, such as RSA below 2048 bits.
	ErrWeakKey = errors.New("private key is too weak")
	// ErrUnsupportedKey means the key's algorithm or curve is not one of
	// RSA, ECDSA P-256, ECDSA P-384 or Ed25519 (for example ECDSA P-521,
	// P-224 or DSA).
	ErrUnsupportedKey = errors.New("unsupported private key type")
	// ErrKeyMismatch means the private key is not the key of the leaf
	// certificate.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrNameNotCovered means the leaf certificate's DNS names do not
	// include the configured cname.
	ErrNameNotCovered = errors.New("certificate does not cover the name")
	// ErrNoServerAuth means the leaf's Extended Key Usage extension does
	// not allow TLS server authentication (for example clientAuth only).
	ErrNoServerAuth = errors.New("certificate is not for TLS servers")
	// ErrExpired means a certificate in the chain is past its NotAfter.
	ErrExpired = errors.New("certificate has expired")
	// ErrNotYetValid means a certificate in the chain is before its
	// NotBefore.
	ErrNotYetValid = errors.New("certificate is not yet valid")
	// ErrUnrecognizedName means a TLS client asked (by SNI) for a name other
	// than the cname.
	ErrUnrecognizedName = errors.New("unrecognized server name")
	// ErrMissingSNI means a TLS client sent no server name and the policy
	// requires one.
	ErrMissingSNI = errors.New("missing server name (SNI)")
)

// ErrCertificatePending is returned by ACME.GetCertificate (and so makes
// crypto/tls fail the handshake with an internal_error alert) while no
// certificate for the cname has been obtained or loaded yet.
var ErrCertificatePending = errors.New("no certificate for the name yet")

// Role says which file a FileError is about.
type Role int

const (
	// CertFileRole is the PEM certificate chain (Azure ML's
	// ssl_cert_pem_file).
	CertFileRole Role = iota + 1
	// KeyFileRole is the PEM private key (Azure ML's ssl_key_pem_file).
	KeyFileRole
	// CAFileRole is the PEM bundle of extra trust anchors.
	CAFileRole
)

// String returns the role as the start of an error message, such as
// "certificate file".
func (r Role) String() string {
	switch r {
	case CertFileRole:
		return "certificate file"
	case KeyFileRole:
		return "key file"
	case CAFileRole:
		return "CA file"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// FileError is an error about one file. Its message reads like
//
//	certificate file "/tls/cert.pem": certificate 2 (CN=Intermediate X) did not sign certificate 1 (CN=api.example.com)
//
// Callers that know the flag a file came from can use errors.As and print
// Path and Err under their own prefix. Err wraps one of the package's
// sentinel errors or, when the file could not be read, an *fs.PathError.
type FileError struct {
	Role Role
	Path string // as given by the caller; may be empty for in-memory data
	Err  error
}

// Error returns the role, the quoted path and the underlying error.
func (e *FileError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s %q: <nil>", e.Role, e.Path)
	}
	if e.Path == "" {
		return e.Role.String() + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s %q: %v", e.Role, e.Path, e.Err)
}

// Unwrap returns Err.
func (e *FileError) Unwrap() error { return e.Err }

// problem is an error with its own message that also matches a sentinel
// (kind) and, optionally, an underlying cause, under errors.Is.
type problem struct {
	msg   string
	kind  error
	cause error
}

func (p *problem) Error() string { return p.msg }

func (p *problem) Unwrap() []error {
	if p.cause == nil {
		return []error{p.kind}
	}
	return []error{p.kind, p.cause}
}

// problemf returns an error with the formatted message that matches kind.
func problemf(kind error, format string, args ...any) error {
	return &problem{msg: fmt.Sprintf(format, args...), kind: kind}
}
