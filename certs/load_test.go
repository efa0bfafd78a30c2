package certs_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
)

const cname = "api.example.com"

// fixture is what a test case hands to LoadPair.
type fixture struct {
	certFile, keyFile string
	opts              certs.LoadOptions
}

// pki is a root and intermediate minted for one test.
type pki struct {
	root, inter *certstest.CA
}

func newPKI(t *testing.T) pki {
	root := certstest.NewRootCA(t, "Test Root")
	return pki{root: root, inter: root.Intermediate(t, "Test Intermediate")}
}

// pair writes a leaf minted with opts, followed by its intermediate, and
// its key.
func (p pki) pair(t *testing.T, dir string, opts certstest.LeafOptions) (fixture, *certstest.Leaf) {
	if opts.DNSNames == nil {
		opts.DNSNames = []string{cname}
	}
	leaf := p.inter.Leaf(t, opts)
	return fixture{
		certFile: certstest.WriteChain(t, dir, "chain.pem", leaf.CertPEM, p.inter.CertPEM),
		keyFile:  certstest.WriteFile(t, dir, "key.pem", leaf.KeyPEM),
		opts:     certs.LoadOptions{CName: cname},
	}, leaf
}

// withKey writes a leaf and its intermediate, and key as the key file.
func (p pki) withKey(t *testing.T, dir, keyType string, key func(*certstest.Leaf) []byte) fixture {
	leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}, KeyType: keyType})
	return fixture{
		certFile: certstest.WriteChain(t, dir, "chain.pem", leaf.CertPEM, p.inter.CertPEM),
		keyFile:  certstest.WriteFile(t, dir, "key.pem", key(leaf)),
		opts:     certs.LoadOptions{CName: cname},
	}
}

// chainOf writes certPEMs as the certificate file and leaf's key.
func chainOf(t *testing.T, dir string, leaf *certstest.Leaf, certPEMs ...[]byte) fixture {
	return fixture{
		certFile: certstest.WriteChain(t, dir, "chain.pem", certPEMs...),
		keyFile:  certstest.WriteFile(t, dir, "key.pem", leaf.KeyPEM),
		opts:     certs.LoadOptions{CName: cname},
	}
}

