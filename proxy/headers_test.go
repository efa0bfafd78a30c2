package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/scoregate/scoregate/certs/certstest"
)

// forgedHeaders are forwarding and client-certificate claims a client may
// send, in the spellings backends read them in: canonical, lower case,
// and with '_' for '-' (one HTTP_X_FORWARDED_FOR to a WSGI backend).
var forgedHeaders = map[string]string{
	"X-Forwarded-For":       "6.6.6.6",
	"X-Forwarded-Host":      "evil.example",
	"X-Forwarded-Proto":     "http",
	"X-Forwarded-Port":      "80",
	"X-Forwarded-Prefix":    "/admin",
	"X-Forwarded-Ssl":       "off",
	"Forwarded":             "for=6.6.6.6;proto=http",
	"X-Real-Ip":             "6.6.6.6",
	"X-Client-Cert":         "-----BEGIN CERTIFICATE-----",
	"X-Client-Cert-Subject": "CN=admin",
	"X-Client-Cert-Sha256":  strings.Repeat("0", 64),
	"x-forwarded-for":       "6.6.6.7",
	"X_Forwarded_For":       "6.6.6.8",
	"x_real_ip":             "6.6.6.9",
	"X_CLIENT_CERT_SUBJECT": "CN=root",
}

// sendForged makes a GET to front over major carrying forgedHeaders and
// X-Note, the control that must get through, and returns what the backend
// saw.
func sendForged(t *testing.T, c *http.Client, front *httptest.Server, b *recordingBackend, major int) http.Header {
	t.Helper()
	req := newRequest(t, context.Background(), front, "GET", "/score", testCName, nil)
	for k, v := range forgedHeaders {
		req.Header[k] = []string{v} // as spelled: not canonicalised
	}
	req.Header.Set("X-Note", "kept")
	if resp, body := do(t, c, req, major); resp.StatusCode != 200 {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	seen := b.seen()
	if len(seen) != 1 {
		t.Fatalf("backend saw %d requests, want 1", len(seen))
	}
	return seen[0].header
}

// checkForwarding checks the header the backend got for sendForged's
// request: scoregate's own X-Forwarded-For, -Host and -Proto, X-Note, and
// no forwarding claim other than those and the client-certificate
// headers, which the caller checks.
func checkForwarding(t *testing.T, h http.Header) {
	t.Helper()
	for k, want := range map[string]string{
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": testCName, "X-Forwarded-Proto": "https", "X-Note": "kept",
	} {
		if got := h[k]; !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want [%q]", k, got, want)
		}
	}
	for k, vv := range h {
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", headerClientCertSubject, headerClientCertSHA256:
			continue
		}
		if forwardingClaim(k) {
			t.Errorf("backend got the client's %s: %q", k, vv)
		}
	}
}

// TestForwardingHeadersNotForgeable: the backend gets scoregate's
// X-Forwarded-For, -Host and -Proto and no other forwarding or
// client-certificate header, whatever the client sent.
func TestForwardingHeadersNotForgeable(t *testing.T) {
	forTransports(t, func(t *testing.T, path seamPath) {
		for _, proto := range protos {
			t.Run(proto.name, func(t *testing.T) {
				b := startRecordingBackend(t, nil)
				p := newProxyVia(t, path, b.srv.URL, Config{}, testLog(t))
				front := startFront(t, p)
				h := sendForged(t, clientFor(t, front, proto.major), front, b, proto.major)
				checkForwarding(t, h)
				if h[headerClientCertSubject] != nil || h[headerClientCertSHA256] != nil {
					t.Errorf("no client certificate, yet %s = %q, %s = %q", headerClientCertSubject, h[headerClientCertSubject],
						headerClientCertSHA256, h[headerClientCertSHA256])
				}
			})
		}
	})
}

