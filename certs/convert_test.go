package certs_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
)

// convertPKI is root -> intermediate -> leaf for api.example.com, plus a
// second, unrelated leaf.
type convertPKI struct {
	certstest.Files
	other *certstest.Leaf // signed by another root
}

func newConvertPKI(t *testing.T) convertPKI {
	t.Helper()
	return convertPKI{
		Files: certstest.NewFiles(t, t.TempDir(), "api.example.com"),
		other: certstest.NewRootCA(t, "Other Root").Leaf(t, certstest.LeafOptions{DNSNames: []string{"other.example.com"}}),
	}
}

// chain is leaf, intermediate, root: what ReadBundle should return.
func (p convertPKI) chain() []*x509.Certificate {
	return []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert, p.Root.Cert}
}

// der returns the DER bytes of the single PEM block in pemData.
func der(t testing.TB, pemData []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(pemData)
	if b == nil {
		t.Fatalf("no PEM block in %q", pemData)
	}
	return b.Bytes
}

// password returns a password func that gives pw and counts its calls.
func password(pw string, calls *int) func() ([]byte, error) {
	return func() ([]byte, error) {
		*calls++
		return []byte(pw), nil
	}
}

// checkBundle fails unless b holds want, leaf first, and key.
func checkBundle(t *testing.T, b *certs.Bundle, want []*x509.Certificate, key crypto.Signer) {
	t.Helper()
	if !slices.EqualFunc(b.Chain, want, func(a, b *x509.Certificate) bool { return a.Equal(b) }) {
		t.Errorf("Chain = %s, want %s", names(b.Chain), names(want))
	}
	switch {
	case key == nil && b.Key != nil:
		t.Errorf("Key = %T, want nil", b.Key)
	case key != nil && b.Key == nil:
		t.Errorf("Key = nil, want %T", key)
	case key != nil && !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(b.Key.Public()):
		t.Errorf("Key is not the leaf's key")
	}
}

func names(cs []*x509.Certificate) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Subject.CommonName)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// hasNote reports whether one of notes contains all of parts.
func hasNote(notes []string, parts ...string) bool {
	return slices.ContainsFunc(notes, func(n string) bool {
		for _, p := range parts {
			if !strings.Contains(n, p) {
				return false
			}
		}
		return true
	})
}

