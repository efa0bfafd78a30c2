package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// TestBackendHealthFlags: --health-url, --service-health and
// --backend-ca-file are parsed, checked against the backends they apply
// to, and refused in one line naming the flag.
func TestBackendHealthFlags(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewRootCA(t, "Backend Root")
	caFile := certstest.WriteFile(t, dir, "backend-ca.pem", ca.CertPEM)
	notPEM := certstest.WriteFile(t, dir, "not-pem.txt", []byte("not a certificate\n"))
	for _, tt := range []struct {
		name       string
		args       []string
		env        map[string]string
		wantHealth string            // the default service's health URL
		wantSvc    map[string]string // the services' health URLs
		wantRoots  bool
		wantErr    string
	}{
		{name: "none"},
		{name: "health port, no host", args: []string{"--health-url", "http://:5000/"}, wantHealth: "http://:5000/"},
		{name: "health port on the backend's host", args: []string{"--backend", "http://10.0.0.7:5001", "--health-url", "http://10.0.0.7:5000/healthz"}, wantHealth: "http://10.0.0.7:5000/healthz"},
		{name: "from the environment", env: map[string]string{"SCOREGATE_HEALTH_URL": "http://:5000/"}, wantHealth: "http://:5000/"},
		{name: "per service", args: []string{"--service", "a=http://10.0.0.1:5001", "--service", "b=http://10.0.0.2:5001", "--service-health", "a=http://:5000/", "--service-health", "b=http://10.0.0.2:5000/"},
			wantSvc: map[string]string{"a": "http://:5000/", "b": "http://10.0.0.2:5000/"}},
		{name: "per service from the environment", args: []string{"--service", "a=http://10.0.0.1:5001", "--service", "b=http://10.0.0.2:5001"},
			env: map[string]string{"SCOREGATE_SERVICE_HEALTH": "a=http://:5000/,b=http://:5002/"}, wantSvc: map[string]string{"a": "http://:5000/", "b": "http://:5002/"}},
		{name: "backend CA", args: []string{"--backend", "https://10.0.0.7:5443", "--backend-ca-file", caFile}, wantRoots: true},

		{name: "health URL on another host", args: []string{"--health-url", "http://10.9.9.9:5000/"},
			wantErr: `--health-url "http://10.9.9.9:5000/": host "10.9.9.9" is not that of --backend; each replica is asked at its own address`},
		{name: "health URL not http", args: []string{"--health-url", "tcp://:5000"}, wantErr: `--health-url "tcp://:5000": want an http:// or https:// URL such as http://:5000/`},
		{name: "health URL with only services", args: []string{"--service", "a=http://10.0.0.1:5001", "--health-url", "http://:5000/"},
			wantErr: "--health-url is for the --backend replicas, and with only --service there are none: give --service-health NAME=URL"},
		{name: "service health for no service", args: []string{"--service", "a=http://10.0.0.1:5001", "--service-health", "b=http://:5000/"},
			wantErr: `--service-health "b=http://:5000/": no --service b`},
		{name: "service health on another host", args: []string{"--service", "a=http://10.0.0.1:5001", "--service-health", "a=http://10.0.0.2:5000/"},
			wantErr: `--service-health "http://10.0.0.2:5000/": host "10.0.0.2" is not that of --service a`},
		{name: "service health twice", args: []string{"--service", "a=http://10.0.0.1:5001", "--service-health", "a=http://:5000/", "--service-health", "a=http://:5002/"},
			wantErr: `"a=http://:5002/": a health URL for a is already given; one per service`},
		{name: "service health without a URL", args: []string{"--service-health", "a"}, wantErr: `"a": want NAME=URL`},
		{name: "backend CA file missing", args: []string{"--backend-ca-file", filepath.Join(dir, "missing.pem")},
			wantErr: `--backend-ca-file "` + filepath.Join(dir, "missing.pem") + `": `},
		{name: "backend CA file without certificates", args: []string{"--backend-ca-file", notPEM}, wantErr: `--backend-ca-file "` + notPEM + `": `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--ssl-cert-pem-file", "c.pem", "--ssl-key-pem-file", "k.pem", "--ssl-cname", "api.example.com"}, tt.args...)
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := parseServe(args, getenv, io.Discard)
			var sc serverConfig
			if err == nil {
				sc, err = c.resolve(io.Discard)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q is more than one line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := urlString(sc.Proxy.HealthURL); got != tt.wantHealth {
				t.Errorf("HealthURL = %q, want %q", got, tt.wantHealth)
			}
			if len(sc.Proxy.ServiceHealthURLs) != len(tt.wantSvc) {
				t.Errorf("ServiceHealthURLs = %v, want %v", sc.Proxy.ServiceHealthURLs, tt.wantSvc)
			}
			for name, want := range tt.wantSvc {
				if got := urlString(sc.Proxy.ServiceHealthURLs[name]); got != want {
					t.Errorf("ServiceHealthURLs[%s] = %q, want %q", name, got, want)
				}
			}
			if got := sc.Proxy.BackendTLS != nil && sc.Proxy.BackendTLS.RootCAs != nil; got != tt.wantRoots {
				t.Errorf("BackendTLS roots set = %v, want %v", got, tt.wantRoots)
			}
		})
	}
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// TestServeBackendCAFileExitCode: a --backend-ca-file that cannot be read
// stops serve with exit 2 and one line naming the flag.
func TestServeBackendCAFileExitCode(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--ssl-cert-pem-file", f.CertFile,
		"--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--backend-ca-file", missing},
		func(string) (string, bool) { return "", false }, &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], `scoregate: --backend-ca-file "`+missing+`": `) {
		t.Errorf("exit %d, stderr %q; want 2 and one line naming --backend-ca-file", code, stderr.String())
	}
}

// TestServeBackendCAFile: an https:// backend whose certificate a private
// CA signed is reached with that CA in --backend-ca-file, and is a 502
// without it (the system's roots do not know it).
func TestServeBackendCAFile(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	ca := certstest.NewRootCA(t, "Private Model Root")
	caFile := certstest.WriteFile(t, dir, "model-ca.pem", ca.CertPEM)
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "scored over TLS") }))
	be.TLS = &tls.Config{Certificates: []tls.Certificate{ipLeaf(t, ca, net.IPv4(127, 0, 0, 1))}}
	be.StartTLS()
	t.Cleanup(be.Close)
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"with the private CA", []string{"--backend-ca-file", caFile}, 200},
		{"without it", nil, 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
				"--backend", be.URL}, tt.args...)
			ts := startServe(t, args...)
			c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", false)
			resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || (tt.wantCode == 200 && string(body) != "scored over TLS") {
				t.Errorf("POST /score to %s: %d %s, want %d", be.URL, resp.StatusCode, body, tt.wantCode)
			}
		})
	}
}

// ipLeaf is a server certificate for ip signed by ca: certstest's leaves
// name DNS names only, and the backend here is an address.
func ipLeaf(t *testing.T, ca *certstest.CA, ip net.IP) tls.Certificate {
	t.Helper()
	leaf := ca.Leaf(t, certstest.LeafOptions{DNSNames: []string{"model.internal"}})
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: ip.String()},
		IPAddresses:  []net.IP{ip},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, leaf.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: leaf.Key}
}
