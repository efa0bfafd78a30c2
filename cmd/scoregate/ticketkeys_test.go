package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// resumedOn does a verified handshake with ts, offering c's session
// ticket if it has one, and reports whether the session was resumed.
func resumedOn(t *testing.T, ts *testServer, c *tls.Config) bool {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tlsAddr(), c)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	// A TLS 1.3 ticket arrives after the handshake: read the response to
	// a request so that the client has taken it in.
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return conn.ConnectionState().DidResume
}

func TestServeSharedSessionTicketKeys(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	key := make([]byte, 48)
	rand.Read(key)
	keyFile := certstest.WriteFile(t, t.TempDir(), "ticket.keys", []byte(base64.StdEncoding.EncodeToString(key)+"\n"))
	args := []string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL,
		"--session-ticket-key-file", keyFile}
	a, b := startServe(t, args...), startServe(t, args...)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			c := &tls.Config{RootCAs: poolOf(t, f.CAFile), ServerName: "api.example.com", MaxVersion: version,
				NextProtos: []string{"http/1.1"}, ClientSessionCache: tls.NewLRUClientSessionCache(1)}
			if resumedOn(t, a, c) {
				t.Fatal("first handshake resumed a session")
			}
			if !resumedOn(t, b, c) {
				t.Error("a session from one instance did not resume on another with the same --session-ticket-key-file")
			}
		})
	}
}

func TestServeBadSessionTicketKeyFile(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	key := base64.StdEncoding.EncodeToString(make([]byte, 40))
	keyFile := certstest.WriteFile(t, t.TempDir(), "ticket.keys", []byte("# rotated\n"+key+"\n"))
	for _, tt := range []struct{ name, file, want string }{
		{"wrong length", keyFile, `--session-ticket-key-file "` + keyFile + `": line 2: a 40-byte key; want 32, 48 or 80 bytes`},
		{"missing", filepath.Join(t.TempDir(), "none"), "--session-ticket-key-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "",
				"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
				"--backend", "http://127.0.0.1:1", "--session-ticket-key-file", tt.file)
			if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", code, stdout, stderr, tt.want)
			}
			if strings.Contains(stderr, key) {
				t.Errorf("stderr %q holds the key", stderr)
			}
		})
	}
}
