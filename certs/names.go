package certs

import (
	"errors"
	"fmt"
	"net"
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
	// Refusals, if not nil, logs each handshake ServerTLSConfig refuses
	// with the name asked (see Refusals). Nil logs none; the metrics
	// count them either way. Check ignores it.
	Refusals *Refusals
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

// CheckName returns an error if name cannot be the cname: it must be a bare
// DNS host name in ASCII, as clients send it in TLS SNI and the Host
// header. A URL, a port, a path, a wildcard or an IP address each get a
// message that shows the bare name to give instead. A trailing dot is
// allowed. Serving (NewSource, NewACME) and `scoregate check` apply it.
func CheckName(name string) error {
	host := name
	if _, after, ok := strings.Cut(host, "://"); ok {
		host = after
	}
	host, _, _ = strings.Cut(host, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	eg := func(why string) error {
		if host != "" && host != name && validHostName(host) {
			return fmt.Errorf("give the bare host name, e.g. %q: %s", host, why)
		}
		return fmt.Errorf("give the bare host name clients use, e.g. \"score.contoso.com\": %s", why)
	}
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.Contains(name, "://"):
		return eg("not a URL")
	case strings.Contains(name, "/"):
		return eg("no path")
	case net.ParseIP(host) != nil:
		return errors.New("an IP address, not a DNS name: TLS clients send no server name (SNI) for an IP address, and the certificate must cover a DNS name")
	case host != name:
		return eg("no port (the port clients use is the listener's)")
	case strings.Contains(name, "*"):
		return eg("a wildcard belongs in the certificate, not in the name clients use")
	}
	for _, r := range name {
		if r > 0x7f {
			return errors.New("not ASCII: give the internationalized name in its ASCII (punycode, \"xn--\") form")
		}
	}
	if !validHostName(name) {
		return errors.New("not a DNS host name: want letters, digits and hyphens in dot-separated labels of at most 63 characters")
	}
	return nil
}

// validHostName reports whether s is letters, digits and hyphens in
// non-empty dot-separated labels of at most 63 bytes (253 in all), with
// an optional trailing dot, no label starting or ending with a hyphen.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
