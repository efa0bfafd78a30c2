package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// ReadBundle's sentinel errors, wrapped in an *InputError (the rest are in errors.go).
var (
	// ErrPasswordRequired means a PKCS#12 input is protected by a password
	// and ReadBundle was given no way to ask for one.
	ErrPasswordRequired = errors.New("the PKCS#12 file is protected by a password")
	// ErrWrongPassword means the password ReadBundle was given does not
	// open a PKCS#12 input.
	ErrWrongPassword = errors.New("wrong password for the PKCS#12 file")
)

// InputError is an error about one input of ReadBundle. Its message reads
// like
//
//	input file "site.pfx": wrong password for the PKCS#12 file
//
// Err wraps ErrPasswordRequired, ErrWrongPassword or one of the sentinel
// errors in errors.go, or says that the input is in no form ReadBundle
// reads. Callers that know the flag an input came from can use errors.As
// and add it.
type InputError struct {
	Path string // Input.Name
	Err  error
}

// Error returns the quoted path and the underlying error.
func (e *InputError) Error() string {
	return fmt.Sprintf("input file %q: %v", e.Path, e.Err)
}

// Unwrap returns Err.
func (e *InputError) Unwrap() error { return e.Err }

// Input is one file given to ReadBundle.
type Input struct {
	Name string // the path as the user gave it, for notes and errors
	Data []byte // the file's contents; ReadBundle does not retain or modify it
}

// Bundle is a certificate chain and its private key, as ReadBundle read
// them. The zero value holds nothing: CertPEM returns nil, and KeyPEM and
// WritePair return errors.
type Bundle struct {
	// Chain is the leaf first, each certificate followed by the one that
	// signed it, ending at a self-signed root or at the last issuer the
	// inputs held. ReadBundle never returns an empty Chain.
	Chain []*x509.Certificate
	// Key is the leaf's private key, an RSA (at least 2048 bits), ECDSA
	// P-256/P-384 or Ed25519 key; nil if the inputs held none.
	Key crypto.Signer
	// Notes say, one sentence each, what was read from each input
	// ("read a.pfx: PKCS#12 with 3 certificates and a private key (RSA
	// 2048 bits)"), which input held the chain out of order and the order
	// it is put in, and which certificates were ignored as duplicates or
	// dropped because they are not in the leaf's chain. They are for the
	// user to read as they are, one a line, not for parsing.
	Notes []string
}

