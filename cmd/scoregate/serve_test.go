package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
	"github.com/scoregate/scoregate/metrics"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recordingBackend is a scoring backend that records the last POST's
// headers (not those of scoregate's health checks, GET /).
type recordingBackend struct {
	*httptest.Server
	mu   sync.Mutex
	last http.Header
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b.mu.Lock()
			b.last = r.Header.Clone()
			b.mu.Unlock()
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "query": r.URL.RawQuery, "bytes": len(body)})
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) lastHeader() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func TestServeForwardsOverHTTP1AndHTTP2(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL)
	roots := poolOf(t, f.CAFile)

	for _, h2 := range []bool{false, true} {
		c := ts.client(t, roots, "api.example.com", h2)
		resp, err := c.Post("https://api.example.com/score?x=1", "application/json", strings.NewReader(`{"data":[[1,2]]}`))
		if err != nil {
			t.Fatalf("h2=%v: POST /score: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantProto := map[bool]int{false: 1, true: 2}[h2]
		if resp.StatusCode != 200 || resp.ProtoMajor != wantProto {
			t.Fatalf("h2=%v: POST /score = %d over HTTP/%d (%s), want 200 over HTTP/%d", h2, resp.StatusCode, resp.ProtoMajor, body, wantProto)
		}
		if !strings.Contains(string(body), `{"bytes":16,"path":"/score","query":"x=1"}`) {
			t.Errorf("h2=%v: backend saw %s, want path /score, query x=1, 16 bytes", h2, body)
		}
		h := be.lastHeader()
		if got := h.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("h2=%v: X-Forwarded-Proto = %q, want https", h2, got)
		}
		if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("h2=%v: X-Forwarded-For = %q, want 127.0.0.1", h2, got)
		}
		if resp.Header.Get("X-Request-Id") == "" || h.Get("X-Request-Id") != resp.Header.Get("X-Request-Id") {
			t.Errorf("h2=%v: x-request-id: backend saw %q, client got %q, want the same non-empty id", h2, h.Get("X-Request-Id"), resp.Header.Get("X-Request-Id"))
		}
	}
}

func TestServeNameChecks(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL)
	roots := poolOf(t, f.CAFile)

	t.Run("other SNI gets unrecognized_name", func(t *testing.T) {
		conn, err := tls.Dial("tcp", ts.tlsAddr(), &tls.Config{ServerName: "evil.example.com", InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Fatal("handshake with SNI evil.example.com succeeded, want unrecognized_name")
		}
		if !strings.Contains(err.Error(), "remote error: tls: unrecognized name") {
			t.Errorf("handshake with SNI evil.example.com: %v, want the unrecognized_name alert", err)
		}
	})
	t.Run("no SNI refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", ts.tlsAddr(), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Fatal("handshake without SNI succeeded, want it refused")
		}
	})
	t.Run("refusals counted, and logged with the name asked but not per connection", func(t *testing.T) {
		for range 10 {
			if conn, err := tls.Dial("tcp", ts.tlsAddr(), &tls.Config{ServerName: "evil.example.com", InsecureSkipVerify: true}); err == nil {
				conn.Close()
				t.Fatal("handshake with SNI evil.example.com succeeded, want unrecognized_name")
			}
		}
		name, sni := ts.metrics.HandshakeErrors(metrics.HandshakeUnrecognizedName), ts.metrics.HandshakeErrors(metrics.HandshakeMissingSNI)
		if name < 11 || sni < 1 {
			t.Errorf("refusals counted: unrecognized_name %v, missing_sni %v; want at least 11 and 1", name, sni)
		}
		// The line is written before the alert is sent, so it is there.
		log := ts.stderr.String()
		if got := strings.Count(log, `"server_name":"evil.example.com"`); got != 1 || !strings.Contains(log, `"level":"warn","reason":"unrecognized_name","server_name":"evil.example.com","served":"api.example.com","client":"127.0.0.1:`) {
			t.Errorf("%d lines name evil.example.com after 11 refusals, want 1 warn line with the name, the name served and the client:\n%s", got, log)
		}
	})
	t.Run("other Host gets 421", func(t *testing.T) {
		c := ts.client(t, roots, "api.example.com", false)
		req, _ := http.NewRequest("GET", "https://api.example.com/", nil)
		req.Host = "evil.example.com"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest || !json.Valid(body) {
			t.Errorf("Host evil.example.com: %d %s, want 421 with a JSON body", resp.StatusCode, body)
		}
	})
}