// TestForwardingClaimsInRequestTrailers: a streamed chunked body's trailer
// section is no way around outHeader. net/http's server collects every
// trailer field, announced or not.
func TestForwardingClaimsInRequestTrailers(t *testing.T) {
	forTransports(t, func(t *testing.T, path seamPath) {
		b := startRecordingBackend(t, nil)
		p := newProxyVia(t, path, b.srv.URL, Config{}, testLog(t))
		front := startFront(t, p)
		body := strings.Repeat("a", 2*copyBufferSize) // streamed, not read whole
		res := rawExchange(t, front, "POST /score HTTP/1.1\r\nHost: "+testCName+"\r\nTrailer: X-Checksum\r\n"+
			"Transfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n", len(body), body)+
			"0\r\nX-Checksum: 1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Client-Cert-Subject: CN=admin\r\n\r\n")
		seen := b.seen()
		if !slices.Equal(res.statuses, []int{200}) {
			t.Fatalf("statuses = %v, want [200]", res.statuses)
		}
		if len(seen) != 1 || len(seen[0].body) != len(body) {
			t.Fatalf("backend saw %d requests (want 1 with the %d-byte body)", len(seen), len(body))
		}
		for k, vv := range seen[0].trailer {
			if forwardingClaim(k) && len(vv) > 0 {
				t.Errorf("backend got the client's %s as a trailer: %q", k, vv)
			}
		}
		if got := seen[0].header["X-Forwarded-For"]; !slices.Equal(got, []string{"127.0.0.1"}) {
			t.Errorf("X-Forwarded-For = %q, want [127.0.0.1]", got)
		}
	})
}

