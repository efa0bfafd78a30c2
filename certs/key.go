package certs

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// minRSABits is the smallest RSA modulus LoadPair accepts.
const minRSABits = 2048

// decryptHint tells operators how to turn an encrypted key into one
// scoregate can use.
const decryptHint = "decrypt it first, for example with `openssl pkey -in encrypted.pem -out key.pem`, and keep the decrypted file readable only by scoregate"

// parseKey returns the one private key in data. "EC PARAMETERS" blocks are
// skipped; certificates are tolerated so that a key file with the
// certificate appended still works.
func parseKey(data []byte) (crypto.Signer, error) {
	data, textErr := text(data, ErrNoKey)
	if textErr != nil {
		return nil, textErr
	}
	var (
		keys    []*pem.Block
		blocks  int
		sawCert bool
	)
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		switch {
		case b.Type == "EC PARAMETERS":
		case b.Type == "CERTIFICATE":
			sawCert = true
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			keys = append(keys, b)
		default:
			return nil, problemf(ErrUnexpectedBlock, "PEM block %d has type %q; the key file must hold one private key", blocks, b.Type)
		}
	}
	if err := truncated(data, blocks, ErrMalformedKey); err != nil {
		return nil, err
	}
	switch {
	case len(keys) == 0 && sawCert:
		return nil, problemf(ErrNoKey, "%v: the file holds only certificates; are the certificate and key files swapped?", ErrNoKey)
	case len(keys) == 0:
		return nil, noPEM(data, ErrNoKey, "PRIVATE KEY")
	case len(keys) > 1:
		return nil, problemf(ErrUnexpectedBlock, "the file holds %d private keys; keep only the certificate's key", len(keys))
	}
	return parseKeyBlock(keys[0])
}

// parseKeyBlock returns the private key in b, a block whose type ends in
// "PRIVATE KEY". It is an error if the key is encrypted, of a form
// scoregate does not read, malformed, or refused by checkKeyType. parseKey
// and ReadBundle share it so that both accept exactly the same keys.
func parseKeyBlock(b *pem.Block) (crypto.Signer, error) {
	if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
		form := fmt.Sprintf("PEM block %q", b.Type)
		if b.Type != "ENCRYPTED PRIVATE KEY" {
			form += " with the header \"Proc-Type: 4,ENCRYPTED\""
		}
		return nil, problemf(ErrEncryptedKey, "%v (%s); scoregate cannot prompt for a passphrase, so %s", ErrEncryptedKey, form, decryptHint)
	}
	var (
		key any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "DSA PRIVATE KEY":
		return nil, problemf(ErrUnsupportedKey, "DSA keys are not supported; use an ECDSA P-256 key (or ECDSA P-384, RSA of at least %d bits, or Ed25519)", minRSABits)
	case "OPENSSH PRIVATE KEY":
		return nil, problemf(ErrUnsupportedKey, "this is an OpenSSH key (%q), not a TLS private key", b.Type)
	default:
		return nil, problemf(ErrUnsupportedKey, "PEM block type %q is not a supported private key; use \"PRIVATE KEY\" (PKCS#8), \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\"", b.Type)
	}
	if err != nil {
		kind := ErrMalformedKey
		if strings.Contains(err.Error(), "unknown") { // unknown curve or algorithm OID
			kind = ErrUnsupportedKey
		}
		return nil, &problem{msg: fmt.Sprintf("%v: %q block: %v", kind, b.Type, err), kind: kind, cause: err}
	}
	return checkKeyType(key)
}

// checkKeyType accepts RSA of at least minRSABits, ECDSA P-256 and P-384,
// and Ed25519: what clients verify and crypto/tls signs with in TLS 1.2 and
// 1.3.
func checkKeyType(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, problemf(ErrWeakKey, "%v: RSA key is %d bits; at least %d are required", ErrWeakKey, bits, minRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, problemf(ErrUnsupportedKey, "%v: ECDSA key on curve %s; use P-256 or P-384", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *ecdh.PrivateKey:
		return nil, problemf(ErrUnsupportedKey, "%v: %s key is for key agreement and cannot sign", ErrUnsupportedKey, curveName(k.Curve()))
	}
	return nil, problemf(ErrUnsupportedKey, "%v: %T", ErrUnsupportedKey, key)
}

func curveName(c ecdh.Curve) string {
	if c == ecdh.X25519() {
		return "X25519"
	}
	return fmt.Sprint(c)
}

// checkKeyMatch checks that key is the private half of the leaf's public
// key.
func checkKeyMatch(leaf *x509.Certificate, key crypto.Signer, certFile string) error {
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if ok && pub.Equal(key.Public()) {
		return nil
	}
	msg := ErrKeyMismatch.Error()
	if certFile != "" {
		msg += fmt.Sprintf(" in %q", certFile)
	}
	if k, c := describeKey(key.Public()), describeKey(leaf.PublicKey); k != c {
		msg += fmt.Sprintf(" (the key is %s; the certificate's is %s)", k, c)
	}
	return problemf(ErrKeyMismatch, "%s", msg)
}

// describeKey names a public key's algorithm and size.
func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}
