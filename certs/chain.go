package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// expiryWarning is how close to NotAfter a certificate must be for
// LoadPair to warn.
const expiryWarning = 30 * 24 * time.Hour

// parseCertificates returns the certificates in data, in file order. Any
// PEM block other than "CERTIFICATE" is an error, except private keys when
// keysToo is set (one file holding the key and the chain, as Azure Key
// Vault's PEM download does). A UTF-8 byte order mark is skipped.
func parseCertificates(data []byte, keysToo bool) ([]*x509.Certificate, error) {
	data, err := text(data, ErrNoCertificate)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	blocks := 0
	rest := data
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		switch {
		case b.Type == "CERTIFICATE":
		case strings.Contains(b.Type, "PRIVATE KEY") && keysToo:
			continue
		case strings.Contains(b.Type, "PRIVATE KEY"):
			return nil, problemf(ErrUnexpectedBlock,
				"PEM block %d is a private key (%q), not a certificate; give this file as the key file too if it holds the key and the chain together (as Azure Key Vault's PEM download does), or keep only the certificates here (leaf first, then its chain)", n, b.Type)
		default:
			return nil, problemf(ErrUnexpectedBlock, "PEM block %d has type %q; this file must hold only \"CERTIFICATE\" blocks", n, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, &problem{msg: fmt.Sprintf("certificate %d is malformed: %v", n, err), kind: ErrMalformedCertificate, cause: err}
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, noPEM(data, ErrNoCertificate, "CERTIFICATE")
	}
	if err := truncated(data, blocks, ErrMalformedCertificate); err != nil {
		return nil, err
	}
	return certs, nil
}

// convertHint is the command that turns binary and mixed inputs into the
// pair scoregate reads.
const convertHint = "scoregate cert convert --in FILE --out-cert cert.pem --out-key key.pem"

// noPEM explains why data held no PEM block of the wanted type.
func noPEM(data []byte, kind error, typ string) error {
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return problemf(kind, "%v: the file is empty", kind)
	case bytes.Contains(data, []byte("-----BEGIN ")):
		return problemf(kind, "%v: the file's PEM blocks are malformed (truncated or corrupted)", kind)
	case data[0] == 0x30: // an ASN.1 SEQUENCE: DER, or PKCS#12
		return problemf(kind, "%v: the file is binary (DER, or PKCS#12 such as a .pfx), not PEM; convert it with `%s` (add --password-file for a protected .pfx)", kind, convertHint)
	}
	return problemf(kind, "%v: the file is not PEM (no \"-----BEGIN %s-----\" line)", kind, typ)
}

// utf8BOM is the byte order mark Windows editors put at the start of a
// UTF-8 file.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// text returns data without a UTF-8 byte order mark, which would otherwise
// hide the first PEM block from pem.Decode, or an error matching kind if
// data is UTF-16 text (Windows Notepad's "Unicode"), which PEM cannot be:
// a UTF-16 byte order mark, or "BEGIN" in UTF-16LE without one.
func text(data []byte, kind error) ([]byte, error) {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) ||
		bytes.Contains(data, []byte("B\x00E\x00G\x00I\x00N\x00")) {
		return nil, problemf(kind, "the file is UTF-16 text (Windows Notepad's \"Unicode\"), which PEM cannot be; save it as UTF-8 (for example `iconv -f UTF-16 -t UTF-8 FILE > FILE.pem`)")
	}
	return bytes.TrimPrefix(data, utf8BOM), nil
}

// truncated reports an error if data has more "-----BEGIN" lines than the
// decoded blocks: pem.Decode silently skips a truncated or corrupted block,
// which would otherwise make a damaged chain look merely short.
func truncated(data []byte, decoded int, kind error) error {
	if n := bytes.Count(data, []byte("-----BEGIN ")); n > decoded {
		return problemf(kind, "%v: the file has %d \"-----BEGIN\" lines but only %d well-formed PEM blocks; a block is truncated or corrupted", kind, n, decoded)
	}
	return nil
}