func TestForwardingClaim(t *testing.T) {
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"Forwarded", true}, {"forwarded", true}, {"FORWARDED", true},
		{"X-Forwarded-For", true}, {"x-forwarded-for", true}, {"X_Forwarded_For", true}, {"X-Forwarded-Anything", true},
		{"X-Real-Ip", true}, {"x_real_ip", true},
		{"X-Client-Cert", true}, {"X-Client-Cert-Subject", true}, {"x-client-cert-sha256", true}, {"X_Client_Cert_Chain", true},
		{"X-Forwarded", false}, {"Forwarded-For", false}, {"X-Real-Ip-Note", false}, {"X-Real", false},
		{"Content-Type", false}, {"X-Request-Id", false}, {"", false}, {"X-Client", false},
	} {
		if got := forwardingClaim(tt.name); got != tt.want {
			t.Errorf("forwardingClaim(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// clientCertFixture is a client CA and a client certificate it signed.
type clientCertFixture struct {
	pool *x509.CertPool
	leaf *certstest.Leaf
	cert tls.Certificate
}

func newClientCert(t *testing.T) clientCertFixture {
	t.Helper()
	ca := certstest.NewRootCA(t, "scoregate test client CA")
	leaf := ca.Leaf(t, certstest.LeafOptions{DNSNames: []string{"client-1.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return clientCertFixture{pool: pool, leaf: leaf, cert: cert}
}

// startMTLSFront is startFront with client certificates asked for: auth
// and the client CAs in pool.
func startMTLSFront(t *testing.T, h http.Handler, auth tls.ClientAuthType, pool *x509.CertPool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: auth, ClientCAs: pool}
	startTLS(t, srv)
	t.Cleanup(srv.Close)
	return srv
}

// TestClientCertHeaders: a certificate the handshake verified reaches the
// backend as X-Client-Cert-Subject and X-Client-Cert-Sha256, in place of
// any the client sent; without one (none presented, or presented but not
// verified) the backend gets neither.
func TestClientCertHeaders(t *testing.T) {
	fx := newClientCert(t)
	sum := sha256.Sum256(fx.leaf.Cert.Raw)
	wantSubject, wantSHA := "CN=client-1.example", hex.EncodeToString(sum[:])
	for _, tt := range []struct {
		name     string
		auth     tls.ClientAuthType
		present  bool
		verified bool
	}{
		{"verified", tls.VerifyClientCertIfGiven, true, true},
		{"required and verified", tls.RequireAndVerifyClientCert, true, true},
		{"none presented", tls.VerifyClientCertIfGiven, false, false},
		{"presented, not verified", tls.RequestClientCert, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, path seamPath) {
				for _, proto := range protos {
					t.Run(proto.name, func(t *testing.T) {
						b := startRecordingBackend(t, nil)
						p := newProxyVia(t, path, b.srv.URL, Config{}, testLog(t))
						front := startMTLSFront(t, p, tt.auth, fx.pool)
						c := clientFor(t, front, proto.major)
						if tt.present {
							c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{fx.cert}
						}
						h := sendForged(t, c, front, b, proto.major)
						checkForwarding(t, h)
						subject, sha := h[headerClientCertSubject], h[headerClientCertSHA256]
						if !tt.verified {
							if subject != nil || sha != nil {
								t.Errorf("without a verified certificate: subject %q, SHA-256 %q; want neither", subject, sha)
							}
							return
						}
						if !slices.Equal(subject, []string{wantSubject}) {
							t.Errorf("%s = %q, want [%q]", headerClientCertSubject, subject, wantSubject)
						}
						if !slices.Equal(sha, []string{wantSHA}) {
							t.Errorf("%s = %q, want [%q]", headerClientCertSHA256, sha, wantSHA)
						}
					})
				}
			})
		})
	}
}

// TestCertSubject: RFC 4514 escapes for what pkix.Name.String leaves
// as is, so that a name a CA signed cannot break the header.
func TestCertSubject(t *testing.T) {
	for _, tt := range []struct {
		name pkix.Name
		want string
	}{
		{pkix.Name{CommonName: "client-1", Organization: []string{"Example"}}, "CN=client-1,O=Example"},
		{pkix.Name{CommonName: "a,b+c"}, `CN=a\,b\+c`},
		{pkix.Name{CommonName: "a\r\nX-Forwarded-For: 6.6.6.6"}, `CN=a\0d\0aX-Forwarded-For: 6.6.6.6`},
		{pkix.Name{CommonName: "nul\x00del\x7f"}, `CN=nul\00del\7f`},
		{pkix.Name{CommonName: "ünïcode"}, "CN=ünïcode"},
		{pkix.Name{}, ""},
	} {
		if got := certSubject(&x509.Certificate{Subject: tt.name}); got != tt.want {
			t.Errorf("certSubject(%q) = %q, want %q", tt.name.CommonName, got, tt.want)
		}
	}
}

// TestMaxHeaderCount: a request with more header field lines than
// MaxHeaderCount gets 431 and the JSON error stating the limit, and never
// reaches the backend; at the limit it passes. Host counts, and so does
// each line of a repeated field.
func TestMaxHeaderCount(t *testing.T) {
	// fill sends n header field lines in all: Host, User-Agent and
	// Accept-Encoding (set, so that no client adds its own), then X-Rep
	// three times and X-Fill-i for the rest.
	fill := func(req *http.Request, n int) {
		req.Header.Set("User-Agent", "t")
		req.Header.Set("Accept-Encoding", "identity")
		req.Header["X-Rep"] = []string{"1", "2", "3"}
		for i := range n - 6 {
			req.Header.Set(fmt.Sprintf("X-Fill-%d", i), "x")
		}
	}
	for _, tt := range []struct {
		name   string
		limit  int // Config.MaxHeaderCount
		fields int
		want   int
	}{
		{"at the limit", 10, 10, 200},
		{"one over", 10, 11, 431},
		{"default at 100", 0, 100, 200},
		{"default over 100", 0, 101, 431},
		{"negative: no limit", -1, 300, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, path seamPath) {
				for _, proto := range protos {
					t.Run(proto.name, func(t *testing.T) {
						b := startRecordingBackend(t, nil)
						p := newProxyVia(t, path, b.srv.URL, Config{MaxHeaderCount: tt.limit}, testLog(t))
						front := startFront(t, p)
						req := newRequest(t, context.Background(), front, "GET", "/score", testCName, nil)
						fill(req, tt.fields)
						resp, body := do(t, clientFor(t, front, proto.major), req, proto.major)
						seen := b.seen()
						if resp.StatusCode != tt.want {
							t.Fatalf("%d fields: status = %d, want %d; body %s", tt.fields, resp.StatusCode, tt.want, body)
						}
						if tt.want == 200 {
							if len(seen) != 1 {
								t.Errorf("backend saw %d requests, want 1", len(seen))
							}
							return
						}
						if len(seen) != 0 {
							t.Errorf("backend saw %d requests, want none", len(seen))
						}
						limit := tt.limit
						if limit == 0 {
							limit = DefaultMaxHeaderCount
						}
						e := checkErrorBody(t, resp.Header, body)
						if want := fmt.Sprintf("more than %d request header fields", limit); e.Error != want {
							t.Errorf("error = %q, want %q", e.Error, want)
						}
					})
				}
			})
		})
	}
}
