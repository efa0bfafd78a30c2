package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
)

func TestWriteDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	files, err := certs.WriteDev(dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatalf("WriteDev: %v", err)
	}

	// The files and their modes.
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{
		{dir, os.ModeDir | 0o700},
		{files.CAFile, 0o644},
		{filepath.Join(dir, "ca-key.pem"), 0o600},
		{files.CertFile, 0o644},
		{files.KeyFile, 0o600},
	} {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tt.want {
			t.Errorf("%s: mode = %v, want %v", tt.path, got, tt.want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"ca-key.pem", "ca.pem", "cert.pem", "key.pem"}; !slices.Equal(names, want) {
		t.Errorf("files in dir = %q, want %q (no temporary files left)", names, want)
	}

	// The pair is valid, covers the names, and chains to ca.pem.
	roots, err := certs.LoadRoots(files.CAFile)
	if err != nil {
		t.Fatalf("LoadRoots: %v", err)
	}
	p, err := certs.LoadPair(files.CertFile, files.KeyFile, certs.LoadOptions{CName: "LOCALHOST", Roots: roots})
	if err != nil {
		t.Fatalf("LoadPair: %v", err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", p.Warnings)
	}
	if n := len(p.Certificate.Certificate); n != 2 || !bytes.Equal(p.Certificate.Certificate[1], readDER(t, files.CAFile)) {
		t.Errorf("cert.pem holds %d certificates, want the leaf then ca.pem's root (a full chain)", n)
	}
	if !slices.Equal(p.Leaf.DNSNames, []string{"localhost"}) || len(p.Leaf.IPAddresses) != 1 || !p.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("leaf DNSNames, IPAddresses = %q, %v, want [localhost], [127.0.0.1]", p.Leaf.DNSNames, p.Leaf.IPAddresses)
	}
	if days := p.Leaf.NotAfter.Sub(p.Leaf.NotBefore).Hours() / 24; days < 89 || days > 91 {
		t.Errorf("leaf is valid for %.1f days, want 90", days)
	}

	// A real handshake verifies against ca.pem.
	src, err := certs.NewSource(certs.SourceConfig{CertFile: files.CertFile, KeyFile: files.KeyFile, CName: "localhost"}, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	addr := serve(t, certs.ServerTLSConfig(src, certs.SNIPolicy{CName: "localhost"}, nil))
	if _, err := dial(addr, &tls.Config{RootCAs: roots, ServerName: "localhost"}); err != nil {
		t.Errorf("handshake with the development certificate: %v", err)
	}

	// A second call reuses the CA and mints a new leaf.
	caBefore, leafBefore := readFile(t, files.CAFile), p.Leaf
	files2, err := certs.WriteDev(dir, "localhost")
	if err != nil {
		t.Fatalf("second WriteDev: %v", err)
	}
	if files2 != files {
		t.Errorf("second WriteDev = %+v, want %+v", files2, files)
	}
	if !bytes.Equal(readFile(t, files.CAFile), caBefore) {
		t.Errorf("second WriteDev replaced a valid CA")
	}
	p2, err := certs.LoadPair(files.CertFile, files.KeyFile, certs.LoadOptions{CName: "localhost", Roots: roots})
	if err != nil {
		t.Fatalf("LoadPair after the second WriteDev: %v", err)
	}
	if p2.Leaf.SerialNumber.Cmp(leafBefore.SerialNumber) == 0 {
		t.Errorf("second WriteDev kept the old leaf")
	}
}

func TestWriteDevReplacesUnusableCA(t *testing.T) {
	for _, tt := range []struct {
		name    string
		breakCA func(t *testing.T, dir string)
	}{
		{"garbage ca.pem", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("garbage"), 0o644)
		}},
		{"missing ca-key.pem", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "ca-key.pem"))
		}},
		{"ca-key.pem of another CA", func(t *testing.T, dir string) {
			other, err := certs.WriteDev(t.TempDir(), "localhost")
			if err != nil {
				t.Fatal(err)
			}
			key := readFile(t, filepath.Join(filepath.Dir(other.CAFile), "ca-key.pem"))
			os.WriteFile(filepath.Join(dir, "ca-key.pem"), key, 0o600)
		}},
		{"leaf as ca.pem", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "ca.pem"), readFile(t, filepath.Join(dir, "cert.pem")), 0o644)
			os.WriteFile(filepath.Join(dir, "ca-key.pem"), readFile(t, filepath.Join(dir, "key.pem")), 0o600)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files, err := certs.WriteDev(dir, "localhost")
			if err != nil {
				t.Fatal(err)
			}
			tt.breakCA(t, dir)
			if _, err := certs.WriteDev(dir, "localhost"); err != nil {
				t.Fatalf("WriteDev over a broken CA: %v", err)
			}
			roots, err := certs.LoadRoots(files.CAFile)
			if err != nil {
				t.Fatalf("LoadRoots: %v", err)
			}
			p, err := certs.LoadPair(files.CertFile, files.KeyFile, certs.LoadOptions{CName: "localhost", Roots: roots})
			if err != nil || len(p.Warnings) != 0 {
				t.Fatalf("LoadPair after WriteDev replaced the CA: %v, warnings %q", err, warningsOf(p))
			}
			if _, err := p.Leaf.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
				t.Errorf("new leaf does not verify against the new CA: %v", err)
			}
		})
	}
}

func warningsOf(p *certs.Pair) []string {
	if p == nil {
		return nil
	}
	return p.Warnings
}

func TestWriteDevErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, tt := range []struct {
		name  string
		dir   string
		names []string
	}{
		{"no names", t.TempDir(), nil},
		{"empty name", t.TempDir(), []string{""}},
		{"dir is a file", file, []string{"localhost"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := certs.WriteDev(tt.dir, tt.names...); err == nil {
				t.Errorf("WriteDev(%q, %q) succeeded, want an error", tt.dir, tt.names)
			}
		})
	}
}

// readDER returns the first PEM block's bytes in path.
func readDER(t *testing.T, path string) []byte {
	t.Helper()
	b, _ := pem.Decode(readFile(t, path))
	if b == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return b.Bytes
}
