package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// runCmd runs the program with args and no environment, and returns its
// exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, func(string) (string, bool) { return "", false }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	reversed := certstest.WriteChain(t, dir, "reversed.pem", f.Intermediate.CertPEM, f.Leaf.CertPEM)
	pair := []string{"check", "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile}
	for _, tt := range []struct {
		name       string
		args       []string
		want       int
		wantStderr string
	}{
		{"valid", append(pair, "--ssl-cname", "api.example.com", "--ca-file", f.CAFile), 0, ""},
		{"valid as JSON", append(pair, "--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--json"), 0, ""},
		{"root not trusted", append(pair, "--ssl-cname", "api.example.com"), 1, ""},
		{"name not covered", append(pair, "--ssl-cname", "other.example.com", "--ca-file", f.CAFile), 1, ""},
		{"chain in reverse", []string{"check", "--ssl-cert-pem-file", reversed, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--ca-file", f.CAFile}, 1, ""},
		{"missing flags", []string{"check", "--ssl-cert-pem-file", f.CertFile}, 2, "check: --ssl-key-pem-file, --ssl-cname required"},
		{"URL as name", append(pair, "--ssl-cname", "https://api.example.com/"), 2, `--ssl-cname "https://api.example.com/": give the bare host name, e.g. "api.example.com": not a URL`},
		{"unreadable CA file", append(pair, "--ssl-cname", "api.example.com", "--ca-file", filepath.Join(dir, "nope.pem")), 2, "--ca-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.want {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr: %s", code, tt.want, stdout, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
			if tt.want < 2 && stderr != "" {
				t.Errorf("stderr = %q, want nothing: the report is on stdout", stderr)
			}
		})
	}
}

func TestCertDevFullChainAndCurlLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	code, stdout, stderr := runCmd(t, "cert", "dev", "--ssl-cname", "score.contoso.test", "--out", dir)
	if code != 0 {
		t.Fatalf("cert dev: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "development only") {
		t.Errorf("stderr = %q, want the development-only warning", stderr)
	}
	if want := "--resolve score.contoso.test:8443:127.0.0.1"; !strings.Contains(stdout, want) {
		t.Errorf("stdout = %q, want a curl line with %s (the name does not resolve)", stdout, want)
	}
	fi, err := os.Stat(filepath.Join(dir, "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v, mode %v, want 0600", err, fi.Mode())
	}
	// The files pass check, trusting the development CA.
	code, out, _ := runCmd(t, "check", "--ssl-cert-pem-file", filepath.Join(dir, "cert.pem"), "--ssl-key-pem-file", filepath.Join(dir, "key.pem"),
		"--ssl-cname", "score.contoso.test", "--ca-file", filepath.Join(dir, "ca.pem"))
	if code != 0 || !strings.Contains(out, "2. CN=scoregate development CA") {
		t.Errorf("check of cert dev's files: exit %d, want 0 and a chain of two:\n%s", code, out)
	}
}

// TestServeDevCurlLineWorks follows the --resolve line serve --dev prints
// for a name that does not resolve: it reaches the server.
func TestServeDevCurlLineWorks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	ts := startServe(t, "--dev", "--dev-dir", dir, "--ssl-cname", "score.contoso.test")
	waitFor(t, 5*time.Second, "the --dev help on stdout", func() bool { return strings.Contains(ts.stdout.String(), "Try:") })
	m := regexp.MustCompile(`--resolve score\.contoso\.test:(\d+):(\S+) `).FindStringSubmatch(ts.stdout.String())
	if m == nil {
		t.Fatalf("stdout = %q, want a curl line with --resolve score.contoso.test:PORT:ADDR", ts.stdout.String())
	}
	if got := "127.0.0.1:" + m[1]; m[2] != "127.0.0.1" || got != ts.tlsAddr() {
		t.Fatalf("--resolve points at %s:%s, want %s", m[2], m[1], ts.tlsAddr())
	}
	c := ts.client(t, poolOf(t, filepath.Join(dir, "ca.pem")), "score.contoso.test", false)
	postScoreOK(t, c, "https://score.contoso.test:"+m[1]+"/score")
}

// postScoreOK posts a scoring request and wants 200.
func postScoreOK(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(`{"data":[[1,2,3,4]]}`))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST %s = %d, want 200", url, resp.StatusCode)
	}
}

// TestServeReadsWhatConvertWouldWrite starts serve on the files users hold
// that it reads as they are: Key Vault's key and chain in one file, and
// files that start with a byte order mark.
func TestServeReadsWhatConvertWouldWrite(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	bom := []byte{0xef, 0xbb, 0xbf}
	kv := certstest.WriteChain(t, dir, "keyvault.pem", f.Leaf.KeyPEM, f.Leaf.CertPEM, f.Intermediate.CertPEM)
	for _, tt := range []struct {
		name      string
		cert, key string
	}{
		{"Key Vault PEM as both files", kv, kv},
		{"byte order marks", certstest.WriteChain(t, dir, "bom-chain.pem", bom, f.Leaf.CertPEM, f.Intermediate.CertPEM), certstest.WriteChain(t, dir, "bom-key.pem", bom, f.Leaf.KeyPEM)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			be := newRecordingBackend(t)
			ts := startServe(t, "--ssl-cert-pem-file", tt.cert, "--ssl-key-pem-file", tt.key, "--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL)
			c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", false)
			postScoreOK(t, c, "https://api.example.com/score")
		})
	}
}

func TestServeNameHints(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	for _, tt := range []struct{ cname, want string }{
		{"https://api.example.com", `--ssl-cname "https://api.example.com": give the bare host name, e.g. "api.example.com": not a URL`},
		{"api.example.com:443", `give the bare host name, e.g. "api.example.com": no port`},
		{"*.example.com", "a wildcard belongs in the certificate"},
	} {
		code, _, stderr := runCmd(t, "serve", "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", tt.cname, "--listen", "127.0.0.1:0", "--metrics-listen", "")
		if code != 2 || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("serve --ssl-cname %q: exit %d, stderr %q; want exit 2 and one line containing %q", tt.cname, code, stderr, tt.want)
		}
	}
}

// TestCheckResolve: --resolve answers the DNS step with the name's
// addresses (localhost resolves without a network).
func TestCheckResolve(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCmd(t, "cert", "dev", "--ssl-cname", "localhost", "--out", dir); code != 0 {
		t.Fatalf("cert dev: %s", stderr)
	}
	code, out, _ := runCmd(t, "check", "--ssl-cert-pem-file", filepath.Join(dir, "cert.pem"), "--ssl-key-pem-file", filepath.Join(dir, "key.pem"),
		"--ssl-cname", "localhost", "--ca-file", filepath.Join(dir, "ca.pem"), "--resolve")
	if code != 0 || !regexp.MustCompile(`(?m)^  addresses +.*(127\.0\.0\.1|::1)`).MatchString(out) {
		t.Errorf("check --resolve: exit %d, want 0 and the addresses of localhost:\n%s", code, out)
	}
	code, out, _ = runCmd(t, "check", "--ssl-cert-pem-file", filepath.Join(dir, "cert.pem"), "--ssl-key-pem-file", filepath.Join(dir, "key.pem"),
		"--ssl-cname", "localhost", "--ca-file", filepath.Join(dir, "ca.pem"), "--resolve", "--json")
	if code != 0 || !strings.Contains(out, `"dns": {`) || !strings.Contains(out, `"name": "localhost"`) {
		t.Errorf("check --resolve --json: exit %d, want a dns object:\n%s", code, out)
	}
}
