package proxy

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckHost(t *testing.T) {
	for _, tt := range []struct {
		name, host string
		want       int
	}{
		{"exact", "api.example.com", 0},
		{"upper case", "API.EXAMPLE.COM", 0},
		{"trailing dot", "api.example.com.", 0},
		{"port", "api.example.com:443", 0},
		{"trailing dot and port", "api.example.com.:8443", 0},
		{"empty port", "api.example.com:", 0},
		{"other name", "evil.example.com", 421},
		{"cname as a suffix", "xapi.example.com", 421},
		{"cname as a prefix", "api.example.com.evil", 421},
		{"IPv4", "192.0.2.1:443", 421},
		{"IPv6", "[2001:db8::1]", 421},
		{"IPv6 with port", "[::1]:8443", 421},
		{"IPv4-mapped IPv6", "[::ffff:192.0.2.1]", 421},
		{"underscore label", "_acme.example.com", 421},
		{"empty", "", 400},
		{"dot only", ".", 400},
		{"leading dot", ".api.example.com", 400},
		{"empty label", "api..example.com", 400},
		{"two trailing dots", "api.example.com..", 400},
		{"space", "api example.com", 400},
		{"percent", "api%2eexample.com", 400},
		{"non-ASCII", "äpi.example.com", 400},
		{"Kelvin sign is not k", "api.example.co\u212a", 400},
		{"NUL", "api.example.com\x00", 400},
		{"bad port letters", "api.example.com:80a", 400},
		{"bad port too big", "api.example.com:65536", 400},
		{"bad port too long", "api.example.com:000443", 400},
		{"two colons", "api.example.com:443:443", 400},
		{"unbracketed IPv6", "2001:db8::1", 400},
		{"unclosed bracket", "[::1", 400},
		{"junk after bracket", "[::1]:443x", 400},
		{"text after bracket", "[::1]api.example.com", 400},
		{"empty brackets", "[]", 400},
		{"IPv4 in brackets", "[192.0.2.1]", 400},
		{"zone", "[fe80::1%25eth0]", 400},
		{"bracketed name", "[api.example.com]", 400},
		{"label 64 bytes", strings.Repeat("a", 64) + ".com", 400},
		{"name 254 bytes", strings.Repeat("a.", 126) + "aa", 400},
		{"huge", strings.Repeat("a", 100000), 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckHost(tt.host, "api.example.com")
			if got != tt.want {
				t.Fatalf("CheckHost(%q) = %d, %v; want %d", tt.host, got, err, tt.want)
			}
			switch tt.want {
			case 0:
				if err != nil {
					t.Errorf("CheckHost(%q) error = %v, want nil", tt.host, err)
				}
			case 400:
				if !errors.Is(err, ErrMalformedHost) {
					t.Errorf("CheckHost(%q) error = %v, want ErrMalformedHost", tt.host, err)
				}
			case 421:
				if !errors.Is(err, ErrMisdirectedHost) {
					t.Errorf("CheckHost(%q) error = %v, want ErrMisdirectedHost", tt.host, err)
				}
			}
		})
	}
}

func TestCheckHostLimits(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("a", 61)
	for _, tt := range []struct{ name, host, cname string }{
		{"63-byte label", label63 + ".example.com", label63 + ".example.com"},
		{"253-byte name", name253, name253},
		{"253-byte name, trailing dot and port", name253 + ".:65535", name253},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := CheckHost(tt.host, tt.cname); got != 0 {
				t.Errorf("CheckHost of a %d-byte host = %d, %v; want 0", len(tt.host), got, err)
			}
		})
	}
}

func TestCheckHostCNameForms(t *testing.T) {
	for _, cname := range []string{"api.example.com", "API.example.com", "api.example.com."} {
		if got, err := CheckHost("Api.Example.Com:443", cname); got != 0 {
			t.Errorf("CheckHost against cname %q = %d, %v; want 0", cname, got, err)
		}
	}
}

// normalizeHost is the reference for FuzzCheckHost, deliberately written
// differently from CheckHost: lower case, port and one trailing dot
// dropped.
func normalizeHost(h string) string {
	h = strings.ToLower(h)
	if strings.HasPrefix(h, "[") {
		if i := strings.Index(h, "]"); i >= 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

func FuzzCheckHost(f *testing.F) {
	for _, s := range []struct{ host, cname string }{
		{"api.example.com", "api.example.com"},
		{"API.example.com.:8443", "api.example.com"},
		{"api.example.com", "api.example.com."},
		{"evil.example.com", "api.example.com"},
		{"[::1]:443", "api.example.com"},
		{"[::1", "api.example.com"},
		{"[fe80::1%25eth0]", "api.example.com"},
		{"a..b", "a.b"},
		{"api.example.com:99999", "api.example.com"},
		{"api.example.co\u212a", "api.example.com"},
		{"", ""},
		{":", ""},
		{".", "."},
	} {
		f.Add(s.host, s.cname)
	}
	f.Fuzz(func(t *testing.T, host, cname string) {
		status, err := CheckHost(host, cname)
		switch status {
		case 0:
			if err != nil {
				t.Fatalf("CheckHost(%q, %q) = 0, %v; want a nil error with 0", host, cname, err)
			}
			if normalizeHost(host) != strings.ToLower(strings.TrimSuffix(cname, ".")) {
				t.Fatalf("CheckHost(%q, %q) matched, but the host is not the cname modulo case, trailing dot and port", host, cname)
			}
			if len(host) == 0 || strings.ContainsAny(host, " /?#@%\x00") {
				t.Fatalf("CheckHost(%q, %q) matched a malformed host", host, cname)
			}
		case 400:
			if !errors.Is(err, ErrMalformedHost) {
				t.Fatalf("CheckHost(%q, %q) = 400, %v; want ErrMalformedHost", host, cname, err)
			}
		case 421:
			if !errors.Is(err, ErrMisdirectedHost) {
				t.Fatalf("CheckHost(%q, %q) = 421, %v; want ErrMisdirectedHost", host, cname, err)
			}
		default:
			t.Fatalf("CheckHost(%q, %q) = %d, %v; want 0, 400 or 421", host, cname, status, err)
		}
		// Round trip: a host that passes keeps passing against its own
		// normal form, upper-cased and with a port.
		if status == 0 {
			n := normalizeHost(host)
			if got, err := CheckHost(strings.ToUpper(n)+".:1", n); got != 0 && !strings.HasPrefix(n, "[") {
				t.Fatalf("CheckHost(%q, %q) = %d, %v; want 0", strings.ToUpper(n)+".:1", n, got, err)
			}
		}
	})
}

func BenchmarkCheckHost(b *testing.B) {
	for _, host := range []string{"api.example.com", "API.example.com:443", "evil.example.com", "[::1]:443", "a..b"} {
		b.Run(host, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				CheckHost(host, "api.example.com")
			}
		})
	}
}
