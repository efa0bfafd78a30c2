package certs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/scoregate/scoregate/certs"
)

func TestSNIPolicyCheck(t *testing.T) {
	for _, tt := range []struct {
		name       string
		policy     certs.SNIPolicy
		serverName string
		want       error
	}{
		{"exact", certs.SNIPolicy{CName: cname}, "api.example.com", nil},
		{"upper case", certs.SNIPolicy{CName: cname}, "API.EXAMPLE.COM", nil},
		{"trailing dot", certs.SNIPolicy{CName: cname}, "api.example.com.", nil},
		{"cname with trailing dot", certs.SNIPolicy{CName: "Api.Example.Com."}, "api.example.com", nil},
		{"other name", certs.SNIPolicy{CName: cname}, "evil.example.com", certs.ErrUnrecognizedName},
		{"subdomain", certs.SNIPolicy{CName: cname}, "a.api.example.com", certs.ErrUnrecognizedName},
		{"parent", certs.SNIPolicy{CName: cname}, "example.com", certs.ErrUnrecognizedName},
		{"two trailing dots", certs.SNIPolicy{CName: cname}, "api.example.com..", certs.ErrUnrecognizedName},
		{"Unicode case folding is not applied", certs.SNIPolicy{CName: "k.example.com"}, "\u212a.example.com", certs.ErrUnrecognizedName},
		{"wildcard cname is literal", certs.SNIPolicy{CName: "*.example.com"}, "a.example.com", certs.ErrUnrecognizedName},
		{"missing SNI refused", certs.SNIPolicy{CName: cname}, "", certs.ErrMissingSNI},
		{"missing SNI allowed", certs.SNIPolicy{CName: cname, AllowMissingSNI: true}, "", nil},
		{"allowing missing SNI allows no other name", certs.SNIPolicy{CName: cname, AllowMissingSNI: true}, "evil.example.com", certs.ErrUnrecognizedName},
		{"zero policy refuses a name", certs.SNIPolicy{}, "api.example.com", certs.ErrUnrecognizedName},
		{"zero policy refuses a dot", certs.SNIPolicy{}, ".", certs.ErrUnrecognizedName},
		{"zero policy refuses no name", certs.SNIPolicy{}, "", certs.ErrMissingSNI},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Check(tt.serverName); !errors.Is(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("%+v.Check(%q) = %v, want %v", tt.policy, tt.serverName, got, tt.want)
			}
		})
	}
}

// refName is a reference normalisation for FuzzSNIPolicy, written
// independently of the package's: ASCII lower case, one trailing dot
// removed.
func refName(s string) string {
	s, _ = strings.CutSuffix(s, ".")
	var b strings.Builder
	for i := 0; i < len(s); i++ { // bytes, not runes: names may be invalid UTF-8
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

func FuzzSNIPolicy(f *testing.F) {
	for _, s := range [][2]string{
		{cname, cname}, {cname, "API.EXAMPLE.COM."}, {cname, ""}, {"", ""}, {".", "."},
		{cname, "evil.example.com"}, {"k", "\u212a"}, {"\xff", "\xff."}, {"a.", "a.."},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, cname, serverName string, allowMissing bool) {
		p := certs.SNIPolicy{CName: cname, AllowMissingSNI: allowMissing}
		err := p.Check(serverName)
		switch {
		case serverName == "" && allowMissing:
			if err != nil {
				t.Fatalf("%+v.Check(%q) = %v, want nil", p, serverName, err)
			}
		case serverName == "":
			if err != certs.ErrMissingSNI {
				t.Fatalf("%+v.Check(%q) = %v, want ErrMissingSNI", p, serverName, err)
			}
		case refName(serverName) != "" && refName(serverName) == refName(cname):
			if err != nil {
				t.Fatalf("%+v.Check(%q) = %v, want nil", p, serverName, err)
			}
		default:
			if err != certs.ErrUnrecognizedName {
				t.Fatalf("%+v.Check(%q) = %v, want ErrUnrecognizedName", p, serverName, err)
			}
		}
		// The policy accepts its own cname in any ASCII case.
		if refName(cname) != "" {
			for _, n := range []string{cname, strings.ToUpper(cname), strings.ToLower(cname)} {
				if isASCII(n) {
					if err := p.Check(n); err != nil {
						t.Fatalf("%+v.Check(%q) = %v, want nil", p, n, err)
					}
				}
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name string
		want string // substring of the error; "" for none
	}{
		{"score.contoso.com", ""},
		{"score.contoso.com.", ""},
		{"localhost", ""},
		{"myservice1a2b3c.westeurope.cloudapp.azure.com", ""},
		{"https://score.contoso.com", `give the bare host name, e.g. "score.contoso.com": not a URL`},
		{"https://score.contoso.com:443/score", `e.g. "score.contoso.com": not a URL`},
		{"score.contoso.com:443", `give the bare host name, e.g. "score.contoso.com": no port`},
		{"score.contoso.com/score", `e.g. "score.contoso.com": no path`},
		{"*.contoso.com", "a wildcard belongs in the certificate"},
		{"10.0.0.4", "an IP address, not a DNS name"},
		{"[::1]:443", "an IP address"},
		{"bücher.example", `"xn--"`},
		{"score..contoso.com", "not a DNS host name"},
		{"-score.contoso.com", "not a DNS host name"},
		{"score contoso", "not a DNS host name"},
		{"", "empty name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := certs.CheckName(tt.name)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckName(%q) = %v, want nil", tt.name, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("CheckName(%q) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}