func TestReadBundlePKCS12(t *testing.T) {
	p := newConvertPKI(t)
	encoders := []struct {
		name string
		enc  *pkcs12.Encoder
	}{
		{"legacy RC2-40", pkcs12.LegacyRC2},
		{"legacy 3DES", pkcs12.LegacyDES},
		{"modern 2023 PBES2 AES", pkcs12.Modern2023},
		{"modern", pkcs12.Modern},
		{"modern 2026 PBMAC1", pkcs12.Modern2026},
	}
	for _, tt := range encoders {
		t.Run(tt.name+" gives the chain leaf first and the key", func(t *testing.T) {
			pfx, err := tt.enc.Encode(p.Leaf.Key, p.Leaf.Cert, []*x509.Certificate{p.Intermediate.Cert, p.Root.Cert}, "s3cret")
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			b, err := certs.ReadBundle([]certs.Input{{Name: "site.pfx", Data: pfx}}, password("s3cret", &calls))
			if err != nil {
				t.Fatalf("ReadBundle: %v", err)
			}
			checkBundle(t, b, p.chain(), p.Leaf.Key)
			if calls != 1 {
				t.Errorf("password called %d times, want 1", calls)
			}
			if want := "read site.pfx: PKCS#12 with 3 certificates and a private key (ECDSA P-256)"; !slices.Equal(b.Notes, []string{want}) {
				t.Errorf("Notes = %q, want [%q]", b.Notes, want)
			}
		})
	}

	pfx := func(t *testing.T, key crypto.Signer, cert *x509.Certificate, cas []*x509.Certificate, pw string) []byte {
		t.Helper()
		data, err := pkcs12.Modern2023.Encode(key, cert, cas, pw)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, tt := range []struct {
		name      string
		data      []byte
		wantNotes [][]string // each: substrings of one note
	}{
		{
			// DecodeChain would call the intermediate the leaf.
			name: "chain stored out of order comes back ordered with a note",
			data: pfx(t, p.Leaf.Key, p.Intermediate.Cert, []*x509.Certificate{p.Root.Cert, p.Leaf.Cert}, "s3cret"),
			wantNotes: [][]string{
				{"read site.pfx: PKCS#12 with 3 certificates"},
				{"site.pfx has the chain out of order: ", `; the output puts it leaf first, each certificate followed by its issuer: "CN=api.example.com", "CN=Test Intermediate", "CN=Test Root"`},
			},
		},
		{
			name: "certificate outside the leaf's chain is dropped with a note",
			data: pfx(t, p.Leaf.Key, p.Leaf.Cert, []*x509.Certificate{p.Intermediate.Cert, p.other.Cert, p.Root.Cert}, "s3cret"),
			wantNotes: [][]string{
				{"site.pfx: PKCS#12 with 4 certificates"},
				{`dropped "CN=other.example.com" (from site.pfx): it is not in the chain`},
			},
		},
		{
			name:      "base64 text as Key Vault's secret value is read",
			data:      []byte(base64.StdEncoding.EncodeToString(pfx(t, p.Leaf.Key, p.Leaf.Cert, []*x509.Certificate{p.Intermediate.Cert, p.Root.Cert}, "s3cret")) + "\n"),
			wantNotes: [][]string{{"site.pfx: base64 PKCS#12 with 3 certificates and a private key"}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			b, err := certs.ReadBundle([]certs.Input{{Name: "site.pfx", Data: tt.data}}, password("s3cret", &calls))
			if err != nil {
				t.Fatalf("ReadBundle: %v", err)
			}
			checkBundle(t, b, p.chain(), p.Leaf.Key)
			for _, parts := range tt.wantNotes {
				if !hasNote(b.Notes, parts...) {
					t.Errorf("Notes = %q, want one containing %q", b.Notes, parts)
				}
			}
			if len(b.Notes) != len(tt.wantNotes) {
				t.Errorf("Notes = %q, want %d", b.Notes, len(tt.wantNotes))
			}
		})
	}
}

func TestReadBundlePKCS12Password(t *testing.T) {
	p := newConvertPKI(t)
	cas := []*x509.Certificate{p.Intermediate.Cert, p.Root.Cert}
	protected, err := pkcs12.LegacyDES.Encode(p.Leaf.Key, p.Leaf.Cert, cas, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	open, err := pkcs12.Modern2023.Encode(p.Leaf.Key, p.Leaf.Cert, cas, "")
	if err != nil {
		t.Fatal(err)
	}
	errTTY := errors.New("no terminal")
	for _, tt := range []struct {
		name      string
		data      []byte
		password  func() ([]byte, error)
		wantErr   error // nil: success
		wantCalls int
	}{
		{"right password opens it", protected, func() ([]byte, error) { return []byte("s3cret"), nil }, nil, 1},
		{"wrong password is ErrWrongPassword", protected, func() ([]byte, error) { return []byte("guess"), nil }, certs.ErrWrongPassword, 1},
		{"no password func on a protected file is ErrPasswordRequired", protected, nil, certs.ErrPasswordRequired, 0},
		{"password func failing is ErrPasswordRequired and its error", protected, func() ([]byte, error) { return nil, errTTY }, errTTY, 1},
		{"empty password opens without asking", open, nil, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			pw := tt.password
			if pw != nil {
				pw = func() ([]byte, error) { calls++; return tt.password() }
			}
			b, err := certs.ReadBundle([]certs.Input{{Name: "site.pfx", Data: tt.data}}, pw)
			if calls != tt.wantCalls {
				t.Errorf("password called %d times, want %d", calls, tt.wantCalls)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ReadBundle: %v", err)
				}
				checkBundle(t, b, p.chain(), p.Leaf.Key)
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadBundle error = %v, want %v", err, tt.wantErr)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `input file "site.pfx": `) || !strings.Contains(msg, "password") {
				t.Errorf("error = %q, want it to start with the input file and mention the password", msg)
			}
			if strings.Contains(msg, "s3cret") || strings.Contains(msg, "guess") {
				t.Errorf("error = %q contains a password", msg)
			}
			if ie, ok := errors.AsType[*certs.InputError](err); !ok || ie.Path != "site.pfx" {
				t.Errorf("error = %#v, want an *InputError for site.pfx", err)
			}
		})
	}
}

