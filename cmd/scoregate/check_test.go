package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/acmetest"
	"github.com/scoregate/scoregate/certs/certstest"
)

// checkNow is the clock of the golden reports; the fixtures' validity
// periods are fixed around it so that every report is byte-for-byte
// reproducible, except for fingerprints of the random keys.
var checkNow = time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC)

// checkCase is one pair for the golden check reports.
type checkCase struct {
	name      string
	cert, key string // file names in the case's directory
	wantExit  int    // 0 valid, 1 invalid
	wantCodes []string
	noCAFile  bool   // check without --ca-file (the test root)
	wantCause string // of the chain_untrusted problem, if any
}

// mintCheckCases writes the pairs into dir: one valid, and one for each
// mistake users make with their files.
func mintCheckCases(t *testing.T, dir string) []checkCase {
	t.Helper()
	const name = "api.example.com"
	root := certstest.NewRootCAValid(t, "Test Root", certstest.Validity{NotBefore: checkNow.AddDate(-1, 0, 0), NotAfter: checkNow.AddDate(9, 0, 0)})
	inter := root.IntermediateValid(t, "Test Intermediate", certstest.Validity{NotBefore: checkNow.AddDate(-1, 0, 0), NotAfter: checkNow.AddDate(4, 0, 0)})
	leafOpts := func(o certstest.LeafOptions) certstest.LeafOptions {
		if o.DNSNames == nil {
			o.DNSNames = []string{name}
		}
		if o.NotBefore.IsZero() {
			o.NotBefore = checkNow.AddDate(0, 0, -10)
		}
		if o.NotAfter.IsZero() {
			o.NotAfter = checkNow.AddDate(0, 0, 80)
		}
		return o
	}
	leaf := inter.Leaf(t, leafOpts(certstest.LeafOptions{}))
	other := inter.Leaf(t, leafOpts(certstest.LeafOptions{DNSNames: []string{"other.example.com"}}))
	write := func(file string, blobs ...[]byte) { certstest.WriteChain(t, dir, file, blobs...) }
	pair := func(prefix string, l *certstest.Leaf) {
		write(prefix+"-chain.pem", l.CertPEM, inter.CertPEM)
		write(prefix+"-key.pem", l.KeyPEM)
	}
	write("ca.pem", root.CertPEM)

	pair("valid", leaf)
	write("wrong-order-chain.pem", inter.CertPEM, leaf.CertPEM)
	write("missing-intermediate-chain.pem", leaf.CertPEM)
	write("another-key.pem", other.KeyPEM)
	pair("other-name", other)
	pair("expired", inter.Leaf(t, leafOpts(certstest.LeafOptions{NotBefore: checkNow.AddDate(0, -3, 0), NotAfter: checkNow.AddDate(0, 0, -1)})))
	pair("not-yet-valid", inter.Leaf(t, leafOpts(certstest.LeafOptions{NotBefore: checkNow.AddDate(0, 0, 1)})))
	pair("expiring", inter.Leaf(t, leafOpts(certstest.LeafOptions{NotAfter: checkNow.AddDate(0, 0, 12)})))
	pair("client-auth", inter.Leaf(t, leafOpts(certstest.LeafOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})))
	pair("rsa-1024", inter.Leaf(t, leafOpts(certstest.LeafOptions{KeyType: "rsa-1024"})))
	bom := []byte{0xef, 0xbb, 0xbf}
	write("bom-chain.pem", bom, leaf.CertPEM, inter.CertPEM)
	write("bom-key.pem", bom, leaf.KeyPEM)
	crlf := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }
	write("crlf-chain.pem", crlf(leaf.CertPEM), crlf(inter.CertPEM))
	write("crlf-key.pem", crlf(leaf.KeyPEM))
	write("keyvault.pem", leaf.KeyPEM, leaf.CertPEM, inter.CertPEM)
	write("with-root-chain.pem", leaf.CertPEM, inter.CertPEM, root.CertPEM)

	return []checkCase{
		{"valid", "valid-chain.pem", "valid-key.pem", 0, nil, false, ""},
		{"wrong-order", "wrong-order-chain.pem", "valid-key.pem", 1, []string{"chain_order"}, false, ""},
		{"missing-intermediate", "missing-intermediate-chain.pem", "valid-key.pem", 1, []string{"chain_untrusted"}, false, "missing_intermediate"},
		{"private-root-in-file", "with-root-chain.pem", "valid-key.pem", 1, []string{"chain_untrusted"}, true, "untrusted_root"},
		{"private-root-not-given", "valid-chain.pem", "valid-key.pem", 1, []string{"chain_untrusted"}, true, "missing_intermediate"},
		{"key-of-another-certificate", "valid-chain.pem", "another-key.pem", 1, []string{"key_mismatch"}, false, ""},
		{"name-not-covered", "other-name-chain.pem", "other-name-key.pem", 1, []string{"name_not_covered"}, false, ""},
		{"expired", "expired-chain.pem", "expired-key.pem", 1, []string{"expired"}, false, ""},
		{"not-yet-valid", "not-yet-valid-chain.pem", "not-yet-valid-key.pem", 1, []string{"not_yet_valid"}, false, ""},
		{"expiring-soon", "expiring-chain.pem", "expiring-key.pem", 0, []string{"validity"}, false, ""},
		{"client-auth-only", "client-auth-chain.pem", "client-auth-key.pem", 1, []string{"no_server_auth"}, false, ""},
		{"rsa-1024", "rsa-1024-chain.pem", "rsa-1024-key.pem", 1, []string{"weak_key"}, false, ""},
		{"bom", "bom-chain.pem", "bom-key.pem", 0, nil, false, ""},
		{"crlf", "crlf-chain.pem", "crlf-key.pem", 0, nil, false, ""},
		{"key-vault-combined", "keyvault.pem", "keyvault.pem", 0, nil, false, ""},
	}
}

