package certs_test

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
)

// FuzzParsePair feeds arbitrary certificate and key data to ParsePair. It
// must never panic, must fail only with a *FileError, and a success must be
// a pair that crypto/tls agrees with and whose leaf covers the cname.
func FuzzParsePair(f *testing.F) {
	root := certstest.NewRootCA(f, "Fuzz Root")
	inter := root.Intermediate(f, "Fuzz Intermediate")
	leaf := inter.Leaf(f, certstest.LeafOptions{DNSNames: []string{cname, "*.example.org"}})
	ed := inter.Leaf(f, certstest.LeafOptions{DNSNames: []string{cname}, KeyType: "ed25519"})
	expired := inter.Leaf(f, certstest.LeafOptions{DNSNames: []string{cname}, NotAfter: leaf.Cert.NotBefore})
	chain := slices.Concat(leaf.CertPEM, inter.CertPEM)

	f.Add(chain, leaf.KeyPEM, cname)
	f.Add(chain, leaf.KeyPEM, "a.example.org")
	f.Add(chain, leaf.KeyPEM, "a.b.example.org")
	f.Add(slices.Concat(chain, root.CertPEM), certstest.SEC1PEM(f, leaf.Key), "API.EXAMPLE.COM.")
	f.Add(slices.Concat(certstest.ECParametersPEM(f, leaf.Key), certstest.SEC1PEM(f, leaf.Key)), chain, cname) // swapped
	f.Add(slices.Concat(ed.CertPEM, inter.CertPEM), ed.KeyPEM, cname)
	f.Add(slices.Concat(inter.CertPEM, leaf.CertPEM), leaf.KeyPEM, cname)
	f.Add(slices.Concat(leaf.CertPEM, root.CertPEM), leaf.KeyPEM, cname)
	f.Add(slices.Concat(expired.CertPEM, inter.CertPEM), expired.KeyPEM, cname)
	f.Add(chain, ed.KeyPEM, cname)
	f.Add(chain, certstest.EncryptedLegacyPEM(f, leaf.Key, "pw"), cname)
	f.Add(chain, certstest.EncryptedPKCS8PEM(f, leaf.Key, "pw"), cname)
	f.Add(chain, slices.Concat(leaf.KeyPEM, leaf.KeyPEM), cname)
	f.Add([]byte{}, []byte{}, cname)
	f.Add(leaf.Cert.Raw, []byte("garbage"), cname)
	f.Add(chain, leaf.KeyPEM, "")
	// The committed, deliberately broken fixtures.
	files, err := filepath.Glob(filepath.Join("testdata", "*.pem"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata fixtures: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, leaf.KeyPEM, cname)
		f.Add(chain, data, cname)
	}

	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte, name string) {
		p, err := certs.ParsePair(certPEM, keyPEM, "cert.pem", "key.pem", certs.LoadOptions{CName: name})
		if err != nil {
			if p != nil {
				t.Fatalf("ParsePair returned a pair and an error: %v", err)
			}
			if fe := (*certs.FileError)(nil); name != "" && !errors.As(err, &fe) {
				t.Fatalf("ParsePair error %T (%v) is not a *FileError", err, err)
			}
			return
		}
		if !refCovers(p.Leaf.DNSNames, name) {
			t.Fatalf("ParsePair accepted a leaf with DNS names %q for CName %q", p.Leaf.DNSNames, name)
		}
		if p.Certificate.Leaf != p.Leaf || !slices.Equal(p.Certificate.Certificate[0], p.Leaf.Raw) {
			t.Fatalf("Certificate.Leaf or Certificate[0] is not Leaf")
		}
		signer, ok := p.Certificate.PrivateKey.(crypto.Signer)
		if !ok {
			t.Fatalf("private key %T is not a crypto.Signer", p.Certificate.PrivateKey)
		}
		if pub, ok := p.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(signer.Public()) {
			t.Fatalf("private key does not match the leaf")
		}
		if p.Hash != sha256.Sum256(slices.Concat(certPEM, keyPEM)) {
			t.Fatalf("Hash is not the SHA-256 of the inputs")
		}
		// Round trip: crypto/tls reads the same chain and key.
		std, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatalf("ParsePair accepted what tls.X509KeyPair rejects: %v", err)
		}
		if !slices.EqualFunc(std.Certificate, p.Certificate.Certificate, slices.Equal) {
			t.Fatalf("ParsePair and tls.X509KeyPair read different chains")
		}
	})
}

// refCovers is FuzzParsePair's reference for name coverage, written apart
// from the package's: exact match, or one label under a "*." SAN; ASCII
// case and one trailing dot ignored.
func refCovers(sans []string, name string) bool {
	name = refName(name)
	if name == "" {
		return false
	}
	labels := strings.Split(name, ".")
	for _, san := range sans {
		san = refName(san)
		if san == name {
			return true
		}
		pattern := strings.Split(san, ".")
		if len(pattern) < 2 || pattern[0] != "*" || len(pattern) != len(labels) || labels[0] == "" || labels[0] == "*" {
			continue
		}
		if slices.Equal(pattern[1:], labels[1:]) && !slices.Contains(pattern[1:], "*") {
			return true
		}
	}
	return false
}