// describe names certificate i (0-based) for messages: "certificate 2
// (CN=Intermediate X)".
func describe(certs []*x509.Certificate, i int) string {
	return fmt.Sprintf("certificate %d (%s)", i+1, subject(certs[i]))
}

// subject returns the certificate's subject, or its serial if the subject
// is empty.
func subject(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	return fmt.Sprintf("serial %x", c.SerialNumber)
}

// selfSigned reports whether c is a self-signed CA certificate (a root).
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// checkChain checks that each certificate is signed by the one after it.
func checkChain(certs []*x509.Certificate) error {
	for i := 0; i+1 < len(certs); i++ {
		if certs[i].CheckSignatureFrom(certs[i+1]) != nil {
			return chainError(certs, i)
		}
	}
	return nil
}

// chainError explains why certs[i+1] did not sign certs[i], and what to do.
func chainError(certs []*x509.Certificate, i int) error {
	child, parent := certs[i], certs[i+1]
	msg := fmt.Sprintf("%s did not sign %s", describe(certs, i+1), describe(certs, i))
	var hint string
	switch {
	case selfSigned(child):
		hint = fmt.Sprintf("%s is a self-signed root, so nothing may follow it; remove %s", describe(certs, i), describe(certs, i+1))
		if i == 0 {
			hint = fmt.Sprintf("%s is self-signed, so nothing may follow it: if it is the leaf, remove the others; if it is a root, put the leaf first, then each certificate's issuer", describe(certs, 0))
		}
	case parent.CheckSignatureFrom(child) == nil:
		hint = "it is the other way round, so the two are in reverse order; put the leaf first, then each certificate's issuer"
	case signerIndex(certs, i) >= 0:
		hint = fmt.Sprintf("%s did: the certificates are out of order, or %s does not belong; each certificate must be followed by the one that signed it",
			describe(certs, signerIndex(certs, i)), describe(certs, i+1))
	case bytes.Equal(child.RawIssuer, parent.RawSubject):
		hint = fmt.Sprintf("the names match but the signature does not verify: %s was signed by a different key with the same name", describe(certs, i))
	default:
		hint = fmt.Sprintf("%s was issued by %q; add that certificate after it (a gap in the chain), or remove %s if it does not belong",
			describe(certs, i), child.Issuer.String(), describe(certs, i+1))
	}
	return problemf(ErrChainOrder, "%s; %s", msg, hint)
}

// signerIndex returns the index of another certificate in certs that
// signed certs[i], or -1.
func signerIndex(certs []*x509.Certificate, i int) int {
	for j, c := range certs {
		if j != i && j != i+1 && certs[i].CheckSignatureFrom(c) == nil {
			return j
		}
	}
	return -1
}

// trailingRoot reports whether certs ends in a self-signed root that is not
// the leaf. Clients use their own copy of a root, so its validity period is
// only worth a warning.
func trailingRoot(certs []*x509.Certificate) bool {
	return len(certs) > 1 && selfSigned(certs[len(certs)-1])
}

// checkValidity checks every certificate's validity period at now, and
// returns warnings for those that end within expiryWarning.
func checkValidity(certs []*x509.Certificate, now time.Time) (warnings []string, err error) {
	for i, c := range certs {
		what := "certificate"
		if i > 0 {
			what = describe(certs, i)
		}
		root := i == len(certs)-1 && trailingRoot(certs)
		switch {
		case now.Before(c.NotBefore):
			if root {
				warnings = append(warnings, fmt.Sprintf("%s is a root that is not valid until %s; clients use their own copy of a root, so consider removing it from the file", what, rfc3339(c.NotBefore)))
				continue
			}
			return nil, problemf(ErrNotYetValid, "%s is not valid until %s (now is %s)", describe(certs, i), rfc3339(c.NotBefore), rfc3339(now))
		case now.After(c.NotAfter):
			if root {
				warnings = append(warnings, fmt.Sprintf("%s is a root that expired on %s; clients use their own copy of a root, so consider removing it from the file", what, rfc3339(c.NotAfter)))
				continue
			}
			return nil, problemf(ErrExpired, "%s expired on %s (now is %s)", describe(certs, i), rfc3339(c.NotAfter), rfc3339(now))
		}
		if left := c.NotAfter.Sub(now); left < expiryWarning {
			warnings = append(warnings, fmt.Sprintf("%s expires in %s, on %s", what, days(left), rfc3339(c.NotAfter)))
		}
	}
	return warnings, nil
}

