package certstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority: a root or an intermediate.
type CA struct {
	Cert    *x509.Certificate // the parsed certificate
	Key     crypto.Signer     // its ECDSA P-256 private key
	CertPEM []byte            // the certificate, PEM-encoded
}

// NewRootCA returns a self-signed ECDSA P-256 root CA whose subject common
// name is cn, valid from an hour ago for ten years.
func NewRootCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t, "ecdsa-p256")
	tmpl := caTemplate(t, cn)
	der := createDER(t, tmpl, tmpl, key.Public(), key)
	return &CA{Cert: parse(t, der), Key: key, CertPEM: encode("CERTIFICATE", der)}
}

// Validity bounds a CA certificate's validity period; for reproducible
// output such as golden files.
type Validity struct{ NotBefore, NotAfter time.Time }

// NewRootCAValid is NewRootCA with the given validity period.
func NewRootCAValid(t testing.TB, cn string, v Validity) *CA {
	t.Helper()
	key := newKey(t, "ecdsa-p256")
	tmpl := caTemplate(t, cn)
	tmpl.NotBefore, tmpl.NotAfter = v.NotBefore, v.NotAfter
	der := createDER(t, tmpl, tmpl, key.Public(), key)
	return &CA{Cert: parse(t, der), Key: key, CertPEM: encode("CERTIFICATE", der)}
}

// Intermediate returns an ECDSA P-256 intermediate CA named cn, signed by
// ca, valid from an hour ago for five years.
func (ca *CA) Intermediate(t testing.TB, cn string) *CA {
	t.Helper()
	return ca.IntermediateValid(t, cn, Validity{time.Now().Add(-time.Hour), time.Now().AddDate(5, 0, 0)})
}

// IntermediateValid is Intermediate with the given validity period.
func (ca *CA) IntermediateValid(t testing.TB, cn string, v Validity) *CA {
	t.Helper()
	key := newKey(t, "ecdsa-p256")
	tmpl := caTemplate(t, cn)
	tmpl.NotBefore, tmpl.NotAfter = v.NotBefore, v.NotAfter
	der := createDER(t, tmpl, ca.Cert, key.Public(), ca.Key)
	return &CA{Cert: parse(t, der), Key: key, CertPEM: encode("CERTIFICATE", der)}
}

// LeafOptions configures Leaf. The zero value gives an ECDSA P-256 leaf
// with no names, valid from an hour ago for 90 days.
type LeafOptions struct {
	// DNSNames become the leaf's DNS subject alternative names; the first
	// one is also its subject common name. If empty, the leaf has no SANs
	// and the common name "no-names".
	DNSNames []string
	// NotBefore and NotAfter bound the validity period. If zero,
	// NotBefore is an hour ago and NotAfter 90 days from now.
	NotBefore, NotAfter time.Time
	// ExtKeyUsage replaces the leaf's Extended Key Usage, serverAuth if
	// nil. NoExtKeyUsage leaves the extension out (any use is allowed).
	ExtKeyUsage   []x509.ExtKeyUsage
	NoExtKeyUsage bool
	// KeyType is one of "ecdsa-p256" (if empty), "ecdsa-p384",
	// "ecdsa-p521", "ecdsa-p224", "rsa-2048", "rsa-1024" or "ed25519".
	KeyType string
}

// Leaf is an end-entity (server) certificate and its private key.
type Leaf struct {
	Cert    *x509.Certificate // the parsed certificate
	Key     crypto.Signer     // its private key, of LeafOptions.KeyType
	CertPEM []byte            // the leaf alone, PEM-encoded
	KeyPEM  []byte            // a "PRIVATE KEY" (PKCS#8) block
}

// Leaf returns a server certificate signed by ca.
func (ca *CA) Leaf(t testing.TB, opts LeafOptions) *Leaf {
	t.Helper()
	key := newKey(t, opts.KeyType)
	cn := "no-names"
	if len(opts.DNSNames) > 0 {
		cn = opts.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     opts.DNSNames,
		NotBefore:    opts.NotBefore,
		NotAfter:     opts.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	switch {
	case opts.NoExtKeyUsage:
		tmpl.ExtKeyUsage = nil
	case opts.ExtKeyUsage != nil:
		tmpl.ExtKeyUsage = opts.ExtKeyUsage
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		// RSA key exchange in TLS 1.2 encrypts with the certificate's key.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().AddDate(0, 0, 90)
	}
	der := createDER(t, tmpl, ca.Cert, key.Public(), ca.Key)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certstest: marshal PKCS#8 key: %v", err)
	}
	return &Leaf{Cert: parse(t, der), Key: key, CertPEM: encode("CERTIFICATE", der), KeyPEM: encode("PRIVATE KEY", pkcs8)}
}

// WriteChain concatenates the PEM blobs in certs into dir/name and returns
// the file's path.
func WriteChain(t testing.TB, dir, name string, certs ...[]byte) string {
	t.Helper()
	var all []byte
	for _, c := range certs {
		all = append(all, c...)
	}
	return WriteFile(t, dir, name, all)
}

// WriteFile writes data to dir/name with mode 0600, replacing any existing
// file, and returns the file's path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("certstest: %v", err)
	}
	return path
}

// Files is a complete, valid setup written by NewFiles.
type Files struct {
	CertFile     string // chain.pem: the leaf, then the intermediate
	KeyFile      string // key.pem: the leaf's PKCS#8 key
	CAFile       string // ca.pem: the root
	Root         *CA    // "CN=Test Root"
	Intermediate *CA    // "CN=Test Intermediate", signed by Root
	Leaf         *Leaf  // for the names, signed by Intermediate
}

// NewFiles mints root -> intermediate -> leaf for names and writes
// chain.pem (leaf and intermediate), key.pem and ca.pem (the root) into dir.
func NewFiles(t testing.TB, dir string, names ...string) Files {
	t.Helper()
	root := NewRootCA(t, "Test Root")
	inter := root.Intermediate(t, "Test Intermediate")
	leaf := inter.Leaf(t, LeafOptions{DNSNames: names})
	return Files{
		CertFile:     WriteChain(t, dir, "chain.pem", leaf.CertPEM, inter.CertPEM),
		KeyFile:      WriteFile(t, dir, "key.pem", leaf.KeyPEM),
		CAFile:       WriteFile(t, dir, "ca.pem", root.CertPEM),
		Root:         root,
		Intermediate: inter,
		Leaf:         leaf,
	}
}

func newKey(t testing.TB, keyType string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch keyType {
	case "", "ecdsa-p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ecdsa-p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ecdsa-p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "rsa-2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("certstest: unknown key type %q", keyType)
	}
	if err != nil {
		t.Fatalf("certstest: generate %s key: %v", keyType, err)
	}
	return k
}

func caTemplate(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	return &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("certstest: serial: %v", err)
	}
	return n
}

func createDER(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("certstest: create certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	return der
}

func parse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certstest: parse certificate: %v", err)
	}
	return c
}

func encode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Client is a client CA and a client-authentication certificate it issued,
// for mutual TLS tests.
type Client struct {
	CA   *CA             // the root to give the server as client CA
	Cert tls.Certificate // the client's certificate and key, ready for tls.Config
}

// NewClient mints a root CA named name+" CA" and a leaf for name with
// Extended Key Usage clientAuth signed by it.
func NewClient(t testing.TB, name string) Client {
	t.Helper()
	ca := NewRootCA(t, name+" CA")
	leaf := ca.Leaf(t, LeafOptions{DNSNames: []string{name}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatalf("certstest: client key pair: %v", err)
	}
	return Client{CA: ca, Cert: cert}
}
