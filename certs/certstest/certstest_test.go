package certstest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

func TestNewFiles(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com", "www.example.com")
	roots := x509.NewCertPool()
	roots.AddCert(f.Root.Cert)
	inter := x509.NewCertPool()
	inter.AddCert(f.Intermediate.Cert)
	if _, err := f.Leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "www.example.com"}); err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}
	for _, tt := range []struct {
		path      string
		wantTypes string
	}{
		{f.CertFile, "CERTIFICATE,CERTIFICATE"},
		{f.KeyFile, "PRIVATE KEY"},
		{f.CAFile, "CERTIFICATE"},
	} {
		if got := blockTypes(t, readFile(t, tt.path)); got != tt.wantTypes {
			t.Errorf("%s holds %s, want %s", tt.path, got, tt.wantTypes)
		}
	}
	if got, want := string(readFile(t, f.CertFile)), string(f.Leaf.CertPEM)+string(f.Intermediate.CertPEM); got != want {
		t.Errorf("chain.pem is not the leaf followed by the intermediate")
	}
}

func TestLeafOptions(t *testing.T) {
	ca := certstest.NewRootCA(t, "Test Root")
	notBefore := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		keyType string
		check   func(any) bool
	}{
		{"", isCurve("P-256")},
		{"ecdsa-p256", isCurve("P-256")},
		{"ecdsa-p384", isCurve("P-384")},
		{"ecdsa-p521", isCurve("P-521")},
		{"ecdsa-p224", isCurve("P-224")},
		{"rsa-2048", isRSA(2048)},
		{"rsa-1024", isRSA(1024)},
		{"ed25519", func(k any) bool { _, ok := k.(ed25519.PublicKey); return ok }},
	} {
		t.Run(tt.keyType, func(t *testing.T) {
			l := ca.Leaf(t, certstest.LeafOptions{DNSNames: []string{"a.example.com"}, KeyType: tt.keyType, NotBefore: notBefore, NotAfter: notBefore.Add(time.Hour)})
			if !tt.check(l.Cert.PublicKey) {
				t.Errorf("KeyType %q: certificate key is %T", tt.keyType, l.Cert.PublicKey)
			}
			if !l.Cert.NotBefore.Equal(notBefore) || !l.Cert.NotAfter.Equal(notBefore.Add(time.Hour)) {
				t.Errorf("validity = %v..%v, want %v..%v", l.Cert.NotBefore, l.Cert.NotAfter, notBefore, notBefore.Add(time.Hour))
			}
			key, err := x509.ParsePKCS8PrivateKey(pemBytes(t, l.KeyPEM, "PRIVATE KEY"))
			if err != nil {
				t.Fatalf("KeyPEM is not PKCS#8: %v", err)
			}
			if _, ok := key.(crypto.Signer); !ok {
				t.Fatalf("PKCS#8 key %T is not a crypto.Signer", key)
			}
			if !l.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(l.Cert.PublicKey) {
				t.Errorf("Key does not match Cert")
			}
			if err := l.Cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("leaf is not signed by the CA: %v", err)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		l := ca.Leaf(t, certstest.LeafOptions{})
		if l.Cert.Subject.CommonName != "no-names" || len(l.Cert.DNSNames) != 0 {
			t.Errorf("CN, DNSNames = %q, %q, want no-names, none", l.Cert.Subject.CommonName, l.Cert.DNSNames)
		}
		if d := time.Until(l.Cert.NotAfter); d < 89*24*time.Hour || d > 91*24*time.Hour {
			t.Errorf("leaf expires in %v, want about 90 days", d)
		}
	})
}

func isCurve(name string) func(any) bool {
	return func(k any) bool {
		ec, ok := k.(*ecdsa.PublicKey)
		return ok && ec.Curve.Params().Name == name
	}
}

func isRSA(bits int) func(any) bool {
	return func(k any) bool {
		r, ok := k.(*rsa.PublicKey)
		return ok && r.N.BitLen() == bits
	}
}

func TestKeyEncodings(t *testing.T) {
	ca := certstest.NewRootCA(t, "Test Root")
	ec := ca.Leaf(t, certstest.LeafOptions{})
	rsaLeaf := ca.Leaf(t, certstest.LeafOptions{KeyType: "rsa-2048"})

	if _, err := x509.ParsePKCS1PrivateKey(pemBytes(t, certstest.PKCS1PEM(t, rsaLeaf.Key), "RSA PRIVATE KEY")); err != nil {
		t.Errorf("PKCS1PEM: %v", err)
	}
	if _, err := x509.ParseECPrivateKey(pemBytes(t, certstest.SEC1PEM(t, ec.Key), "EC PRIVATE KEY")); err != nil {
		t.Errorf("SEC1PEM: %v", err)
	}
	if _, err := x509.ParseECPrivateKey(pemBytes(t, certstest.ECParametersPEM(t, ec.Key), "EC PARAMETERS")); err == nil {
		t.Errorf("ECParametersPEM parses as a key")
	}
	for _, l := range []*certstest.Leaf{ec, rsaLeaf} {
		b, _ := pem.Decode(certstest.EncryptedLegacyPEM(t, l.Key, "pw"))
		if b.Headers["Proc-Type"] != "4,ENCRYPTED" || !strings.HasPrefix(b.Headers["DEK-Info"], "AES-256-CBC,") {
			t.Errorf("EncryptedLegacyPEM headers = %v", b.Headers)
		}
		if b, _ := pem.Decode(certstest.EncryptedPKCS8PEM(t, l.Key, "pw")); b.Type != "ENCRYPTED PRIVATE KEY" {
			t.Errorf("EncryptedPKCS8PEM type = %q", b.Type)
		}
	}
}

func pemBytes(t *testing.T, data []byte, wantType string) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil || b.Type != wantType {
		t.Fatalf("PEM block = %v, want type %q", b, wantType)
	}
	return b.Bytes
}

func blockTypes(t *testing.T, data []byte) string {
	t.Helper()
	var types []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return strings.Join(types, ",")
		}
		types = append(types, b.Type)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