func TestReadBundle(t *testing.T) {
	p := newConvertPKI(t)
	rsaLeaf := p.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{"rsa.example.com"}, KeyType: "rsa-2048"})
	weakLeaf := p.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{"weak.example.com"}, KeyType: "rsa-1024"})
	leaf, inter, root, key := p.Leaf.CertPEM, p.Intermediate.CertPEM, p.Root.CertPEM, p.Leaf.KeyPEM
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	bagAttrs := func(lines string, block []byte) []byte { return cat([]byte(lines), block) }
	pemInput := func(data []byte) []certs.Input { return []certs.Input{{Name: "bundle.pem", Data: data}} }

	type want struct {
		chain []*x509.Certificate
		key   crypto.Signer
		notes [][]string // each: substrings of one note
	}
	for _, tt := range []struct {
		name   string
		inputs []certs.Input
		want   want
	}{
		{
			name:   "DER certificate and DER PKCS#8 key as two inputs",
			inputs: []certs.Input{{Name: "leaf.cer", Data: der(t, leaf)}, {Name: "key.der", Data: der(t, key)}},
			want: want{chain: []*x509.Certificate{p.Leaf.Cert}, key: p.Leaf.Key, notes: [][]string{
				{`leaf.cer: DER certificate "CN=api.example.com"`}, {"key.der: DER private key (PKCS#8, ECDSA P-256)"},
			}},
		},
		{
			name:   "DER PKCS#1 RSA key",
			inputs: []certs.Input{{Name: "key.der", Data: der(t, certstest.PKCS1PEM(t, rsaLeaf.Key))}, {Name: "leaf.cer", Data: der(t, rsaLeaf.CertPEM)}},
			want: want{chain: []*x509.Certificate{rsaLeaf.Cert}, key: rsaLeaf.Key, notes: [][]string{
				{"key.der: DER private key (PKCS#1, RSA 2048 bits)"}, {"leaf.cer: DER certificate"},
			}},
		},
		{
			name:   "DER SEC 1 key and DER chain given issuer first is reordered",
			inputs: []certs.Input{{Name: "inter.cer", Data: der(t, inter)}, {Name: "leaf.cer", Data: der(t, leaf)}, {Name: "key.der", Data: der(t, certstest.SEC1PEM(t, p.Leaf.Key))}},
			want: want{chain: []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert}, key: p.Leaf.Key, notes: [][]string{
				{"read inter.cer"}, {"read leaf.cer"}, {"read key.der: DER private key (SEC 1, ECDSA P-256)"},
				{`the inputs hold the chain out of order: "CN=Test Intermediate" (inter.cer), "CN=api.example.com" (leaf.cer); the output puts it leaf first, each certificate followed by its issuer: "CN=api.example.com", "CN=Test Intermediate"`},
			}},
		},
		{
			name:   "PEM from Key Vault: key, leaf, intermediate in one file",
			inputs: pemInput(cat(key, leaf, inter)),
			want: want{chain: []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert}, key: p.Leaf.Key, notes: [][]string{
				{"bundle.pem: PEM with 2 certificates and a private key (ECDSA P-256)"},
			}},
		},
		{
			name:   "PEM chain reversed is reordered with a note",
			inputs: []certs.Input{{Name: "chain.pem", Data: cat(root, inter, leaf)}, {Name: "key.pem", Data: key}},
			want: want{chain: p.chain(), key: p.Leaf.Key, notes: [][]string{
				{"chain.pem: PEM with 3 certificates"}, {"key.pem: PEM with a private key"},
				{`chain.pem has the chain out of order: "CN=Test Root", "CN=Test Intermediate", "CN=api.example.com"; the output puts it leaf first, each certificate followed by its issuer: "CN=api.example.com", "CN=Test Intermediate", "CN=Test Root"`},
			}},
		},
		{
			name: "PEM with OpenSSL Bag Attributes before each block",
			inputs: pemInput(cat(
				bagAttrs("Bag Attributes\n    localKeyID: 01 00 00 00 \n    friendlyName: api\nKey Attributes: <No Attributes>\n", key),
				bagAttrs("Bag Attributes\n    localKeyID: 01 00 00 00 \nsubject=CN = api.example.com\nissuer=CN = Test Intermediate\n", leaf),
				bagAttrs("Bag Attributes: <Empty Attributes>\nsubject=CN = Test Intermediate\nissuer=CN = Test Root\n", inter),
			)),
			want: want{chain: []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert}, key: p.Leaf.Key, notes: [][]string{{"bundle.pem: PEM with 2 certificates"}}},
		},
		{
			name:   "PEM with a UTF-8 byte order mark",
			inputs: pemInput(cat([]byte{0xef, 0xbb, 0xbf}, key, leaf, inter)),
			want:   want{chain: []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert}, key: p.Leaf.Key, notes: [][]string{{"bundle.pem: PEM"}}},
		},
		{
			name:   "PEM with CRLF line endings",
			inputs: pemInput(bytes.ReplaceAll(cat(key, leaf, inter), []byte("\n"), []byte("\r\n"))),
			want:   want{chain: []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert}, key: p.Leaf.Key, notes: [][]string{{"bundle.pem: PEM"}}},
		},
		{
			name:   "PEM stray certificate is dropped with a note",
			inputs: pemInput(cat(key, leaf, p.other.CertPEM, inter)),
			want: want{chain: []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert}, key: p.Leaf.Key, notes: [][]string{
				{"bundle.pem: PEM with 3 certificates"}, {`dropped "CN=other.example.com" (from bundle.pem)`, `leaf "CN=api.example.com"`},
			}},
		},
		{
			name:   "same certificate and key in two inputs count once",
			inputs: []certs.Input{{Name: "bundle.pem", Data: cat(key, leaf, inter)}, {Name: "chain.pem", Data: cat(leaf, inter, root)}, {Name: "key.pem", Data: key}},
			want: want{chain: p.chain(), key: p.Leaf.Key, notes: [][]string{
				{"bundle.pem"}, {"chain.pem: PEM with 3 certificates"}, {"key.pem"},
				{`ignored a second copy of "CN=api.example.com" in chain.pem`}, {`ignored a second copy of "CN=Test Intermediate" in chain.pem`},
			}},
		},
		{
			name:   "without a key the leaf is the one non-CA certificate",
			inputs: pemInput(cat(inter, leaf)),
			want:   want{chain: []*x509.Certificate{p.Leaf.Cert, p.Intermediate.Cert}, notes: [][]string{{"bundle.pem: PEM with 2 certificates"}, {`bundle.pem has the chain out of order: "CN=Test Intermediate", "CN=api.example.com"`}}},
		},
		{
			name:   "PEM key with EC PARAMETERS block",
			inputs: pemInput(cat(certstest.ECParametersPEM(t, p.Leaf.Key), certstest.SEC1PEM(t, p.Leaf.Key), leaf)),
			want:   want{chain: []*x509.Certificate{p.Leaf.Cert}, key: p.Leaf.Key, notes: [][]string{{"bundle.pem: PEM with 1 certificate and a private key"}}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := certs.ReadBundle(tt.inputs, nil)
			if err != nil {
				t.Fatalf("ReadBundle: %v", err)
			}
			t.Logf("Notes: %q", b.Notes)
			checkBundle(t, b, tt.want.chain, tt.want.key)
			for _, parts := range tt.want.notes {
				if !hasNote(b.Notes, parts...) {
					t.Errorf("Notes = %q, want one containing %q", b.Notes, parts)
				}
			}
			if len(b.Notes) != len(tt.want.notes) {
				t.Errorf("Notes = %q, want %d", b.Notes, len(tt.want.notes))
			}
		})
	}

	// Errors.
	for _, tt := range []struct {
		name     string
		inputs   []certs.Input
		wantIs   error  // nil: not checked
		wantPath string // the *InputError's Path; "": not an InputError
		wantMsg  []string
	}{
		{
			name:    "key of another certificate is ErrKeyMismatch",
			inputs:  []certs.Input{{Name: "chain.pem", Data: cat(leaf, inter)}, {Name: "key.pem", Data: p.other.KeyPEM}},
			wantIs:  certs.ErrKeyMismatch,
			wantMsg: []string{"private key does not match the certificate", "belongs to none of the 2 certificates", `"CN=api.example.com"`},
		},
		{
			name:     "garbage names the forms tried",
			inputs:   []certs.Input{{Name: "x.bin", Data: []byte("\x30\x03\x02\x01\x07 not a certificate")}},
			wantPath: "x.bin",
			wantMsg:  []string{`input file "x.bin": not a PKCS#12 file, a DER certificate, a DER private key or PEM`},
		},
		{
			name:     "plain text names the forms tried",
			inputs:   []certs.Input{{Name: "notes.txt", Data: []byte("hello, world\n")}},
			wantPath: "notes.txt",
			wantMsg:  []string{`input file "notes.txt": not a PKCS#12 file, a DER certificate, a DER private key or PEM`},
		},
		{
			name:     "UTF-16 text says to save it as UTF-8",
			inputs:   []certs.Input{{Name: "bundle.pem", Data: utf16LE(string(cat(leaf, key)))}},
			wantPath: "bundle.pem",
			wantMsg:  []string{"UTF-16", "save it as UTF-8"},
		},
		{
			name:     "encrypted PEM key is ErrEncryptedKey",
			inputs:   pemInput(cat(certstest.EncryptedPKCS8PEM(t, p.Leaf.Key, "pw"), leaf)),
			wantIs:   certs.ErrEncryptedKey,
			wantPath: "bundle.pem",
			wantMsg:  []string{"private key is encrypted", `"ENCRYPTED PRIVATE KEY"`},
		},
		{
			name:     "encrypted DER PKCS#8 key is ErrEncryptedKey",
			inputs:   []certs.Input{{Name: "key.der", Data: der(t, certstest.EncryptedPKCS8PEM(t, p.Leaf.Key, "pw"))}},
			wantIs:   certs.ErrEncryptedKey,
			wantPath: "key.der",
			wantMsg:  []string{"private key is encrypted", "EncryptedPrivateKeyInfo"},
		},
		{
			name:     "weak DER key is ErrWeakKey",
			inputs:   []certs.Input{{Name: "key.der", Data: der(t, weakLeaf.KeyPEM)}, {Name: "leaf.cer", Data: der(t, weakLeaf.CertPEM)}},
			wantIs:   certs.ErrWeakKey,
			wantPath: "key.der",
			wantMsg:  []string{"RSA key is 1024 bits"},
		},
		{
			name:     "two different keys in one file",
			inputs:   pemInput(cat(key, leaf, p.other.KeyPEM)),
			wantIs:   certs.ErrUnexpectedBlock,
			wantPath: "bundle.pem",
			wantMsg:  []string{"two different private keys"},
		},
		{
			name:     "two different keys across inputs",
			inputs:   []certs.Input{{Name: "bundle.pem", Data: cat(key, leaf)}, {Name: "other-key.pem", Data: p.other.KeyPEM}},
			wantIs:   certs.ErrUnexpectedBlock,
			wantPath: "other-key.pem",
			wantMsg:  []string{`a second, different private key (the first is in "bundle.pem")`},
		},
		{
			name:    "no certificate at all is ErrNoCertificate",
			inputs:  []certs.Input{{Name: "key.pem", Data: key}},
			wantIs:  certs.ErrNoCertificate,
			wantMsg: []string{"only a private key"},
		},
		{
			name:    "without a key two leaves are ambiguous",
			inputs:  pemInput(cat(leaf, inter, p.other.CertPEM)),
			wantIs:  certs.ErrChainOrder,
			wantMsg: []string{"cannot tell which certificate is the leaf", `"CN=api.example.com"`, `"CN=other.example.com"`},
		},
		{
			name:     "truncated PEM block",
			inputs:   pemInput(cat(key, leaf[:len(leaf)-40])),
			wantIs:   certs.ErrMalformedCertificate,
			wantPath: "bundle.pem",
			wantMsg:  []string{"truncated"},
		},
		{
			name:     "empty file",
			inputs:   []certs.Input{{Name: "empty.pem", Data: []byte(" \n")}},
			wantPath: "empty.pem",
			wantMsg:  []string{"the file is empty"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := certs.ReadBundle(tt.inputs, nil)
			if err == nil {
				t.Fatalf("ReadBundle = chain %s, want an error", names(b.Chain))
			}
			t.Log(err)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want one matching %v", err, tt.wantIs)
			}
			ie, ok := errors.AsType[*certs.InputError](err)
			switch {
			case tt.wantPath == "" && ok:
				t.Errorf("error = %v is an *InputError for %q, want none", err, ie.Path)
			case tt.wantPath != "" && (!ok || ie.Path != tt.wantPath):
				t.Errorf("error = %v, want an *InputError for %q", err, tt.wantPath)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error = %q, want it to contain %q", err, m)
				}
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// utf16LE encodes s as UTF-16 with a little-endian byte order mark, as
// Windows Notepad's "Unicode" does.
func utf16LE(s string) []byte {
	out := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return out
}

func TestWritePair(t *testing.T) {
	p := newConvertPKI(t)
	b, err := certs.ReadBundle([]certs.Input{{Name: "bundle.pem", Data: bytes.Join([][]byte{p.Leaf.KeyPEM, p.Root.CertPEM, p.Leaf.CertPEM, p.Intermediate.CertPEM}, nil)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")

	t.Run("writes the chain 0644 and the key 0600, and they load", func(t *testing.T) {
		if err := certs.WritePair(b, certFile, keyFile, false); err != nil {
			t.Fatalf("WritePair: %v", err)
		}
		for path, want := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode(); got != want {
				t.Errorf("%s: mode = %v, want %v", path, got, want)
			}
		}
		certPEM, keyPEM := mustRead(t, certFile), mustRead(t, keyFile)
		if !bytes.Equal(certPEM, b.CertPEM()) {
			t.Errorf("cert.pem differs from CertPEM")
		}
		if blk, _ := pem.Decode(keyPEM); blk == nil || blk.Type != "PRIVATE KEY" {
			t.Errorf("key.pem = %q, want one \"PRIVATE KEY\" block", keyPEM)
		}
		pair, err := certs.ParsePair(certPEM, keyPEM, certFile, keyFile, certs.LoadOptions{CName: "api.example.com"})
		if err != nil {
			t.Fatalf("ParsePair: %v", err)
		}
		if got := len(pair.Certificate.Certificate); got != 3 {
			t.Errorf("ParsePair chain has %d certificates, want 3", got)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 {
			t.Errorf("dir holds %d entries, want 2 (no temporary files left)", len(entries))
		}
	})

	t.Run("refuses to overwrite without force and writes nothing", func(t *testing.T) {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		certstest.WriteFile(t, dir, "key.pem", []byte("old key"))
		err := certs.WritePair(b, certFile, keyFile, false)
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), keyFile) {
			t.Fatalf("WritePair error = %v, want one naming %s and matching fs.ErrExist", err, keyFile)
		}
		if _, err := os.Stat(certFile); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cert.pem: Stat error = %v, want it not written", err)
		}
		if got := mustRead(t, keyFile); string(got) != "old key" {
			t.Errorf("key.pem = %q, want it untouched", got)
		}
	})

	t.Run("overwrites with force", func(t *testing.T) {
		dir := t.TempDir()
		certFile := certstest.WriteFile(t, dir, "cert.pem", []byte("old cert"))
		keyFile := certstest.WriteFile(t, dir, "key.pem", []byte("old key"))
		if err := certs.WritePair(b, certFile, keyFile, true); err != nil {
			t.Fatalf("WritePair: %v", err)
		}
		if _, err := certs.LoadPair(certFile, keyFile, certs.LoadOptions{CName: "api.example.com"}); err != nil {
			t.Errorf("LoadPair: %v", err)
		}
		if fi, err := os.Stat(keyFile); err != nil || fi.Mode() != 0o600 {
			t.Errorf("key.pem: Stat = %v, %v, want mode 0600", fi.Mode(), err)
		}
	})

	t.Run("without a key writes nothing", func(t *testing.T) {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		noKey := &certs.Bundle{Chain: b.Chain}
		if err := certs.WritePair(noKey, certFile, keyFile, false); !errors.Is(err, certs.ErrNoKey) {
			t.Errorf("WritePair error = %v, want ErrNoKey", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("dir holds %d entries, want none", len(entries))
		}
	})
}

// FuzzReadBundle checks that ReadBundle never panics on one input, and that
// what it returns writes out as PEM that reads back the same.
func FuzzReadBundle(f *testing.F) {
	p := certstest.NewFiles(f, f.TempDir(), "api.example.com")
	for _, seed := range [][]byte{
		bytes.Join([][]byte{p.Leaf.KeyPEM, p.Leaf.CertPEM, p.Intermediate.CertPEM}, nil),
		p.Leaf.CertPEM,
		p.Leaf.KeyPEM,
		der(f, p.Leaf.CertPEM),
		der(f, p.Leaf.KeyPEM),
		[]byte("\x30\x80\x02\x01\x03"),
		{0xff, 0xfe, '-', 0},
	} {
		f.Add(seed)
	}
	if pfx, err := pkcs12.Modern2023.Encode(p.Leaf.Key, p.Leaf.Cert, []*x509.Certificate{p.Intermediate.Cert}, ""); err == nil {
		f.Add(pfx)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := certs.ReadBundle([]certs.Input{{Name: "in", Data: data}}, nil)
		if err != nil {
			return
		}
		again, err := certs.ReadBundle([]certs.Input{{Name: "out", Data: b.CertPEM()}}, nil)
		if err != nil && b.Key == nil {
			t.Fatalf("CertPEM does not read back: %v", err)
		}
		if err == nil && !slices.EqualFunc(again.Chain, b.Chain, func(x, y *x509.Certificate) bool { return x.Equal(y) }) {
			t.Fatalf("CertPEM reads back as %s, want %s", names(again.Chain), names(b.Chain))
		}
	})
}