// fingerprints are the only parts of a report that differ between runs:
// the keys are random.
var fingerprints = regexp.MustCompile(`\b[0-9a-f]{64}\b|\b[0-9A-F]{40}\b`)

// TestCheckGolden compares the text and JSON reports of every case with
// testdata/check/<case>.txt and .json (go test -update rewrites them), and
// checks the verdict and problem codes.
func TestCheckGolden(t *testing.T) {
	golden, err := filepath.Abs(filepath.Join("testdata", "check"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := mintCheckCases(t, dir)
	t.Chdir(dir) // the reports name the files as given: relative paths
	roots, err := certs.LoadRoots("ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := checkConfig{certFile: tc.cert, keyFile: tc.key, cname: "api.example.com", caFile: "ca.pem"}
			opts := certs.LoadOptions{CName: c.cname, Roots: roots, Now: func() time.Time { return checkNow }}
			if tc.noCAFile {
				c.caFile, opts.Roots = "", nil
			}
			out := newCheckOutput(c, opts)
			if got := map[bool]int{true: 0, false: 1}[out.Valid]; got != tc.wantExit {
				t.Errorf("Valid = %v, want exit %d; problems: %+v", out.Valid, tc.wantExit, out.Problems)
			}
			var codes []string
			cause := ""
			for _, p := range out.Problems {
				codes = append(codes, p.Code)
				if p.Code == "chain_untrusted" {
					cause = p.Cause
				}
			}
			if cause != tc.wantCause {
				t.Errorf("chain_untrusted cause = %q, want %q", cause, tc.wantCause)
			}
			if strings.Join(codes, ",") != strings.Join(tc.wantCodes, ",") {
				t.Errorf("problem codes = %q, want %q", codes, tc.wantCodes)
			}
			var text bytes.Buffer
			writeReport(&text, out)
			js, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join(golden, tc.name+".txt"), fingerprints.ReplaceAll(text.Bytes(), []byte("<fingerprint>")))
			compareGolden(t, filepath.Join(golden, tc.name+".json"), fingerprints.ReplaceAll(append(js, '\n'), []byte("<fingerprint>")))
		})
	}
}

// compareGolden compares got with the file at path, or rewrites the file
// with -update.
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", filepath.Base(path), got)
	}
}

// hintCommand is the command in backticks of the fix line (of check's or
// cert convert's text report) for code that starts with prefix.
func hintCommand(t *testing.T, report, code, prefix string) []string {
	t.Helper()
	fix := ""
	lines := strings.Split(report, "\n")
	for i, l := range lines {
		if strings.HasSuffix(l, "["+code+"]") && i+1 < len(lines) {
			fix = lines[i+1]
		}
	}
	if fix == "" {
		t.Fatalf("no fix for %s in the report:\n%s", code, report)
	}
	for _, m := range regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(fix, -1) {
		if strings.HasPrefix(m[1], prefix) {
			return shellWords(t, m[1])
		}
	}
	t.Fatalf("the fix for %s has no `%s ...`: %s", code, prefix, fix)
	return nil
}

// shellWords splits a command line as sh would one that shellQuote wrote:
// words separated by spaces, some in single quotes.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
			}
			inWord = false
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// flagValue is the value after --name in args.
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no --%s in %q", name, args)
	return ""
}