// ReadBundle reads certificates and at most one private key from inputs,
// then picks the leaf and orders its chain (see below). Each input is one
// of:
//
//   - PKCS#12 (.pfx, .p12) with legacy (RC2-40, 3DES) or modern
//     (PBES2 with AES) encryption, binary or base64-encoded (as Azure Key
//     Vault's secret value is);
//   - a DER certificate (.cer, .crt, .der);
//   - a DER private key: PKCS#8, PKCS#1 or SEC 1;
//   - PEM holding any mix of certificates and one private key, in any
//     order (Azure Key Vault's PEM download is the key, then the leaf, then
//     the chain), with any text between blocks (such as OpenSSL's "Bag
//     Attributes"), a UTF-8 byte order mark and CRLF line endings.
//
// Keys pass the same checks as in ParsePair (ErrEncryptedKey, ErrWeakKey,
// ErrUnsupportedKey, ErrMalformedKey). The same key or certificate given
// twice counts once; two different keys are an error.
//
// The leaf is the certificate whose public key is the private key's
// (ErrKeyMismatch if there is none); without a key, it is the one
// certificate that is not a CA and signed no other (an error if there are
// several or none). The chain then follows issuers by signature until a
// self-signed root or until no issuer is found; certificates outside it
// are dropped with a note. With no certificate at all the error matches
// ErrNoCertificate.
//
// password is called at most once per input, and only for PKCS#12 inputs
// that the empty password does not open; it may be nil, and then such an input
// fails with ErrPasswordRequired. A password that does not open the input
// gives ErrWrongPassword. ReadBundle neither logs the password nor puts it
// in an error; it does not modify or keep the slice password returns, so a
// caller that wants it cleared clears it after ReadBundle returns.
//
// Errors about one input are *InputError values. ReadBundle is safe for
// concurrent use; it calls password on the calling goroutine.
func ReadBundle(inputs []Input, password func() ([]byte, error)) (*Bundle, error) {
	if len(inputs) == 0 {
		return nil, errors.New("certs: ReadBundle needs at least one input")
	}
	var (
		b       Bundle
		certs   []*x509.Certificate // in input order, each once
		seen    = map[string]bool{}
		from    = map[*x509.Certificate]string{} // the input each certificate came from
		keyFrom string
	)
	for _, in := range inputs {
		r, err := readInput(in.Data, password)
		if err != nil {
			return nil, &InputError{Path: in.Name, Err: err}
		}
		b.Notes = append(b.Notes, fmt.Sprintf("read %s: %s", in.Name, r))
		for _, c := range r.certs {
			if seen[string(c.Raw)] {
				b.Notes = append(b.Notes, fmt.Sprintf("ignored a second copy of %q in %s", subject(c), in.Name))
				continue
			}
			seen[string(c.Raw)] = true
			certs = append(certs, c)
			from[c] = in.Name
		}
		switch {
		case r.key == nil:
		case b.Key == nil:
			b.Key, keyFrom = r.key, in.Name
		case !sameKey(b.Key, r.key):
			return nil, &InputError{Path: in.Name, Err: problemf(ErrUnexpectedBlock,
				"a second, different private key (the first is in %q); give only the leaf's key", keyFrom)}
		}
	}
	if len(certs) == 0 {
		return nil, problemf(ErrNoCertificate, "%v: the inputs hold only a private key; give the certificate chain too", ErrNoCertificate)
	}
	chain, notes, err := orderChain(certs, b.Key, from)
	if err != nil {
		return nil, err
	}
	b.Chain = chain
	b.Notes = append(b.Notes, notes...)
	return &b, nil
}

