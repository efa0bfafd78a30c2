package certs

import (
	"fmt"
	"strings"
)

// SNIPolicy decides which TLS server names (SNI) scoregate answers. It is
// the one place this policy lives: the PEM Source and the ACME source both
// apply it. The zero value refuses every handshake. An SNIPolicy is a plain
// value and safe for concurrent use.
type SNIPolicy struct {
	// CName is the only server name accepted. It is compared without
	// regard to ASCII case or a trailing dot.
	CName string
	// AllowMissingSNI accepts clients that send no server name at all,
	// such as health probes that dial an IP address. If false, they are
	// refused.
	AllowMissingSNI bool
}

// Check returns nil if serverName (from the ClientHello) is the policy's
// CName, compared without regard to ASCII case or a trailing dot. An empty
// serverName gives ErrMissingSNI unless AllowMissingSNI is set; any other
// name gives ErrUnrecognizedName.
func (p SNIPolicy) Check(serverName string) error {
	if serverName == "" {
		if p.AllowMissingSNI {
			return nil
		}
		return ErrMissingSNI
	}
	if p.CName != "" && sameName(serverName, p.CName) {
		return nil
	}
	return ErrUnrecognizedName
}

// normalizeName lowercases ASCII letters and drops one trailing dot. Only
// ASCII is folded: DNS names on the wire are ASCII (A-labels), and Unicode
// case folding would let, for example, "\u212a" (the Kelvin sign) match "k".
func normalizeName(s string) string {
	s = strings.TrimSuffix(s, ".")
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// sameName compares two DNS names without regard to ASCII case or a
// trailing dot. Empty names never match.
func sameName(a, b string) bool {
	a, b = normalizeName(a), normalizeName(b)
	return a != "" && a == b
}

// covers reports whether one of the DNS names (SANs) covers name. A
// wildcard SAN "*.example.com" covers exactly one extra label:
// "a.example.com", but neither "a.b.example.com" nor "example.com".
func covers(dnsNames []string, name string) bool {
	name = normalizeName(name)
	if name == "" {
		return false
	}
	for _, san := range dnsNames {
		san = normalizeName(san)
		if san == name {
			return true
		}
		parent, ok := strings.CutPrefix(san, "*.")
		if !ok || parent == "" || strings.Contains(parent, "*") {
			continue
		}
		label, rest, ok := strings.Cut(name, ".")
		if ok && label != "" && label != "*" && rest == parent {
			return true
		}
	}
	return false
}

// checkCovers returns ErrNameNotCovered, listing the leaf's DNS names, if
// they do not cover cname.
func checkCovers(dnsNames []string, cname string) error {
	if covers(dnsNames, cname) {
		return nil
	}
	if len(dnsNames) == 0 {
		return problemf(ErrNameNotCovered,
			"certificate does not cover %q: it has no DNS subject alternative names (the subject common name is not used for matching)", cname)
	}
	return problemf(ErrNameNotCovered, "certificate does not cover %q; its DNS names are %s", cname, quoteList(dnsNames))
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
