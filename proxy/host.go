package proxy

import (
	"net/http"
	"net/netip"
	"strings"
)

const (
	// maxNameLen is the longest DNS name in text form, without the
	// trailing dot (RFC 1035 section 2.3.4 less the length octets).
	maxNameLen = 253
	// maxLabelLen is the longest DNS label (RFC 1035 section 2.3.4).
	maxLabelLen = 63
	// maxHostLen bounds a whole Host value: a bracketed IPv6 literal or a
	// name with its trailing dot, plus ":65535".
	maxHostLen = maxNameLen + 1 + len(":65535")
)

// CheckHost applies scoregate's Host policy: host, the HTTP/1.1 Host header
// or the HTTP/2 :authority (http.Request.Host), must name cname. The port is
// ignored, and so are ASCII case and one trailing dot on either side.
//
// It returns 0 and nil when host matches. It returns
// [net/http.StatusBadRequest] and an error wrapping [ErrMalformedHost] that
// says what is wrong when host is empty or malformed: a character outside
// letters, digits, '-', '_' and '.', an empty label ("a..b"), a label or name
// that is too long, a port that is not a decimal number up to 65535, or a
// bracketed IPv6 literal that does not parse. It returns
// [net/http.StatusMisdirectedRequest] and [ErrMisdirectedHost] for a
// well-formed host that names something else, including IPv4 and IPv6
// literals, so that an HTTP/2 client that coalesced connections retries on
// a new one.
//
// CheckHost does not allocate and is safe for concurrent use.
func CheckHost(host, cname string) (status int, err error) {
	name, err := hostName(host)
	if err != nil {
		return http.StatusBadRequest, err
	}
	if !equalFoldASCII(name, strings.TrimSuffix(cname, ".")) {
		return http.StatusMisdirectedRequest, ErrMisdirectedHost
	}
	return 0, nil
}

// hostName validates a Host value and returns its name part without the
// port and without a trailing dot. A bracketed IPv6 literal is returned with
// its brackets.
func hostName(host string) (string, error) {
	switch {
	case host == "":
		return "", errHostEmpty
	case len(host) > maxHostLen:
		return "", errHostTooLong
	case host[0] == '[':
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", errHostBracket
		}
		if err := checkPort(host[end+1:]); err != nil {
			return "", err
		}
		// Zones are refused: they only mean something on the client's
		// machine.
		a, err := netip.ParseAddr(host[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errHostIPv6
		}
		return host[:end+1], nil
	}
	name := host
	if i := strings.IndexByte(host, ':'); i >= 0 {
		if err := checkPort(host[i:]); err != nil {
			return "", err
		}
		name = host[:i]
	}
	return checkName(name)
}

// checkPort accepts "" (no port) or ':' followed by at most five decimal
// digits whose value is at most 65535. An empty port after the colon is
// allowed, as RFC 3986 section 3.2.3 allows it.
func checkPort(s string) error {
	if s == "" {
		return nil
	}
	if s[0] != ':' || len(s) > len(":65535") {
		return errHostPort
	}
	n := 0
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return errHostPort
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return errHostPort
	}
	return nil
}

// checkName validates a host name (no port) and returns it without its
// trailing dot. Labels are letters, digits, '-' and '_' (the underscore is
// not a hostname character, but it is a well-formed DNS label and some
// clients send it).
func checkName(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", errHostEmptyName
	}
	if len(name) > maxNameLen {
		return "", errHostTooLong
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if label == 0 {
				return "", errHostEmptyLabel
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", errHostChar
		}
		label++
		if label > maxLabelLen {
			return "", errHostLabel
		}
	}
	if label == 0 { // "a.b.." less one dot
		return "", errHostEmptyLabel
	}
	return name, nil
}

// equalFoldASCII reports whether a and b are equal under ASCII case folding.
// strings.EqualFold would also fold Unicode (the Kelvin sign matches 'k'),
// which a Host comparison must not do.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