func readTestdata(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadPair(t *testing.T) {
	for _, tt := range []struct {
		name     string
		setup    func(t *testing.T, dir string) fixture
		wantErr  error      // nil: success
		wantRole certs.Role // for errors
		wantMsg  []string   // substrings of the error message
	}{
		// Valid chains.
		{name: "root, intermediate and leaf", setup: func(t *testing.T, dir string) fixture {
			f := certstest.NewFiles(t, dir, cname)
			return fixture{f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname}}
		}},
		{name: "chain ending in its self-signed root", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, leaf.CertPEM, p.inter.CertPEM, p.root.CertPEM)
		}},
		{name: "key and chain in one file given as both (Azure Key Vault PEM)", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			both := certstest.WriteChain(t, dir, "kv.pem", leaf.KeyPEM, leaf.CertPEM, p.inter.CertPEM)
			return fixture{both, both, certs.LoadOptions{CName: cname}}
		}},
		{name: "UTF-8 byte order mark before each file", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			bom := []byte{0xef, 0xbb, 0xbf}
			return fixture{
				certstest.WriteChain(t, dir, "chain.pem", bom, leaf.CertPEM, p.inter.CertPEM),
				certstest.WriteChain(t, dir, "key.pem", bom, leaf.KeyPEM),
				certs.LoadOptions{CName: cname},
			}
		}},
		{name: "CRLF line endings", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			crlf := func(b []byte) []byte { return []byte(strings.ReplaceAll(string(b), "\n", "\r\n")) }
			return fixture{
				certstest.WriteChain(t, dir, "chain.pem", crlf(leaf.CertPEM), crlf(p.inter.CertPEM)),
				certstest.WriteFile(t, dir, "key.pem", crlf(leaf.KeyPEM)),
				certs.LoadOptions{CName: cname},
			}
		}},
		{name: "leaf without an Extended Key Usage extension", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{NoExtKeyUsage: true})
			return f
		}},
		{name: "leaf signed by the root", setup: func(t *testing.T, dir string) fixture {
			leaf := certstest.NewRootCA(t, "Test Root").Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, leaf.CertPEM)
		}},
		{name: "cname in other case with trailing dot", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			f.opts.CName = "API.Example.COM."
			return f
		}},
		{name: "cname among several SANs", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{DNSNames: []string{"www.example.com", cname}})
			return f
		}},

		// Accepted key encodings and types.
		{name: "PKCS#8 ECDSA P-256", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "ecdsa-p256", func(l *certstest.Leaf) []byte { return l.KeyPEM })
		}},
		{name: "PKCS#8 ECDSA P-384", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "ecdsa-p384", func(l *certstest.Leaf) []byte { return l.KeyPEM })
		}},
		{name: "PKCS#8 Ed25519", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "ed25519", func(l *certstest.Leaf) []byte { return l.KeyPEM })
		}},
		{name: "PKCS#1 RSA 2048", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "rsa-2048", func(l *certstest.Leaf) []byte { return certstest.PKCS1PEM(t, l.Key) })
		}},
		{name: "SEC1 ECDSA P-256", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "ecdsa-p256", func(l *certstest.Leaf) []byte { return certstest.SEC1PEM(t, l.Key) })
		}},
		{name: "SEC1 ECDSA P-384 after EC PARAMETERS", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "ecdsa-p384", func(l *certstest.Leaf) []byte {
				return slices.Concat(certstest.ECParametersPEM(t, l.Key), certstest.SEC1PEM(t, l.Key))
			})
		}},
		{name: "key file with the certificate appended", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(l *certstest.Leaf) []byte { return slices.Concat(l.KeyPEM, l.CertPEM) })
		}},

		// Validity.
		{name: "expired", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{
				NotBefore: time.Now().AddDate(0, 0, -100), NotAfter: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)})
			return f
		}, wantErr: certs.ErrExpired, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 1 (CN=api.example.com) expired on 2025-01-02T03:04:05Z (now is "}},
		{name: "expired at LoadOptions.Now", setup: func(t *testing.T, dir string) fixture {
			f, leaf := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			f.opts.Now = func() time.Time { return leaf.Cert.NotAfter.Add(time.Second) }
			return f
		}, wantErr: certs.ErrExpired, wantRole: certs.CertFileRole},
		{name: "not yet valid", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{
				NotBefore: time.Now().Add(24 * time.Hour).Truncate(time.Second), NotAfter: time.Now().AddDate(0, 0, 90)})
			return f
		}, wantErr: certs.ErrNotYetValid, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 1 (CN=api.example.com) is not valid until " + time.Now().Add(24*time.Hour).UTC().Format("2006-01-02T")}},

		// Names.
		{name: "wrong SANs", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{DNSNames: []string{"other.example.com", "www.other.example.com"}})
			return f
		}, wantErr: certs.ErrNameNotCovered, wantRole: certs.CertFileRole,
			wantMsg: []string{`certificate does not cover "api.example.com"; its DNS names are "other.example.com", "www.other.example.com"`}},
		{name: "no SANs", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{DNSNames: []string{}})
			return f
		}, wantErr: certs.ErrNameNotCovered, wantRole: certs.CertFileRole, wantMsg: []string{"no DNS subject alternative names"}},

		// Keys.
		{name: "mismatched key", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			f, _ := p.pair(t, dir, certstest.LeafOptions{})
			other := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			certstest.WriteFile(t, dir, "key.pem", other.KeyPEM)
			return f
		}, wantErr: certs.ErrKeyMismatch, wantRole: certs.KeyFileRole,
			wantMsg: []string{`private key does not match the certificate in "`}},
		{name: "mismatched key type", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			f, _ := p.pair(t, dir, certstest.LeafOptions{})
			other := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}, KeyType: "ed25519"})
			certstest.WriteFile(t, dir, "key.pem", other.KeyPEM)
			return f
		}, wantErr: certs.ErrKeyMismatch, wantRole: certs.KeyFileRole,
			wantMsg: []string{"(the key is Ed25519; the certificate's is ECDSA P-256)"}},
		{name: "encrypted legacy PEM", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(l *certstest.Leaf) []byte { return certstest.EncryptedLegacyPEM(t, l.Key, "secret") })
		}, wantErr: certs.ErrEncryptedKey, wantRole: certs.KeyFileRole,
			wantMsg: []string{"private key is encrypted", "Proc-Type: 4,ENCRYPTED", "openssl pkey -in encrypted.pem -out key.pem"}},
		{name: "encrypted PKCS#8", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(l *certstest.Leaf) []byte { return certstest.EncryptedPKCS8PEM(t, l.Key, "secret") })
		}, wantErr: certs.ErrEncryptedKey, wantRole: certs.KeyFileRole,
			wantMsg: []string{`"ENCRYPTED PRIVATE KEY"`, "openssl pkey -in encrypted.pem -out key.pem"}},
		{name: "RSA 1024 is weak", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "rsa-1024", func(l *certstest.Leaf) []byte { return l.KeyPEM })
		}, wantErr: certs.ErrWeakKey, wantRole: certs.KeyFileRole, wantMsg: []string{"RSA key is 1024 bits; at least 2048 are required"}},
		{name: "PKCS#1 RSA 1024 is weak", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "rsa-1024", func(l *certstest.Leaf) []byte { return certstest.PKCS1PEM(t, l.Key) })
		}, wantErr: certs.ErrWeakKey, wantRole: certs.KeyFileRole, wantMsg: []string{"1024 bits"}},
		{name: "ECDSA P-521 is unsupported", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "ecdsa-p521", func(l *certstest.Leaf) []byte { return l.KeyPEM })
		}, wantErr: certs.ErrUnsupportedKey, wantRole: certs.KeyFileRole, wantMsg: []string{"ECDSA key on curve P-521; use P-256 or P-384"}},
		{name: "SEC1 ECDSA P-224 is unsupported", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "ecdsa-p224", func(l *certstest.Leaf) []byte { return certstest.SEC1PEM(t, l.Key) })
		}, wantErr: certs.ErrUnsupportedKey, wantRole: certs.KeyFileRole, wantMsg: []string{"P-224"}},
		{name: "DSA (traditional) is unsupported", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(*certstest.Leaf) []byte { return readTestdata(t, "dsa-traditional.pem") })
		}, wantErr: certs.ErrUnsupportedKey, wantRole: certs.KeyFileRole, wantMsg: []string{"DSA keys are not supported"}},
		{name: "DSA (PKCS#8) is unsupported", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(*certstest.Leaf) []byte { return readTestdata(t, "dsa-pkcs8.pem") })
		}, wantErr: certs.ErrUnsupportedKey, wantRole: certs.KeyFileRole},
		{name: "secp256k1 is unsupported", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(*certstest.Leaf) []byte { return readTestdata(t, "secp256k1.pem") })
		}, wantErr: certs.ErrUnsupportedKey, wantRole: certs.KeyFileRole},
		{name: "empty key file", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(*certstest.Leaf) []byte { return nil })
		}, wantErr: certs.ErrNoKey, wantRole: certs.KeyFileRole, wantMsg: []string{"no private key found: the file is empty"}},
		{name: "garbage key file", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(*certstest.Leaf) []byte { return []byte("not a key\n") })
		}, wantErr: certs.ErrNoKey, wantRole: certs.KeyFileRole, wantMsg: []string{"not PEM"}},
		{name: "certificate in the key file", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(l *certstest.Leaf) []byte { return l.CertPEM })
		}, wantErr: certs.ErrNoKey, wantRole: certs.KeyFileRole, wantMsg: []string{"swapped"}},
		{name: "two keys", setup: func(t *testing.T, dir string) fixture {
			return newPKI(t).withKey(t, dir, "", func(l *certstest.Leaf) []byte { return slices.Concat(l.KeyPEM, l.KeyPEM) })
		}, wantErr: certs.ErrUnexpectedBlock, wantRole: certs.KeyFileRole, wantMsg: []string{"2 private keys"}},
		{name: "missing key file", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			f.keyFile = filepath.Join(dir, "nope.pem")
			return f
		}, wantErr: fs.ErrNotExist, wantRole: certs.KeyFileRole, wantMsg: []string{`nope.pem": no such file or directory`}},

		// Chain structure.
		{name: "wrong order", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, p.inter.CertPEM, leaf.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 2 (CN=api.example.com) did not sign certificate 1 (CN=Test Intermediate)", "in reverse order"}},
		{name: "root before intermediate", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, leaf.CertPEM, p.root.CertPEM, p.inter.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 2 (CN=Test Root) did not sign certificate 1 (CN=api.example.com); certificate 3 (CN=Test Intermediate) did: the certificates are out of order"}},
		{name: "reversed, root first", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, p.root.CertPEM, p.inter.CertPEM, leaf.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 1 (CN=Test Root) is self-signed, so nothing may follow it: if it is the leaf, remove the others; if it is a root, put the leaf first"}},
		{name: "gap: intermediate missing", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, leaf.CertPEM, p.root.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 2 (CN=Test Root) did not sign certificate 1 (CN=api.example.com)", `was issued by "CN=Test Intermediate"`}},
		{name: "stray certificate at the end", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			stray := certstest.NewRootCA(t, "Stray")
			return chainOf(t, dir, leaf, leaf.CertPEM, p.inter.CertPEM, stray.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 3 (CN=Stray) did not sign certificate 2 (CN=Test Intermediate)", "remove certificate 3 (CN=Stray) if it does not belong"}},
		{name: "stray certificate in the middle", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			stray := certstest.NewRootCA(t, "Stray")
			return chainOf(t, dir, leaf, leaf.CertPEM, stray.CertPEM, p.inter.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 2 (CN=Stray) did not sign certificate 1 (CN=api.example.com)", "certificate 3 (CN=Test Intermediate) did"}},
		{name: "stray certificate after the root", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			stray := certstest.NewRootCA(t, "Stray")
			return chainOf(t, dir, leaf, leaf.CertPEM, p.inter.CertPEM, p.root.CertPEM, stray.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole,
			wantMsg: []string{"certificate 3 (CN=Test Root) is a self-signed root, so nothing may follow it; remove certificate 4 (CN=Stray)"}},
		{name: "same-named issuer with another key", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			twin := p.root.Intermediate(t, "Test Intermediate")
			return chainOf(t, dir, leaf, leaf.CertPEM, twin.CertPEM)
		}, wantErr: certs.ErrChainOrder, wantRole: certs.CertFileRole, wantMsg: []string{"signed by a different key with the same name"}},
		{name: "private key in the certificate file", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, leaf.CertPEM, leaf.KeyPEM)
		}, wantErr: certs.ErrUnexpectedBlock, wantRole: certs.CertFileRole,
			wantMsg: []string{`PEM block 2 is a private key ("PRIVATE KEY"), not a certificate`}},
		{name: "other PEM block in the certificate file", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0}})
			return chainOf(t, dir, leaf, leaf.CertPEM, csr)
		}, wantErr: certs.ErrUnexpectedBlock, wantRole: certs.CertFileRole, wantMsg: []string{`PEM block 2 has type "CERTIFICATE REQUEST"`}},
		{name: "garbage certificate file", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			certstest.WriteFile(t, dir, "chain.pem", []byte("hello, world\n"))
			return f
		}, wantErr: certs.ErrNoCertificate, wantRole: certs.CertFileRole, wantMsg: []string{`not PEM (no "-----BEGIN CERTIFICATE-----" line)`}},
		{name: "DER certificate file", setup: func(t *testing.T, dir string) fixture {
			f, leaf := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			certstest.WriteFile(t, dir, "chain.pem", leaf.Cert.Raw)
			return f
		}, wantErr: certs.ErrNoCertificate, wantRole: certs.CertFileRole, wantMsg: []string{"binary (DER, or PKCS#12 such as a .pfx)", "scoregate cert convert --in FILE"}},
		{name: "UTF-16 certificate file", setup: func(t *testing.T, dir string) fixture {
			f, leaf := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			u16 := []byte{0xff, 0xfe}
			for _, b := range leaf.CertPEM {
				u16 = append(u16, b, 0)
			}
			certstest.WriteFile(t, dir, "chain.pem", u16)
			return f
		}, wantErr: certs.ErrNoCertificate, wantRole: certs.CertFileRole, wantMsg: []string{"UTF-16", "save it as UTF-8"}},
		{name: "key and chain in the certificate file but another key file", setup: func(t *testing.T, dir string) fixture {
			f, leaf := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			certstest.WriteChain(t, dir, "chain.pem", leaf.KeyPEM, readFile(t, f.certFile))
			return f
		}, wantErr: certs.ErrUnexpectedBlock, wantRole: certs.CertFileRole, wantMsg: []string{"give this file as the key file too", "Key Vault"}},
		{name: "clientAuth-only leaf", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			return f
		}, wantErr: certs.ErrNoServerAuth, wantRole: certs.CertFileRole, wantMsg: []string{"allows clientAuth only", "unsuitable certificate purpose", "reissue it with serverAuth"}},
		{name: "empty certificate file", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			certstest.WriteFile(t, dir, "chain.pem", []byte("\n"))
			return f
		}, wantErr: certs.ErrNoCertificate, wantRole: certs.CertFileRole, wantMsg: []string{"no certificate found: the file is empty"}},
		{name: "truncated second certificate", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			certstest.WriteFile(t, dir, "chain.pem", readTestdata(t, "truncated-chain.pem"))
			return f
		}, wantErr: certs.ErrMalformedCertificate, wantRole: certs.CertFileRole, wantMsg: []string{"2 \"-----BEGIN\" lines but only 1 well-formed"}},
		{name: "corrupt certificate DER", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			certstest.WriteFile(t, dir, "chain.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 3, 1, 2, 3}}))
			return f
		}, wantErr: certs.ErrMalformedCertificate, wantRole: certs.CertFileRole, wantMsg: []string{"certificate 1 is malformed: x509: "}},
		{name: "missing certificate file", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			f.certFile = filepath.Join(dir, "nope.pem")
			return f
		}, wantErr: fs.ErrNotExist, wantRole: certs.CertFileRole},
		{name: "certificate file is a directory", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			f.certFile = dir
			return f
		}, wantRole: certs.CertFileRole, wantErr: errAny, wantMsg: []string{"is a directory"}},
		{name: "huge certificate file", setup: func(t *testing.T, dir string) fixture {
			f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{})
			certstest.WriteFile(t, dir, "chain.pem", make([]byte, 5<<20))
			return f
		}, wantRole: certs.CertFileRole, wantErr: errAny, wantMsg: []string{"file is larger than 4 MiB"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.setup(t, t.TempDir())
			p, err := certs.LoadPair(f.certFile, f.keyFile, f.opts)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadPair: %v, want success", err)
				}
				checkPair(t, p, f)
				return
			}
			if err == nil {
				t.Fatalf("LoadPair succeeded, want error %v", tt.wantErr)
			}
			t.Log(err) // go test -v shows every message
			if tt.wantErr != errAny && !errors.Is(err, tt.wantErr) {
				t.Errorf("LoadPair error = %v, want one matching %v", err, tt.wantErr)
			}
			var fe *certs.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("LoadPair error %T is not a *certs.FileError", err)
			}
			wantPath := f.certFile
			if tt.wantRole == certs.KeyFileRole {
				wantPath = f.keyFile
			}
			if fe.Role != tt.wantRole || fe.Path != wantPath {
				t.Errorf("FileError Role, Path = %v, %q, want %v, %q", fe.Role, fe.Path, tt.wantRole, wantPath)
			}
			if prefix := tt.wantRole.String() + ` "` + wantPath + `": `; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error = %q, want prefix %q", err, prefix)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error = %q, want it to contain %q", err, m)
				}
			}
		})
	}
}