// CertPEM returns the chain as "CERTIFICATE" blocks, leaf first.
func (b *Bundle) CertPEM() []byte {
	var out []byte
	for _, c := range b.Chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM returns the key as an unencrypted "PRIVATE KEY" (PKCS#8) block.
// Without a key the error matches ErrNoKey.
func (b *Bundle) KeyPEM() ([]byte, error) {
	if b.Key == nil {
		return nil, problemf(ErrNoKey, "%v: the inputs hold no private key; give the key too, or a PKCS#12 file that includes it", ErrNoKey)
	}
	der, err := x509.MarshalPKCS8PrivateKey(b.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WritePair writes b.CertPEM to certPath with mode 0644 and b.KeyPEM to
// keyPath with mode 0600, each atomically (a temporary file in the same
// directory, fsync, rename), so a reader such as a running scoregate sees
// the old file or the new one. The directories must exist.
//
// Unless force is set, WritePair writes nothing if either path exists and
// returns an error naming it that matches fs.ErrExist; the check is not
// atomic with a concurrent creator. b must hold a chain and a key. If the
// certificate cannot be written, a key file WritePair created is removed
// again. WritePair does not validate b beyond that; ReadBundle did.
func WritePair(b *Bundle, certPath, keyPath string, force bool) error {
	if len(b.Chain) == 0 {
		return problemf(ErrNoCertificate, "%v: the bundle holds no certificate", ErrNoCertificate)
	}
	keyPEM, err := b.KeyPEM()
	if err != nil {
		return err
	}
	if filepath.Clean(certPath) == filepath.Clean(keyPath) {
		return fmt.Errorf("output file %q: the certificate and the key cannot both be written to it", certPath)
	}
	existed := map[string]bool{}
	for _, p := range []string{certPath, keyPath} {
		_, err := os.Lstat(p)
		switch {
		case err == nil && !force:
			return fmt.Errorf("output file %q: %w", p, fs.ErrExist)
		case err == nil:
			existed[p] = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("output file %q: %w", p, unpath(err))
		}
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("output file %q: %w", keyPath, unpath(err))
	}
	if err := writeFileAtomic(certPath, b.CertPEM(), 0o644); err != nil {
		if !existed[keyPath] {
			os.Remove(keyPath)
		}
		return fmt.Errorf("output file %q: %w", certPath, unpath(err))
	}
	return nil
}

// errUnknownForm is the error for an input in none of the forms ReadBundle
// reads; it lists them.
var errUnknownForm = errors.New("not a PKCS#12 file, a DER certificate, a DER private key or PEM")

// pfxHint says how to turn a PKCS#12 file this package cannot read into
// PEM that it can.
const pfxHint = "convert it with `openssl pkcs12 -in FILE -nodes -out bundle.pem` (add -legacy with OpenSSL 3 for old RC2 files) and give bundle.pem instead"

// readInput recognises the form of one input and reads it.
func readInput(data []byte, password func() ([]byte, error)) (*contents, error) {
	data, err := text(data, errUnknownForm)
	if err != nil {
		return nil, err
	}
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return nil, errors.New("the file is empty")
	case bytes.Contains(data, []byte("-----BEGIN ")):
		return readPEM(data)
	}
	r, err := readBinary(data, password)
	if !errors.Is(err, errUnknownForm) {
		return r, err
	}
	// Azure Key Vault hands out a certificate's PKCS#12 as base64 text.
	der, b64err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(data), nil)))
	if b64err != nil || len(der) == 0 || der[0] != 0x30 {
		return nil, err
	}
	r, err = readBinary(der, password)
	if errors.Is(err, errUnknownForm) {
		return nil, fmt.Errorf("%w (it is base64 text, but what it encodes is none of these either)", err)
	}
	if r != nil {
		r.form = "base64 " + r.form
	}
	return r, err
}

// readPEM reads the certificates and at most one private key in PEM data.
func readPEM(data []byte) (*contents, error) {
	r := &contents{form: "PEM"}
	blocks := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		blocks++
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, &problem{msg: fmt.Sprintf("%v: PEM block %d: %v", ErrMalformedCertificate, blocks, err), kind: ErrMalformedCertificate, cause: err}
			}
			r.certs = append(r.certs, c)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			k, err := parseKeyBlock(b)
			if err != nil {
				return nil, err
			}
			if err := r.addKey(k); err != nil {
				return nil, err
			}
		case b.Type == "EC PARAMETERS": // written before the key by `openssl ecparam -genkey`
		case b.Type == "PKCS7":
			return nil, problemf(ErrUnexpectedBlock, "PEM block %d is PKCS#7 (%q); convert it with `openssl pkcs7 -in FILE -print_certs -out chain.pem` and give chain.pem instead", blocks, b.Type)
		default:
			return nil, problemf(ErrUnexpectedBlock, "PEM block %d has type %q; expected certificates and at most one private key", blocks, b.Type)
		}
	}
	if err := truncated(data, blocks, ErrMalformedCertificate); err != nil {
		return nil, err
	}
	if len(r.certs) == 0 && r.key == nil {
		return nil, problemf(ErrNoCertificate, "%v: the PEM holds no certificate and no private key", ErrNoCertificate)
	}
	return r, nil
}

