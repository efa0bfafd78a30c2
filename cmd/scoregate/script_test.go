package main

import (
	"context"
	"crypto/x509"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/scoregate/scoregate/certs/certstest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and the scripts' expected output")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"scoregate": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the command-line scripts in testdata/script. Each script
// starts with fixtures in $WORK/tls: a valid chain for api.example.com
// (chain.pem, key.pem, ca.pem) and deliberately broken files.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			mintScriptFixtures(t, filepath.Join(env.WorkDir, "tls"))
			return nil
		},
	})
}

func mintScriptFixtures(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := certstest.NewFiles(t, dir, "api.example.com") // chain.pem, key.pem, ca.pem
	now := time.Now()
	expired := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{"api.example.com"}, NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	certstest.WriteChain(t, dir, "expired-chain.pem", expired.CertPEM, f.Intermediate.CertPEM)
	certstest.WriteFile(t, dir, "expired-key.pem", expired.KeyPEM)
	other := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{"other.example.com"}})
	certstest.WriteChain(t, dir, "other-chain.pem", other.CertPEM, f.Intermediate.CertPEM)
	certstest.WriteFile(t, dir, "other-key.pem", other.KeyPEM)
	certstest.WriteChain(t, dir, "reversed-chain.pem", f.Intermediate.CertPEM, f.Leaf.CertPEM)
	certstest.WriteFile(t, dir, "garbage.pem", []byte("this is not PEM\n"))

	// For cert convert: what Windows, Key Vault and App Service export.
	const password = "correct horse"
	certstest.WriteFile(t, dir, "password.txt", []byte(password+"\r\n"))
	certstest.WriteFile(t, dir, "wrong-password.txt", []byte("battery staple\n"))
	for name, enc := range map[string]*pkcs12.Encoder{"site.pfx": pkcs12.Modern2023, "windows.pfx": pkcs12.LegacyRC2} {
		pfx, err := enc.Encode(f.Leaf.Key, f.Leaf.Cert, []*x509.Certificate{f.Intermediate.Cert}, password)
		if err != nil {
			t.Fatal(err)
		}
		certstest.WriteFile(t, dir, name, pfx)
	}
	certstest.WriteFile(t, dir, "leaf.der", f.Leaf.Cert.Raw)
	certstest.WriteFile(t, dir, "intermediate.der", f.Intermediate.Cert.Raw)
	keyDER, err := x509.MarshalPKCS8PrivateKey(f.Leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	certstest.WriteFile(t, dir, "key.der", keyDER)
	certstest.WriteChain(t, dir, "keyvault.pem", f.Leaf.KeyPEM, f.Leaf.CertPEM, f.Intermediate.CertPEM)
}
