package certs

import (
	"crypto/sha1" // the Windows thumbprint is SHA-1 by definition; it names a certificate, it trusts nothing
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Report is what Check found about a certificate pair: the facts a person
// needs to act on and a verdict. Its JSON form (the field tags) is
// `scoregate check --json`'s output; the names are stable.
type Report struct {
	CertFile  string    `json:"cert_file"`
	KeyFile   string    `json:"key_file"`
	CName     string    `json:"cname,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	// Valid is the verdict: serve would start with the pair (no error
	// below) and the chain verifies to a trusted root.
	Valid bool `json:"valid"`
	// Serves says whether `scoregate serve` would start with the pair:
	// true when the only errors are an untrusted or incomplete chain,
	// which serve only warns about.
	Serves bool `json:"serves"`
	// Leaf is nil when the certificate file held no parsable certificate.
	Leaf *LeafInfo `json:"leaf"`
	// Chain is the certificate file's certificates in file order.
	Chain []Link `json:"chain"`
	// Trust is nil when there was no certificate to verify.
	Trust *TrustInfo `json:"trust"`
	// Key is nil when the key file held no usable key.
	Key *KeyInfo `json:"key"`
	// Problems are the errors (in the order serve checks them) and then
	// the warnings.
	Problems []Problem `json:"problems"`
}

// LeafInfo describes the leaf certificate.
type LeafInfo struct {
	Subject     string   `json:"subject"`
	DNSNames    []string `json:"dns_names"`
	IPAddresses []string `json:"ip_addresses,omitempty"`
	// NameCovered is whether DNSNames cover the report's CName; nil when
	// no CName was given.
	NameCovered *bool `json:"name_covered,omitempty"`
	// ExtKeyUsage names the extended key usages ("serverAuth",
	// "clientAuth", or dotted OIDs); empty when the leaf has no such
	// extension, which allows any use.
	ExtKeyUsage []string `json:"ext_key_usage"`
	ServerAuth  bool     `json:"server_auth"`
	// SHA256 is the fingerprint of the certificate's DER, in hex.
	SHA256 string `json:"sha256"`
	// SHA1 is the thumbprint Windows and the Azure portal show, in
	// upper-case hex.
	SHA1 string `json:"sha1_thumbprint"`
}

// Link is one certificate of the chain as it appears in the file.
type Link struct {
	Index      int       `json:"index"` // 1-based, in file order
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	DaysLeft   int       `json:"days_left"` // whole days until NotAfter, rounded down; negative once expired
	CA         bool      `json:"ca"`
	SelfSigned bool      `json:"self_signed"`
	// SignedByNext is whether the next certificate in the file signed
	// this one; nil for the last.
	SignedByNext *bool `json:"signed_by_next,omitempty"`
}

// TrustInfo says whether the chain verifies to a trusted root.
type TrustInfo struct {
	Trusted bool `json:"trusted"`
	// Roots is "ca-file" (the extra roots given) or "system" when
	// Trusted.
	Roots string `json:"roots,omitempty"`
	// Root is the subject of the root the chain ends at: the trusted root
	// that verified it, or, when it did not verify, the issuer of the
	// file's last certificate (the certificate missing from the chain),
	// or that certificate itself when it is self-signed.
	Root string `json:"root"`
	// Path is the verified chain's subjects, leaf to root, when Trusted.
	Path []string `json:"path,omitempty"`
}

// KeyInfo describes the private key.
type KeyInfo struct {
	Type    string `json:"type"` // "ECDSA P-256", "RSA 2048 bits", "Ed25519"
	Matches bool   `json:"matches"`
}

// Problem is one error or warning.
type Problem struct {
	// Severity is "error" (the pair is invalid) or "warning".
	Severity string `json:"severity"`
	// Code is stable: one per sentinel error ("chain_order",
	// "key_mismatch", "name_not_covered", "no_server_auth", "expired",
	// "not_yet_valid", "weak_key", "no_key", ... as listed in codes),
	// "unreadable" for a file that could not be read, "chain_untrusted"
	// for a chain that does not verify to a trusted root, and "validity"
	// for a warning about a validity period.
	Code string `json:"code"`
	// File is "cert" or "key": which file the problem is in. (scoregate
	// check adds problems of its own about DNS, with File "".)
	File    string `json:"file"`
	Message string `json:"message"`
	// Cause tells apart the ways a code can come about, where they have
	// different fixes; empty for the other codes. For "chain_untrusted":
	// "missing_intermediate" (the chain ends at a certificate whose
	// issuer is neither in the file nor a trusted root: an intermediate
	// is missing, or the issuer is a private root not given), or
	// "untrusted_root" (the chain ends at a self-signed certificate that
	// is not trusted: a private root, or a self-signed leaf), or
	// "invalid" (verification failed for another reason, which Message
	// gives).
	Cause string `json:"cause,omitempty"`
}

// Check reads the pair and reports everything ParsePair checks (the same
// code), plus the facts behind them. certFile and keyFile may be the same
// file. Unlike ParsePair, opts.CName may be empty (no name check), and a
// chain that does not verify to a trusted root (the system's or
// opts.Roots) is an error rather than a warning: clients without a private
// root fail on it. Check never fails; an unreadable file is a Problem.
func Check(certFile, keyFile string, opts LoadOptions) *Report {
	certPEM, keyPEM, err := readPair(certFile, keyFile)
	if err != nil {
		now := time.Now()
		if opts.Now != nil {
			now = opts.Now()
		}
		return &Report{CertFile: certFile, KeyFile: keyFile, CName: opts.CName, CheckedAt: now,
			Chain: []Link{}, Problems: []Problem{problemOf(err, "error")}}
	}
	return CheckPEM(certPEM, keyPEM, certFile, keyFile, opts)
}

// CheckPEM is Check on data held in memory; certFile and keyFile name it.
func CheckPEM(certPEM, keyPEM []byte, certFile, keyFile string, opts LoadOptions) *Report {
	in := inspect(certPEM, keyPEM, certFile, keyFile, opts)
	r := &Report{CertFile: certFile, KeyFile: keyFile, CName: opts.CName, CheckedAt: in.now, Chain: []Link{}, Problems: []Problem{}}
	for _, err := range in.errs {
		r.Problems = append(r.Problems, problemOf(err, "error"))
	}
	r.Serves = len(in.errs) == 0
	if in.key != nil {
		r.Key = &KeyInfo{Type: describeKey(in.key.Public())}
	}
	if in.certs == nil {
		return r
	}
	leaf := in.leaf
	r.Leaf = leafInfo(leaf, opts.CName)
	if r.Key != nil {
		r.Key.Matches = checkKeyMatch(leaf, in.key, "") == nil
	}
	for i, c := range in.certs {
		l := Link{
			Index: i + 1, Subject: subject(c), Issuer: c.Issuer.String(),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
			DaysLeft: int(c.NotAfter.Sub(in.now) / (24 * time.Hour)),
			CA:       c.IsCA, SelfSigned: selfSigned(c),
		}
		if i+1 < len(in.certs) {
			ok := c.CheckSignatureFrom(in.certs[i+1]) == nil
			l.SignedByNext = &ok
		}
		r.Chain = append(r.Chain, l)
	}
	r.Trust = trustInfo(in.certs, in.trust)
	for _, w := range in.warnings {
		sev := "warning"
		if w.code == "chain_untrusted" {
			sev = "error" // check is stricter than serve here
		}
		r.Problems = append(r.Problems, Problem{Severity: sev, Code: w.code, File: "cert", Message: w.msg, Cause: w.cause})
	}
	r.Valid = r.Serves && r.Trust.Trusted
	// Errors first, in serve's order, then warnings.
	sortProblems(r.Problems)
	return r
}

func leafInfo(c *x509.Certificate, cname string) *LeafInfo {
	sum := sha256.Sum256(c.Raw)
	li := &LeafInfo{
		Subject:     subject(c),
		DNSNames:    append([]string{}, c.DNSNames...),
		ExtKeyUsage: append([]string{}, extKeyUsageNames(c)...),
		ServerAuth:  checkServerAuth(c) == nil,
		SHA256:      hex.EncodeToString(sum[:]),
		SHA1:        sha1Thumbprint(c.Raw),
	}
	for _, ip := range c.IPAddresses {
		li.IPAddresses = append(li.IPAddresses, ip.String())
	}
	if cname != "" {
		ok := covers(c.DNSNames, cname)
		li.NameCovered = &ok
	}
	return li
}

func trustInfo(certs []*x509.Certificate, t trust) *TrustInfo {
	if t.source != "" {
		ti := &TrustInfo{Trusted: true, Roots: t.source, Root: subject(t.chain[len(t.chain)-1])}
		for _, c := range t.chain {
			ti.Path = append(ti.Path, subject(c))
		}
		return ti
	}
	last := certs[len(certs)-1]
	if selfSigned(last) {
		return &TrustInfo{Root: subject(last)}
	}
	return &TrustInfo{Root: last.Issuer.String()}
}

// problemOf turns a *FileError into a Problem.
func problemOf(err error, severity string) Problem {
	p := Problem{Severity: severity, Code: codeOf(err), File: "cert", Message: err.Error()}
	if fe, ok := errors.AsType[*FileError](err); ok {
		if fe.Role == KeyFileRole {
			p.File = "key"
		}
		p.Message = fmt.Sprint(fe.Err)
	}
	return p
}

// sortProblems puts errors before warnings, keeping each group's order.
func sortProblems(ps []Problem) {
	var errs, warns []Problem
	for _, p := range ps {
		if p.Severity == "error" {
			errs = append(errs, p)
		} else {
			warns = append(warns, p)
		}
	}
	copy(ps, append(errs, warns...))
}

// sha1Thumbprint is the certificate thumbprint that Windows, Key Vault and
// the Azure portal show: SHA-1 of the DER, upper-case hex.
func sha1Thumbprint(der []byte) string {
	sum := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