// errAny in a test table accepts any error.
var errAny = errors.New("any error")

// checkPair checks the invariants of a successfully loaded pair.
func checkPair(t *testing.T, p *certs.Pair, f fixture) {
	t.Helper()
	if p.Leaf == nil || p.Certificate.Leaf != p.Leaf {
		t.Fatalf("Pair.Leaf = %p, Certificate.Leaf = %p, want the same non-nil certificate", p.Leaf, p.Certificate.Leaf)
	}
	if len(p.Certificate.Certificate) == 0 || string(p.Certificate.Certificate[0]) != string(p.Leaf.Raw) {
		t.Errorf("Certificate.Certificate[0] is not the leaf")
	}
	if err := p.Leaf.VerifyHostname(f.opts.CName); err != nil {
		t.Errorf("leaf does not cover %q: %v", f.opts.CName, err)
	}
	certPEM, _ := os.ReadFile(f.certFile)
	keyPEM, _ := os.ReadFile(f.keyFile)
	if got, want := p.Hash, sha256.Sum256(slices.Concat(certPEM, keyPEM)); got != want {
		t.Errorf("Hash = %x, want %x", got, want)
	}
}

func TestLoadPairMessages(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t)
	leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
	other := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
	certFile := certstest.WriteChain(t, dir, "chain.pem", p.inter.CertPEM, leaf.CertPEM)
	goodCert := certstest.WriteChain(t, dir, "good.pem", leaf.CertPEM, p.inter.CertPEM)
	keyFile := certstest.WriteFile(t, dir, "key.pem", leaf.KeyPEM)
	otherKey := certstest.WriteFile(t, dir, "other-key.pem", other.KeyPEM)

	for _, tt := range []struct {
		name, certFile, keyFile, want string
	}{
		{"chain order", certFile, keyFile, `certificate file "` + certFile + `": certificate 2 (CN=api.example.com) did not sign certificate 1 (CN=Test Intermediate); ` +
			"it is the other way round, so the two are in reverse order; put the leaf first, then each certificate's issuer"},
		{"key mismatch", goodCert, otherKey, `key file "` + otherKey + `": private key does not match the certificate in "` + goodCert + `"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certs.LoadPair(tt.certFile, tt.keyFile, certs.LoadOptions{CName: cname})
			if err == nil || err.Error() != tt.want {
				t.Errorf("LoadPair error =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestLoadPairWildcard(t *testing.T) {
	dir := t.TempDir()
	f, _ := newPKI(t).pair(t, dir, certstest.LeafOptions{DNSNames: []string{"*.example.com"}})
	for _, tt := range []struct {
		cname string
		want  bool
	}{
		{"a.example.com", true},
		{"A.EXAMPLE.COM.", true},
		{"a.b.example.com", false},
		{"example.com", false},
		{".example.com", false},
		{"a.example.org", false},
		{"aexample.com", false},
	} {
		t.Run(tt.cname, func(t *testing.T) {
			_, err := certs.LoadPair(f.certFile, f.keyFile, certs.LoadOptions{CName: tt.cname})
			if got := err == nil; got != tt.want {
				t.Errorf("LoadPair with CName %q: covered = %v (err %v), want %v", tt.cname, got, err, tt.want)
			}
			if err != nil && !errors.Is(err, certs.ErrNameNotCovered) {
				t.Errorf("LoadPair with CName %q: error = %v, want ErrNameNotCovered", tt.cname, err)
			}
		})
	}
}

func TestLoadPairWarnings(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string) fixture
		want  []string // each warning, as a substring, in order
	}{
		{name: "unknown root: chain may be incomplete", setup: func(t *testing.T, dir string) fixture {
			f := certstest.NewFiles(t, dir, cname)
			return fixture{f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname}}
		}, want: []string{`chain may be incomplete: "CN=Test Intermediate" was issued by "CN=Test Root", which is not among the trusted roots (the system's and the extra ones given); clients may fail to verify it`}},
		{name: "Roots holding the root", setup: func(t *testing.T, dir string) fixture {
			f := certstest.NewFiles(t, dir, cname)
			roots := x509.NewCertPool()
			roots.AddCert(f.Root.Cert)
			return fixture{f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname, Roots: roots}}
		}},
		{name: "Roots from LoadRoots", setup: func(t *testing.T, dir string) fixture {
			f := certstest.NewFiles(t, dir, cname)
			roots, err := certs.LoadRoots(f.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			return fixture{f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname, Roots: roots}}
		}},
		{name: "Roots holding another root", setup: func(t *testing.T, dir string) fixture {
			f := certstest.NewFiles(t, dir, cname)
			roots := x509.NewCertPool()
			roots.AddCert(certstest.NewRootCA(t, "Other Root").Cert)
			return fixture{f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname, Roots: roots}}
		}, want: []string{"chain may be incomplete"}},
		{name: "untrusted self-signed root in the file", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			leaf := p.inter.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
			return chainOf(t, dir, leaf, leaf.CertPEM, p.inter.CertPEM, p.root.CertPEM)
		}, want: []string{`chain ends in the self-signed root "CN=Test Root", which is not among the trusted roots (the system's and the extra ones given)`}},
		{name: "expires in 10 days", setup: func(t *testing.T, dir string) fixture {
			f := certstest.NewFiles(t, dir, cname)
			roots := x509.NewCertPool()
			roots.AddCert(f.Root.Cert)
			notAfter := f.Leaf.Cert.NotAfter
			return fixture{f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname, Roots: roots,
				Now: func() time.Time { return notAfter.Add(-10 * 24 * time.Hour) }}}
		}, want: []string{"certificate expires in 10 days, on "}},
		{name: "expires in 10 days, minted so", setup: func(t *testing.T, dir string) fixture {
			p := newPKI(t)
			f, leaf := p.pair(t, dir, certstest.LeafOptions{NotAfter: time.Now().Add(10 * 24 * time.Hour)})
			f.opts.Roots = x509.NewCertPool()
			f.opts.Roots.AddCert(p.root.Cert)
			if !strings.Contains(leaf.Cert.NotAfter.UTC().Format(time.RFC3339), "Z") {
				t.Fatal("RFC 3339 UTC dates end in Z")
			}
			return f
		}, want: []string{"certificate expires in 10 days, on " + time.Now().Add(10*24*time.Hour).UTC().Format("2006-01-02T")}},
		{name: "31 days left: no warning", setup: func(t *testing.T, dir string) fixture {
			f := certstest.NewFiles(t, dir, cname)
			roots := x509.NewCertPool()
			roots.AddCert(f.Root.Cert)
			notAfter := f.Leaf.Cert.NotAfter
			return fixture{f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname, Roots: roots,
				Now: func() time.Time { return notAfter.Add(-31 * 24 * time.Hour) }}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.setup(t, t.TempDir())
			p, err := certs.LoadPair(f.certFile, f.keyFile, f.opts)
			if err != nil {
				t.Fatalf("LoadPair: %v", err)
			}
			if len(p.Warnings) != len(tt.want) {
				t.Fatalf("Warnings = %q, want %d matching %q", p.Warnings, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(p.Warnings[i], w) {
					t.Errorf("Warnings[%d] = %q, want it to contain %q", i, p.Warnings[i], w)
				}
			}
		})
	}
}