// days formats a positive duration as whole days, rounding up.
func days(d time.Duration) string {
	n := int((d + 24*time.Hour - 1) / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// trust is the outcome of verifying a chain to a trusted root.
type trust struct {
	// source is "ca-file" (the extra roots) or "system" when the chain
	// verified, and "" when it did not.
	source string
	// chain is the verified chain, leaf to root; nil if none.
	chain []*x509.Certificate
	// err is the last verification error when source is "".
	err error
}

// verifyTrust verifies certs[0] with certs[1:] as intermediates (in any
// order) against roots (if non-nil), then the system pool, at now. Key
// usages are not checked here: checkServerAuth does that with its own
// message.
func verifyTrust(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) trust {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	var err error
	if roots != nil {
		opts.Roots = roots
		var chains [][]*x509.Certificate
		if chains, err = certs[0].Verify(opts); err == nil {
			return trust{source: "ca-file", chain: chains[0]}
		}
		opts.Roots = nil // the system pool
	}
	chains, err := certs[0].Verify(opts)
	if err == nil {
		return trust{source: "system", chain: chains[0]}
	}
	return trust{err: err}
}

// trustWarning returns a warning if the chain does not verify to a root in
// roots (if non-nil) or the system pool at now, and "" if it does. A chain
// clients cannot complete is a warning rather than an error because some
// clients carry private roots that scoregate cannot know about.
func trustWarning(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) string {
	t := verifyTrust(certs, roots, now)
	if t.source != "" {
		return ""
	}
	err := t.err
	if uae := (x509.UnknownAuthorityError{}); !errors.As(err, &uae) {
		var sre x509.SystemRootsError
		if !errors.As(err, &sre) {
			return fmt.Sprintf("chain does not verify: %v", err)
		}
	}
	last := certs[len(certs)-1]
	if selfSigned(last) {
		return fmt.Sprintf("chain ends in the self-signed root %q, which is not among the trusted roots (the system's and the extra ones given); clients that do not trust it will fail to verify the chain", subject(last))
	}
	return fmt.Sprintf("chain may be incomplete: %q was issued by %q, which is not among the trusted roots (the system's and the extra ones given); clients may fail to verify it",
		subject(last), last.Issuer.String())
}

// checkServerAuth returns ErrNoServerAuth if the leaf has an Extended Key
// Usage extension that allows neither TLS server authentication nor any
// purpose. A leaf without the extension may be used for any purpose.
func checkServerAuth(leaf *x509.Certificate) error {
	if len(leaf.ExtKeyUsage) == 0 && len(leaf.UnknownExtKeyUsage) == 0 {
		return nil
	}
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return nil
		}
	}
	return problemf(ErrNoServerAuth, "%v: its Extended Key Usage allows %s only, so TLS clients refuse it (\"unsuitable certificate purpose\"); reissue it with serverAuth (TLS Web Server Authentication)",
		ErrNoServerAuth, strings.Join(extKeyUsageNames(leaf), ", "))
}

// extKeyUsageNames names the leaf's extended key usages as OpenSSL's short
// names ("serverAuth", "clientAuth") or, when unknown, dotted OIDs.
func extKeyUsageNames(c *x509.Certificate) []string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageAny:             "anyExtendedKeyUsage",
		x509.ExtKeyUsageServerAuth:      "serverAuth",
		x509.ExtKeyUsageClientAuth:      "clientAuth",
		x509.ExtKeyUsageCodeSigning:     "codeSigning",
		x509.ExtKeyUsageEmailProtection: "emailProtection",
		x509.ExtKeyUsageTimeStamping:    "timeStamping",
		x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
	}
	var out []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("ExtKeyUsage(%d)", int(u)))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return out
}
