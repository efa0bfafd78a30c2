package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"slices"
	"time"
)

// inspection is everything the checks learn about a pair. ParsePair
// returns its first error; Check reports all of it. Each check runs as far
// as its inputs allow: a chain out of order still has its key matched and
// its names checked.
type inspection struct {
	now   time.Time
	certs []*x509.Certificate // as in the file; nil if none parsed
	leaf  *x509.Certificate   // certs[0], or, in a chain out of order, the key's certificate
	key   crypto.Signer       // nil if none parsed
	// errs are *FileError values, in ParsePair's order: the certificate
	// data and chain, the key and its match, the name, the key usage,
	// the validity periods.
	errs     []error
	warnings []finding
	trust    trust // set when certs is not nil
}

// A finding is a warning with its code and cause (see Problem).
type finding struct {
	code, msg, cause string
}

// inspect runs every check of ParsePair on the pair; see ParsePair.
func inspect(certPEM, keyPEM []byte, certFile, keyFile string, opts LoadOptions) *inspection {
	in := &inspection{now: time.Now()}
	if opts.Now != nil {
		in.now = opts.Now()
	}
	certErr := func(err error) { in.errs = append(in.errs, &FileError{Role: CertFileRole, Path: certFile, Err: err}) }
	keyErr := func(err error) { in.errs = append(in.errs, &FileError{Role: KeyFileRole, Path: keyFile, Err: err}) }

	combined := certFile != "" && certFile == keyFile || bytes.Equal(certPEM, keyPEM)
	certs, err := parseCertificates(certPEM, combined)
	chainOK := false
	if err != nil {
		certErr(err)
	} else {
		in.certs = certs
		if err := checkChain(certs); err != nil {
			certErr(err)
		} else {
			chainOK = true
		}
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		keyErr(err)
	}
	in.key = key
	if certs == nil {
		return in
	}
	// The leaf is the first certificate. In a chain out of order, it is
	// the certificate of the key, if one is: what follows is then about
	// the real leaf, not about the certificate that happens to be first.
	leaf := certs[0]
	if !chainOK && key != nil {
		for _, c := range certs {
			if checkKeyMatch(c, key, "") == nil {
				leaf = c
			}
		}
	}
	in.leaf = leaf
	if key != nil {
		if err := checkKeyMatch(leaf, key, certFile); err != nil {
			keyErr(err)
		}
	}
	if opts.CName != "" {
		if err := checkCovers(leaf.DNSNames, opts.CName); err != nil {
			certErr(err)
		}
	}
	if err := checkServerAuth(leaf); err != nil {
		certErr(err)
	}
	warnings, err := checkValidity(certs, in.now)
	if err != nil {
		certErr(err)
	}
	for _, w := range warnings {
		in.warnings = append(in.warnings, finding{code: "validity", msg: w})
	}
	leafFirst := append([]*x509.Certificate{leaf}, slices.DeleteFunc(slices.Clone(certs), func(c *x509.Certificate) bool { return c == leaf })...)
	in.trust = verifyTrust(leafFirst, opts.Roots, in.now)
	// A validity error already says why the chain does not verify.
	if w := trustWarning(leafFirst, opts.Roots, in.now); w != "" && err == nil {
		in.warnings = append(in.warnings, finding{code: "chain_untrusted", msg: w, cause: untrustedCause(leafFirst, in.trust)})
	}
	return in
}

// untrustedCause says why a chain that did not verify (t) failed, as
// Problem.Cause: it ends at a self-issued certificate that is not trusted
// ("untrusted_root"), or at one whose issuer is neither in the file nor a
// trusted root ("missing_intermediate"), or verification failed for
// another reason ("invalid"). It follows trustWarning's cases.
func untrustedCause(certs []*x509.Certificate, t trust) string {
	var uae x509.UnknownAuthorityError
	var sre x509.SystemRootsError
	if !errors.As(t.err, &uae) && !errors.As(t.err, &sre) {
		return "invalid"
	}
	// Self-issued covers a self-signed leaf as well, which selfSigned
	// (a CA's signature) does not: its fix is trusting it, not an
	// intermediate.
	if last := certs[len(certs)-1]; bytes.Equal(last.RawIssuer, last.RawSubject) {
		return "untrusted_root"
	}
	return "missing_intermediate"
}

// codes maps each sentinel error to the stable code a Problem carries.
var codes = []struct {
	err  error
	code string
}{
	{ErrNoCertificate, "no_certificate"},
	{ErrMalformedCertificate, "malformed_certificate"},
	{ErrUnexpectedBlock, "unexpected_block"},
	{ErrChainOrder, "chain_order"},
	{ErrNoKey, "no_key"},
	{ErrMalformedKey, "malformed_key"},
	{ErrEncryptedKey, "encrypted_key"},
	{ErrWeakKey, "weak_key"},
	{ErrUnsupportedKey, "unsupported_key"},
	{ErrKeyMismatch, "key_mismatch"},
	{ErrNameNotCovered, "name_not_covered"},
	{ErrNoServerAuth, "no_server_auth"},
	{ErrExpired, "expired"},
	{ErrNotYetValid, "not_yet_valid"},
}

// codeOf returns err's code, "unreadable" for a file that could not be
// read, and "error" for anything else.
func codeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	if fe, ok := errors.AsType[*FileError](err); ok && fe.Err != nil {
		return "unreadable"
	}
	return "error"
}