func TestParsePair(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, cname)
	certPEM, keyPEM := readFile(t, f.CertFile), readFile(t, f.KeyFile)

	p, err := certs.ParsePair(certPEM, keyPEM, "", "", certs.LoadOptions{CName: cname})
	if err != nil {
		t.Fatalf("ParsePair: %v", err)
	}
	l, err := certs.LoadPair(f.CertFile, f.KeyFile, certs.LoadOptions{CName: cname})
	if err != nil {
		t.Fatalf("LoadPair: %v", err)
	}
	if p.Hash != l.Hash || !p.Leaf.Equal(l.Leaf) {
		t.Errorf("ParsePair and LoadPair disagree: hash %x vs %x", p.Hash, l.Hash)
	}

	_, err = certs.ParsePair(nil, keyPEM, "", "", certs.LoadOptions{CName: cname})
	if got, want := fmtErr(err), "certificate file: no certificate found: the file is empty"; got != want {
		t.Errorf("ParsePair without file names: error = %q, want %q", got, want)
	}
	if _, err := certs.ParsePair(certPEM, keyPEM, "", "", certs.LoadOptions{}); err == nil {
		t.Errorf("ParsePair without CName succeeded, want an error")
	}
	if _, err := certs.LoadPair(f.CertFile, f.KeyFile, certs.LoadOptions{}); err == nil {
		t.Errorf("LoadPair without CName succeeded, want an error")
	}

	// The hash follows the bytes: another key for the same certificate is
	// a different pair.
	other := append([]byte("# comment\n"), keyPEM...)
	p2, err := certs.ParsePair(certPEM, other, "", "", certs.LoadOptions{CName: cname})
	if err != nil {
		t.Fatalf("ParsePair with a comment line: %v", err)
	}
	if p2.Hash == p.Hash {
		t.Errorf("Hash did not change when the key file did")
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadRoots(t *testing.T) {
	dir := t.TempDir()
	a, b := certstest.NewRootCA(t, "Root A"), certstest.NewRootCA(t, "Root B")
	key := a.Leaf(t, certstest.LeafOptions{}).KeyPEM
	for _, tt := range []struct {
		name    string
		data    []byte
		wantErr error
		wantMsg string
	}{
		{name: "bundle", data: slices.Concat(a.CertPEM, []byte("# comment\n"), b.CertPEM)},
		{name: "empty", data: nil, wantErr: certs.ErrNoCertificate, wantMsg: "the file is empty"},
		{name: "garbage", data: []byte("garbage"), wantErr: certs.ErrNoCertificate, wantMsg: "not PEM"},
		{name: "private key", data: slices.Concat(a.CertPEM, key), wantErr: certs.ErrUnexpectedBlock, wantMsg: "PEM block 2 is a private key"},
		{name: "truncated", data: readTestdata(t, "truncated-chain.pem"), wantErr: certs.ErrMalformedCertificate},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := certstest.WriteFile(t, dir, tt.name+".pem", tt.data)
			pool, err := certs.LoadRoots(path)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadRoots: %v", err)
				}
				for _, ca := range []*certstest.CA{a, b} {
					leaf := ca.Leaf(t, certstest.LeafOptions{DNSNames: []string{cname}})
					if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
						t.Errorf("leaf of %s does not verify against the pool: %v", ca.Cert.Subject, err)
					}
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadRoots error = %v, want %v", err, tt.wantErr)
			}
			var fe *certs.FileError
			if !errors.As(err, &fe) || fe.Role != certs.CAFileRole || fe.Path != path {
				t.Errorf("LoadRoots error = %#v, want a *FileError with Role CAFileRole and Path %q", err, path)
			}
			if !strings.HasPrefix(err.Error(), `CA file "`+path+`": `) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("LoadRoots error = %q, want it to name the file and contain %q", err, tt.wantMsg)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := certs.LoadRoots(filepath.Join(dir, "missing.pem"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadRoots error = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestRoleString(t *testing.T) {
	for _, tt := range []struct {
		r    certs.Role
		want string
	}{
		{certs.CertFileRole, "certificate file"},
		{certs.KeyFileRole, "key file"},
		{certs.CAFileRole, "CA file"},
		{certs.Role(0), "Role(0)"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("Role(%d).String() = %q, want %q", int(tt.r), got, tt.want)
		}
	}
}
