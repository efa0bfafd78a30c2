package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs"
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

	return []checkCase{
		{"valid", "valid-chain.pem", "valid-key.pem", 0, nil},
		{"wrong-order", "wrong-order-chain.pem", "valid-key.pem", 1, []string{"chain_order"}},
		{"missing-intermediate", "missing-intermediate-chain.pem", "valid-key.pem", 1, []string{"chain_untrusted"}},
		{"key-of-another-certificate", "valid-chain.pem", "another-key.pem", 1, []string{"key_mismatch"}},
		{"name-not-covered", "other-name-chain.pem", "other-name-key.pem", 1, []string{"name_not_covered"}},
		{"expired", "expired-chain.pem", "expired-key.pem", 1, []string{"expired"}},
		{"not-yet-valid", "not-yet-valid-chain.pem", "not-yet-valid-key.pem", 1, []string{"not_yet_valid"}},
		{"expiring-soon", "expiring-chain.pem", "expiring-key.pem", 0, []string{"validity"}},
		{"client-auth-only", "client-auth-chain.pem", "client-auth-key.pem", 1, []string{"no_server_auth"}},
		{"rsa-1024", "rsa-1024-chain.pem", "rsa-1024-key.pem", 1, []string{"weak_key"}},
		{"bom", "bom-chain.pem", "bom-key.pem", 0, nil},
		{"crlf", "crlf-chain.pem", "crlf-key.pem", 0, nil},
		{"key-vault-combined", "keyvault.pem", "keyvault.pem", 0, nil},
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
			out := newCheckOutput(c, certs.LoadOptions{CName: c.cname, Roots: roots, Now: func() time.Time { return checkNow }})
			if got := map[bool]int{true: 0, false: 1}[out.Valid]; got != tc.wantExit {
				t.Errorf("Valid = %v, want exit %d; problems: %+v", out.Valid, tc.wantExit, out.Problems)
			}
			var codes []string
			for _, p := range out.Problems {
				codes = append(codes, p.Code)
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
