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
// PEM block other than "CERTIFICATE" is an error.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
		case strings.Contains(b.Type, "PRIVATE KEY"):
			return nil, problemf(ErrUnexpectedBlock,
				"PEM block %d is a private key (%q), not a certificate; this file must hold only certificates (leaf first, then its chain), and the key belongs in the key file", n, b.Type)
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
		return nil, noPEM(data, ErrNoCertificate, "CERTIFICATE", "openssl x509 -inform der -in FILE -out cert.pem")
	}
	if err := truncated(data, len(certs), ErrMalformedCertificate); err != nil {
		return nil, err
	}
	return certs, nil
}

// noPEM explains why data held no PEM block of the wanted type.
func noPEM(data []byte, kind error, typ, convert string) error {
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return problemf(kind, "%v: the file is empty", kind)
	case bytes.Contains(data, []byte("-----BEGIN ")):
		return problemf(kind, "%v: the file's PEM blocks are malformed (truncated or corrupted)", kind)
	case data[0] == 0x30: // an ASN.1 SEQUENCE: DER, or PKCS#12
		return problemf(kind, "%v: the file is binary (DER or PKCS#12), not PEM; convert DER with `%s`", kind, convert)
	}
	return problemf(kind, "%v: the file is not PEM (no \"-----BEGIN %s-----\" line)", kind, typ)
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

// trustWarning returns a warning if the chain does not verify to a root in
// roots (if non-nil) or the system pool at now, and "" if it does. A chain
// clients cannot complete is a warning rather than an error because some
// clients carry private roots that scoregate cannot know about.
func trustWarning(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) string {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	var err error
	if roots != nil {
		opts.Roots = roots
		if _, err = certs[0].Verify(opts); err == nil {
			return ""
		}
		opts.Roots = nil // the system pool
	}
	if _, err = certs[0].Verify(opts); err == nil {
		return ""
	}
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
