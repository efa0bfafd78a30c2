package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// maxFileSize bounds what LoadPair and LoadRoots read, so that a wrong path
// such as /dev/zero fails instead of exhausting memory. Real chains and
// bundles are a few kilobytes; the system CA bundle is about 200 KiB.
const maxFileSize = 4 << 20

// LoadOptions configures LoadPair and ParsePair.
type LoadOptions struct {
	// CName is the name clients connect to; required. The leaf's DNS
	// subject alternative names must cover it: exactly, or by a wildcard
	// "*.x.y" that stands for one label. Matching ignores ASCII case and a
	// trailing dot.
	CName string
	// Roots holds extra trust anchors (--ca-file), consulted only to decide
	// whether to warn that the chain may be incomplete. If nil, only the
	// system pool is consulted.
	Roots *x509.CertPool
	// Now returns the current time for validity checks. If nil, time.Now.
	Now func() time.Time
}

// Pair is a validated certificate chain and private key. A Pair is never
// mutated once returned, so it is safe for concurrent use.
type Pair struct {
	// Certificate is ready for crypto/tls: the chain in file order, the
	// private key, and Leaf set.
	Certificate tls.Certificate
	// Leaf is the parsed first certificate (the same as Certificate.Leaf).
	Leaf *x509.Certificate
	// Warnings are problems that do not stop scoregate from serving, such
	// as an expiry within 30 days or a chain clients may not complete.
	// Each is one sentence for a log line.
	Warnings []string
	// Hash is the SHA-256 of the certificate file's bytes followed by the
	// key file's bytes, for detecting changes.
	Hash [32]byte
}

// LoadPair reads and validates a PEM certificate chain and private key; see
// ParsePair for the checks. certFile and keyFile may name the same file,
// holding the key and the chain together. Every error about a file's
// content or reading it is a *FileError naming the file.
func LoadPair(certFile, keyFile string, opts LoadOptions) (*Pair, error) {
	if opts.CName == "" {
		return nil, errors.New("certs: LoadOptions.CName is required")
	}
	certPEM, keyPEM, err := readPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return ParsePair(certPEM, keyPEM, certFile, keyFile, opts)
}

// readPair reads the certificate and key files, once if they are the same.
func readPair(certFile, keyFile string) (certPEM, keyPEM []byte, err error) {
	certPEM, err = readFile(certFile)
	if err != nil {
		return nil, nil, &FileError{Role: CertFileRole, Path: certFile, Err: err}
	}
	if keyFile == certFile {
		return certPEM, certPEM, nil
	}
	keyPEM, err = readFile(keyFile)
	if err != nil {
		return nil, nil, &FileError{Role: KeyFileRole, Path: keyFile, Err: err}
	}
	return certPEM, keyPEM, nil
}

// ParsePair validates a PEM certificate chain and private key held in
// memory; certFile and keyFile only name them in errors. When certPEM and
// keyPEM are the same data (one file holding the key and the chain, as
// Azure Key Vault's PEM download does), private keys among the
// certificates are allowed. A UTF-8 byte order mark is skipped. It checks,
// in order:
//
//   - the certificate data holds only "CERTIFICATE" blocks, leaf first,
//     each signed by the next (ErrNoCertificate, ErrUnexpectedBlock,
//     ErrMalformedCertificate, ErrChainOrder);
//   - the key data holds one unencrypted RSA (at least 2048 bits), ECDSA
//     P-256/P-384 or Ed25519 key in PKCS#8, PKCS#1 or SEC 1 form (ErrNoKey,
//     ErrEncryptedKey, ErrWeakKey, ErrUnsupportedKey, ErrMalformedKey)
//     that matches the leaf (ErrKeyMismatch);
//   - the leaf covers opts.CName (ErrNameNotCovered), and its Extended
//     Key Usage, if it has one, allows serverAuth (ErrNoServerAuth);
//   - every certificate is within its validity period (ErrExpired,
//     ErrNotYetValid), except that a trailing self-signed root only
//     warns.
//
// Errors are *FileError values wrapping the sentinel named above.
// Certificates that expire within 30 days, and chains that neither the
// system roots nor opts.Roots complete, produce Warnings instead.
// ParsePair does not retain certPEM or keyPEM. Check runs the same checks
// and reports all of them.
func ParsePair(certPEM, keyPEM []byte, certFile, keyFile string, opts LoadOptions) (*Pair, error) {
	if opts.CName == "" {
		return nil, errors.New("certs: LoadOptions.CName is required")
	}
	in := inspect(certPEM, keyPEM, certFile, keyFile, opts)
	if len(in.errs) > 0 {
		return nil, in.errs[0]
	}
	p := &Pair{
		Certificate: tls.Certificate{PrivateKey: in.key, Leaf: in.leaf},
		Leaf:        in.leaf,
	}
	for _, w := range in.warnings {
		p.Warnings = append(p.Warnings, w.msg)
	}
	for _, c := range in.certs {
		p.Certificate.Certificate = append(p.Certificate.Certificate, c.Raw)
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write(keyPEM)
	h.Sum(p.Hash[:0])
	return p, nil
}

// LoadRoots reads a PEM bundle of trust anchors (--ca-file). The file must
// hold at least one certificate and nothing but certificates; errors are
// *FileError values with Role CAFileRole.
func LoadRoots(path string) (*x509.CertPool, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, &FileError{Role: CAFileRole, Path: path, Err: err}
	}
	certs, err := parseCertificates(data, false)
	if err != nil {
		return nil, &FileError{Role: CAFileRole, Path: path, Err: err}
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// readFile reads at most maxFileSize bytes of path. Errors omit the path,
// which the caller's FileError carries, but still match fs.ErrNotExist and
// friends.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unpath(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, unpath(err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file is larger than %d MiB; it is not a PEM certificate or key", maxFileSize>>20)
	}
	return data, nil
}

// unpath strips the operation and path from an *fs.PathError: "open
// /tls/cert.pem: no such file or directory" becomes "no such file or
// directory", which still matches fs.ErrNotExist.
func unpath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}