func TestServeAllowMissingSNI(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL, "--allow-missing-sni")
	conn, err := tls.Dial("tcp", ts.tlsAddr(), &tls.Config{RootCAs: poolOf(t, f.CAFile), VerifyConnection: func(cs tls.ConnectionState) error {
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: "api.example.com", Roots: poolOf(t, f.CAFile), Intermediates: pool(cs.PeerCertificates[1:])})
		return err
	}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake without SNI and --allow-missing-sni: %v, want success", err)
	}
	conn.Close()
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestServeReadyzAndRedirect(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL,
		"--http-listen", "127.0.0.1:0", "--https-port", "443")

	var resp *http.Response
	waitFor(t, 5*time.Second, "/readyz to answer 200", func() bool {
		var err error
		resp, err = http.Get("http://" + ts.addr("metrics-listen") + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			resp.Body.Close()
			return false
		}
		return true
	})
	var rd struct {
		Ready       bool
		Certificate struct {
			DNSNames []string `json:"dns_names"`
			Source   string
		}
	}
	err := json.NewDecoder(resp.Body).Decode(&rd)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !rd.Ready || rd.Certificate.Source != "file" || len(rd.Certificate.DNSNames) == 0 {
		t.Errorf("GET /readyz = %d %+v (%v), want 200, ready, the file certificate", resp.StatusCode, rd, err)
	}

	req, _ := http.NewRequest("GET", "http://"+ts.addr("http-listen")+"/score?a=1", nil)
	req.Host = "api.example.com"
	resp, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "https://api.example.com/score?a=1"; resp.StatusCode != 308 || got != want {
		t.Errorf("plain HTTP GET /score?a=1: %d Location %q, want 308 %q", resp.StatusCode, got, want)
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	entered, release := make(chan struct{}), make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/score" {
			io.WriteString(w, "Healthy") // the health checks
			return
		}
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))
	t.Cleanup(be.Close)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL)
	c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", false)

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader("{}"))
		if err != nil {
			got <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	// The listener closes first; only then may the backend answer.
	waitFor(t, 5*time.Second, "the TLS listener to close", func() bool {
		conn, err := net.Dial("tcp", ts.tlsAddr())
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	close(release)
	if r := <-got; r.err != nil || r.status != 200 || r.body != "done" {
		t.Errorf("in-flight request across shutdown: %d %q %v, want 200 \"done\"", r.status, r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("run after SIGTERM-style cancel: %v, want nil (exit 0)", err)
	}
}

func TestServeDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	ts := startServe(t, "--dev", "--dev-dir", dir)
	waitFor(t, 5*time.Second, "the --dev help on stdout", func() bool { return strings.Contains(ts.stdout.String(), "Try:") })
	out := ts.stdout.String()
	caFile := filepath.Join(dir, "ca.pem")
	if !strings.Contains(out, "curl --cacert "+caFile) || !strings.Contains(out, "/score") {
		t.Errorf("--dev stdout = %q, want a curl line with --cacert %s and /score", out, caFile)
	}
	wantPorts := "Ports: HTTPS " + ts.tlsAddr() + " (--listen), health and metrics " + ts.addr("metrics-listen") + " (--metrics-listen)\n" +
		"Other ports: --listen 127.0.0.1:PORT --metrics-listen 127.0.0.1:PORT (or SCOREGATE_LISTEN, SCOREGATE_METRICS_LISTEN)\n"
	if !strings.Contains(out, wantPorts) {
		t.Errorf("--dev stdout = %q, want the ports and how to move them: %q", out, wantPorts)
	}
	if !strings.Contains(ts.stderr.String(), "DEVELOPMENT MODE") {
		t.Errorf("--dev log has no development-only warning:\n%s", ts.stderr)
	}
	c := ts.client(t, poolOf(t, caFile), "localhost", false)
	resp, err := c.Post("https://localhost/score", "application/json", strings.NewReader(`{"data":[[1,2,3,4]]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"request_bytes":20`) {
		t.Errorf("--dev POST /score = %d %s, want 200 from the demo backend", resp.StatusCode, body)
	}
}

// TestServeChecksBeforeBinding holds the port given as --listen (and as
// --metrics-listen): a configuration error is still reported as itself,
// exit 2, since serve checks everything before it binds; with a valid
// configuration the taken port is the error, and it says how to move.
func TestServeChecksBeforeBinding(t *testing.T) {
	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	other := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{"other.example.com"}})
	otherCert := certstest.WriteChain(t, dir, "other-chain.pem", other.CertPEM, f.Intermediate.CertPEM)
	otherKey := certstest.WriteFile(t, dir, "other-key.pem", other.KeyPEM)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().String()

	for _, tt := range []struct {
		name      string
		args      []string
		want, not string
	}{
		{"certificate for another name", []string{"--ssl-cert-pem-file", otherCert, "--ssl-key-pem-file", otherKey, "--ssl-cname", "api.example.com", "--listen", taken},
			`--ssl-cert-pem-file "` + otherCert + `": `, "in use"},
		{"key of another certificate", []string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", otherKey, "--ssl-cname", "api.example.com", "--listen", taken},
			`--ssl-key-pem-file "` + otherKey + `": `, "in use"},
		{"missing certificate, metrics port taken", []string{"--ssl-cert-pem-file", filepath.Join(dir, "missing.pem"), "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--listen", "127.0.0.1:0", "--metrics-listen", taken},
			`--ssl-cert-pem-file "` + filepath.Join(dir, "missing.pem") + `": `, "in use"},
		{"missing auth key file", []string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--listen", taken, "--auth-key-file", filepath.Join(dir, "nokeys")},
			`--auth-key-file "`, "in use"},
		{"valid, TLS port taken", []string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--listen", taken, "--metrics-listen", ""},
			`--listen "` + taken + `": bind: address already in use (another process has the port: choose another with --listen or SCOREGATE_LISTEN)`, ""},
		{"valid, metrics port taken", []string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com", "--listen", "127.0.0.1:0", "--metrics-listen", taken},
			`--metrics-listen "` + taken + `": bind: address already in use (another process has the port: choose another with --metrics-listen or SCOREGATE_METRICS_LISTEN)`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, append([]string{"serve"}, tt.args...)...)
			if code != exitUsage || !strings.HasPrefix(stderr, "scoregate: "+tt.want) || strings.Count(stderr, "\n") != 1 || tt.not != "" && strings.Contains(stderr, tt.not) {
				t.Errorf("serve with %s in use: exit %d, stderr %q; want exit 2 and one line starting %q", taken, code, stderr, "scoregate: "+tt.want)
			}
		})
	}
}

// TestServeDevListensOnLoopback: --dev's TLS listener defaults to loopback;
// --listen and SCOREGATE_LISTEN still choose, and without --dev the default
// stays every address.
func TestServeDevListensOnLoopback(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"dev", []string{"--dev"}, nil, "127.0.0.1:8443"},
		{"dev and --listen", []string{"--dev", "--listen", ":9443"}, nil, ":9443"},
		{"dev and SCOREGATE_LISTEN", []string{"--dev"}, map[string]string{"SCOREGATE_LISTEN": "[::1]:9443"}, "[::1]:9443"},
		{"not dev", []string{"--ssl-cert-pem-file", "c.pem", "--ssl-key-pem-file", "k.pem", "--ssl-cname", "api.example.com"}, nil, ":8443"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := parseServe(append(tt.args, "--dev-dir", dir), getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.listen != tt.want {
				t.Errorf("serve %q: --listen %q, want %q", tt.args, c.listen, tt.want)
			}
		})
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
