package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Development certificate lifetimes.
const (
	devCALifetime   = 2 * 365 * 24 * time.Hour
	devLeafLifetime = 90 * 24 * time.Hour
	// devCAMinLeft is how long an existing development CA must still be
	// valid to be reused: long enough to outlive the leaf it signs
	// comfortably, short enough that a near-dead CA is replaced.
	devCAMinLeft = 30 * 24 * time.Hour
)

// DevFiles are the paths WriteDev wrote.
type DevFiles struct {
	CAFile   string // ca.pem: the development root; clients trust this
	CertFile string // cert.pem: the full chain, the leaf then the root that signed it
	KeyFile  string // key.pem: the leaf's PKCS#8 key, mode 0600
}

// WriteDev prepares development certificates in dir for
// `scoregate serve --dev`. It reuses the root CA in dir (ca.pem and
// ca-key.pem) if it parses, its key matches, and it is valid for more than
// 30 more days; otherwise it creates a new ECDSA P-256 root, valid for two
// years, replacing any files there. It then always mints a fresh ECDSA
// P-256 leaf for names (DNS names, or IP addresses if they parse as
// such), valid for 90 days and signed by the root, and writes it with the
// root as a full chain, the form a CA's download takes.
//
// dir is created with mode 0700 if missing. Every file is written
// atomically (a temporary file in dir, fsync, rename); the keys get mode
// 0600 and the certificates 0644. names must not be empty. Concurrent calls
// on the same dir are safe in that each file is always complete, but may
// leave a leaf signed by a root that a concurrent call replaced.
func WriteDev(dir string, names ...string) (DevFiles, error) {
	if len(names) == 0 {
		return DevFiles{}, errors.New("certs: WriteDev needs at least one name")
	}
	for _, n := range names {
		if n == "" {
			return DevFiles{}, errors.New("certs: WriteDev: empty name")
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevFiles{}, fmt.Errorf("development certificates: %w", err)
	}
	files := DevFiles{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
	}
	caKeyFile := filepath.Join(dir, "ca-key.pem")
	now := time.Now()

	ca, caKey, ok := loadDevCA(files.CAFile, caKeyFile, now)
	if !ok {
		caPEM, caKeyPEM, err := newDevCA(now, now.Add(devCALifetime))
		if err != nil {
			return DevFiles{}, err
		}
		// The key first: a crash in between leaves a CA that fails the
		// match check and is replaced next time.
		if err := writeFileAtomic(caKeyFile, caKeyPEM, 0o600); err != nil {
			return DevFiles{}, err
		}
		if err := writeFileAtomic(files.CAFile, caPEM, 0o644); err != nil {
			return DevFiles{}, err
		}
		if ca, caKey, ok = loadDevCA(files.CAFile, caKeyFile, now); !ok {
			return DevFiles{}, errors.New("certs: WriteDev: the new development CA does not load")
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevFiles{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"scoregate development"}},
		NotBefore:    now.Add(-time.Hour), // tolerate small clock skew
		NotAfter:     now.Add(devLeafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return DevFiles{}, fmt.Errorf("certs: WriteDev: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return DevFiles{}, err
	}
	if err := writeFileAtomic(files.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return DevFiles{}, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})...)
	if err := writeFileAtomic(files.CertFile, chain, 0o644); err != nil {
		return DevFiles{}, err
	}
	return files, nil
}

// loadDevCA returns the development CA in certFile and keyFile if it is
// usable: one self-signed CA certificate, a matching supported key, and
// more than devCAMinLeft of validity left at now.
func loadDevCA(certFile, keyFile string, now time.Time) (*x509.Certificate, crypto.Signer, bool) {
	certPEM, err := readFile(certFile)
	if err != nil {
		return nil, nil, false
	}
	keyPEM, err := readFile(keyFile)
	if err != nil {
		return nil, nil, false
	}
	certs, err := parseCertificates(certPEM, false)
	if err != nil || len(certs) != 1 {
		return nil, nil, false
	}
	ca := certs[0]
	key, err := parseKey(keyPEM)
	if err != nil || checkKeyMatch(ca, key, certFile) != nil {
		return nil, nil, false
	}
	if !ca.IsCA || !selfSigned(ca) || now.Before(ca.NotBefore) || ca.NotAfter.Sub(now) <= devCAMinLeft {
		return nil, nil, false
	}
	return ca, key, true
}

// newDevCA returns a new self-signed ECDSA P-256 root valid from notBefore
// to notAfter, as PEM certificate and PKCS#8 key.
func newDevCA(notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "scoregate development CA " + host, Organization: []string{"scoregate development"}},
		NotBefore:             notBefore.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: development CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	b[0] &= 0x7f
	b[0] |= 0x40 // nonzero, and always 16 bytes long
	return new(big.Int).SetBytes(b)
}

// writeFileAtomic writes data to path so that readers see the old file or
// the new one, never a mix: a temporary file in the same directory, fsync,
// then rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