// readBinary reads DER data as a certificate, PKCS#12, or a private key,
// and returns errUnknownForm if it is none of them.
func readBinary(data []byte, password func() ([]byte, error)) (*contents, error) {
	if c, err := x509.ParseCertificate(data); err == nil {
		return &contents{form: "DER certificate", detail: fmt.Sprintf("%q", subject(c)), certs: []*x509.Certificate{c}}, nil
	}
	if isPKCS12(data) {
		return readPKCS12(data, password)
	}
	for _, f := range []struct{ typ, name string }{
		{"PRIVATE KEY", "PKCS#8"},
		{"RSA PRIVATE KEY", "PKCS#1"},
		{"EC PRIVATE KEY", "SEC 1"},
	} {
		k, err := parseKeyBlock(&pem.Block{Type: f.typ, Bytes: data})
		if err == nil {
			return &contents{form: "DER private key", detail: fmt.Sprintf("(%s, %s)", f.name, describeKey(k.Public())), key: k}, nil
		}
		if !errors.Is(err, ErrMalformedKey) { // a key, but one scoregate refuses
			return nil, fmt.Errorf("DER %s: %w", f.name, err)
		}
	}
	var enc struct { // EncryptedPrivateKeyInfo
		Alg  pkix.AlgorithmIdentifier
		Data []byte
	}
	if rest, err := asn1.Unmarshal(data, &enc); err == nil && len(rest) == 0 && pbeAlgorithm(enc.Alg.Algorithm) {
		return nil, problemf(ErrEncryptedKey, "%v (DER PKCS#8 \"EncryptedPrivateKeyInfo\"); decrypt it first, for example with `openssl pkey -inform der -in encrypted.der -out key.pem`", ErrEncryptedKey)
	}
	var p7 struct{ ContentType asn1.ObjectIdentifier }
	if _, err := asn1.Unmarshal(data, &p7); err == nil && p7.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}) {
		return nil, errors.New("the file is PKCS#7 (.p7b), which this reader does not read; convert it with `openssl pkcs7 -inform der -in FILE -print_certs -out chain.pem` and give chain.pem instead")
	}
	return nil, errUnknownForm
}

// isPKCS12 reports whether data starts like a PKCS#12 PFX (RFC 7292): a
// SEQUENCE holding version 3 and a ContentInfo, in DER or, as some
// Windows and Java exports are, BER with indefinite lengths.
func isPKCS12(data []byte) bool {
	var pfx struct {
		Version  int
		AuthSafe struct {
			ContentType asn1.ObjectIdentifier
			Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
		}
		MacData asn1.RawValue `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(data, &pfx); err == nil {
		return pfx.Version == 3
	}
	return bytes.HasPrefix(data, []byte{0x30, 0x80, 0x02, 0x01, 0x03})
}

// readPKCS12 decodes a PKCS#12 file, asking for a password only if the
// empty one does not open it.
func readPKCS12(data []byte, password func() ([]byte, error)) (*contents, error) {
	// DecodeChain calls the first certificate the leaf, which some Windows
	// exports get wrong; orderChain decides from all of them instead.
	key, cert, cas, err := pkcs12.DecodeChain(data, "")
	if errors.Is(err, pkcs12.ErrIncorrectPassword) {
		if password == nil {
			return nil, ErrPasswordRequired
		}
		pw, perr := password()
		if perr != nil {
			return nil, fmt.Errorf("%w; reading it failed: %w", ErrPasswordRequired, perr)
		}
		key, cert, cas, err = pkcs12.DecodeChain(data, string(pw))
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, ErrWrongPassword
		}
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "pkcs12: ")
		if msg == "private key missing" {
			return nil, errors.New("the PKCS#12 file holds no private key; export the certificate again with its private key, or give its certificates as PEM or DER")
		}
		return nil, fmt.Errorf("the PKCS#12 file cannot be read (%s); %s", msg, pfxHint)
	}
	k, err := checkKeyType(key)
	if err != nil {
		return nil, err
	}
	return &contents{form: "PKCS#12", certs: append([]*x509.Certificate{cert}, cas...), key: k}, nil
}

// pbeAlgorithm reports whether oid is a password-based encryption scheme of
// PKCS#5 (such as PBES2) or PKCS#12, as in an EncryptedPrivateKeyInfo.
func pbeAlgorithm(oid asn1.ObjectIdentifier) bool {
	s := oid.String()
	return strings.HasPrefix(s, "1.2.840.113549.1.5.") || strings.HasPrefix(s, "1.2.840.113549.1.12.1.")
}