// TestCheckHintsRunAsPrinted runs the command a fix suggests, as printed,
// after doing what the fix says to do first (saving a certificate under
// the name it gives), and checks that it succeeds and that its result
// passes check with the same flags. The files sit in a directory whose
// name needs quoting, and the commands must carry the flags given.
func TestCheckHintsRunAsPrinted(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	const sub = "my tls" // relative, with a space
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	f := certstest.NewFiles(t, sub, "api.example.com")
	reversed := certstest.WriteChain(t, sub, "reversed.pem", f.Intermediate.CertPEM, f.Leaf.CertPEM)
	leafOnly := certstest.WriteChain(t, sub, "leaf-only.pem", f.Leaf.CertPEM)
	withRoot := certstest.WriteChain(t, sub, "with-root.pem", f.Leaf.CertPEM, f.Intermediate.CertPEM, f.Root.CertPEM)
	certstest.WriteFile(t, sub, "leaf.der", f.Leaf.Cert.Raw)
	keyDER, err := x509.MarshalPKCS8PrivateKey(f.Leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	certstest.WriteFile(t, sub, "key.der", keyDER)
	pfx, err := pkcs12.Modern2023.Encode(f.Leaf.Key, f.Leaf.Cert, nil, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	certstest.WriteFile(t, sub, "leaf-only.pfx", pfx)
	certstest.WriteFile(t, sub, "pw.txt", []byte("s3cret\n"))
	check := func(cert string, more ...string) []string {
		return append([]string{"check", "--ssl-cert-pem-file", cert, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com"}, more...)
	}
	convert := func(more ...string) []string {
		return append([]string{"cert", "convert", "--out-cert", sub + "/out.pem", "--out-key", sub + "/out-key.pem", "--ssl-cname", "api.example.com", "--ca-file", f.CAFile}, more...)
	}
	for _, tt := range []struct {
		name   string
		args   []string // the first command; it exits 1
		code   string   // the problem whose fix is run
		prefix string   // of the command in the fix
		save   []byte   // what the fix says to save first, DER or PEM, under the name it gives ("as NAME")
	}{
		{"wrong order", check(reversed, "--ca-file", f.CAFile), "chain_order", "scoregate cert convert", nil},
		{"missing intermediate", check(leafOnly, "--ca-file", f.CAFile), "chain_untrusted", "scoregate cert convert", f.Intermediate.Cert.Raw},
		{"private root in the file", check(withRoot), "chain_untrusted", "scoregate check", f.Root.CertPEM},
		{"private root not given", check(f.CertFile), "chain_untrusted", "scoregate check", f.Root.CertPEM},
		{"convert's own missing intermediate", convert("--in", sub+"/leaf.der", "--in", sub+"/key.der"), "chain_untrusted", "scoregate cert convert", f.Intermediate.CertPEM},
		{"convert's own, from a .pfx with a password", convert("--in", sub+"/leaf-only.pfx", "--password-file", sub+"/pw.txt", "--force"), "chain_untrusted", "scoregate cert convert", f.Intermediate.CertPEM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runCmd(t, tt.args...)
			if code != exitFailure {
				t.Fatalf("%q: exit %d, want 1; stderr: %s\n%s", tt.args, code, stderr, out)
			}
			hint := hintCommand(t, out, tt.code, tt.prefix)
			if tt.save != nil {
				m := regexp.MustCompile(`from your CA as ('[^']*'|\S+) \(PEM or DER|(?i:save) that root's certificate as ('[^']*'|\S+) and`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("the fix names no file to save:\n%s", out)
				}
				name := shellWords(t, m[1]+m[2])[0]
				if err := os.WriteFile(name, tt.save, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(name) })
			}
			code, out, stderr = runCmd(t, hint[1:]...)
			if code != exitOK {
				t.Fatalf("the hint %q: exit %d, want 0; stderr: %s\n%s", hint, code, stderr, out)
			}
			if tt.prefix == "scoregate cert convert" {
				cert, key := flagValue(t, hint, "out-cert"), flagValue(t, hint, "out-key")
				t.Cleanup(func() { os.Remove(cert); os.Remove(key) })
				for _, want := range []string{"--ssl-cname", "--ca-file"} {
					if !slices.Contains(hint, want) {
						t.Errorf("the hint %q lacks %s, which the check was given", hint, want)
					}
				}
				if code, out, _ := runCmd(t, "check", "--ssl-cert-pem-file", cert, "--ssl-key-pem-file", key, "--ssl-cname", "api.example.com", "--ca-file", f.CAFile); code != exitOK {
					t.Errorf("check of what the hint wrote: exit %d, want 0:\n%s", code, out)
				}
			}
		})
	}
}

// TestCheckExpect checks --expect against a real DNS server on
// 127.0.0.1, which answers api.example.com with 127.0.0.1 once added.
func TestCheckExpect(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	dns := acmetest.StartDNS(t)
	dns.Add("api.example.com")
	empty := acmetest.StartDNS(t) // resolves nothing
	pair := []string{"check", "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--json"}
	for _, tt := range []struct {
		name        string
		args        []string
		env         map[string]string
		want        int
		wantMatches bool
		wantCode    string // the DNS problem, if any
	}{
		{"matches", []string{"--dns-resolver", dns.Addr, "--expect", "127.0.0.1"}, nil, 0, true, ""},
		{"one of several expected", []string{"--dns-resolver", dns.Addr, "--expect", "192.0.2.10", "--expect", "127.0.0.1"}, nil, 0, true, ""},
		{"comma-separated, IPv6 too", []string{"--dns-resolver", dns.Addr, "--expect", "2001:db8::1, 127.0.0.1"}, nil, 0, true, ""},
		{"from the environment", []string{"--dns-resolver", dns.Addr}, map[string]string{"SCOREGATE_EXPECT": "127.0.0.1"}, 0, true, ""},
		{"another address", []string{"--dns-resolver", dns.Addr, "--expect", "192.0.2.10"}, nil, 1, false, "dns_mismatch"},
		{"does not resolve", []string{"--dns-resolver", empty.Addr, "--expect", "127.0.0.1"}, nil, 1, false, "dns_unresolved"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			code := run(t.Context(), append(slices.Clone(pair), tt.args...), getenv, &stdout, &stderr)
			if code != tt.want {
				t.Fatalf("exit %d, want %d; stderr: %s\n%s", code, tt.want, stderr.String(), stdout.String())
			}
			var got struct {
				Valid bool `json:"valid"`
				DNS   struct {
					Addresses []string `json:"addresses"`
					Expected  []string `json:"expected"`
					Matches   *bool    `json:"matches"`
				} `json:"dns"`
				Problems []certs.Problem   `json:"problems"`
				Fixes    map[string]string `json:"fixes"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("%v:\n%s", err, stdout.String())
			}
			if got.DNS.Matches == nil || *got.DNS.Matches != tt.wantMatches || got.Valid != (tt.want == 0) {
				t.Errorf("dns = %+v, valid = %v; want matches %v", got.DNS, got.Valid, tt.wantMatches)
			}
			var codes []string
			for _, p := range got.Problems {
				codes = append(codes, p.Code)
			}
			if want := []string{tt.wantCode}; tt.wantCode == "" && len(codes) > 0 || tt.wantCode != "" && !slices.Equal(codes, want) {
				t.Errorf("problems = %q, want [%s]", codes, tt.wantCode)
			}
			if tt.wantCode != "" && !strings.Contains(got.Fixes[tt.wantCode], "--expect "+strings.Join(got.DNS.Expected, ",")) {
				t.Errorf("fix %q does not repeat the check with --expect", got.Fixes[tt.wantCode])
			}
		})
	}

	// The text report, and the check a fix prints, run once the name
	// points at the service.
	args := []string{"check", "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--dns-resolver", empty.Addr, "--expect", "127.0.0.1"}
	code, out, _ := runCmd(t, args...)
	for _, want := range []string{"\n  expected     127.0.0.1\n", "\n  points here  NO: the name does not resolve\n", "DNS: api.example.com does not resolve", "does not point at the service yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	hint := hintCommand(t, out, "dns_unresolved", "scoregate check")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1", code)
	}
	empty.Add("api.example.com")
	if code, out, _ := runCmd(t, hint[1:]...); code != exitOK || !strings.Contains(out, "\n  points here  yes") {
		t.Errorf("the hint %q once the name resolves: exit %d, want 0:\n%s", hint, code, out)
	}

	for _, tt := range []struct{ name, args, wantStderr string }{
		{"not an address", "--expect nope", `invalid value "nope" for flag -expect: "nope" is not an IP address`},
		{"a name", "--expect api.example.com", `for flag -expect: "api.example.com" is not an IP address`},
		{"one of a list", "--expect 127.0.0.1,,", `for flag -expect: "" is not an IP address`},
		{"a zone", "--expect fe80::1%eth0", `for flag -expect: "fe80::1%eth0" has a zone`},
		{"resolver without a lookup", "--dns-resolver " + dns.Addr, "--dns-resolver needs --resolve or --expect"},
		{"bad resolver", "--resolve --dns-resolver nope", `--dns-resolver "nope": want "host:port" or an IP address`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, append(slices.Clone(pair[:len(pair)-1]), strings.Fields(tt.args)...)...)
			if code != exitUsage || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr, tt.wantStderr)
			}
		})
	}
}
