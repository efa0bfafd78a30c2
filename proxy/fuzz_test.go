package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/net/http/httpguts"

	"github.com/scoregate/scoregate/certs/certstest"
)

const okBody = `{"result":[0.5]}`

func okResponse(r *http.Request) *http.Response {
	return &http.Response{
		StatusCode:    200,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(okBody)),
		ContentLength: int64(len(okBody)),
		Request:       r,
	}
}

// memoryProxy is a Proxy whose backend answers okBody in memory (a
// roundTripFunc in place of its transports): no sockets, for fuzzing and
// benchmarks.
func memoryProxy(tb testing.TB, cfg Config) *Proxy {
	p := newTestProxy(tb, "http://127.0.0.1:5001", cfg, zerolog.Nop())
	p.noDirect = true // the in-memory transport serves the ReverseProxy path
	p.rp.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				return nil, err
			}
		}
		return okResponse(r), nil
	})
	return p
}

// FuzzServeHTTP: whatever the Host, path, ids and body, the handler does not
// panic and answers one of its statuses, errors as JSON.
func FuzzServeHTTP(f *testing.F) {
	f.Add("api.example.com", "/score", "", "", "{}", int64(2))
	f.Add("API.example.com.:443", "/a%2Fb", "id", "client", "", int64(0))
	f.Add("evil.example.com", "/", "", "", "", int64(0))
	f.Add("a..b", "*", "", "", "", int64(-1))
	f.Add("api.example.com", "/score", strings.Repeat("x", 101), "", "", int64(0))
	f.Add("api.example.com", "/score", "", "", strings.Repeat("b", 40), int64(-1))
	f.Add("api.example.com", "/score", "", "", strings.Repeat("b", 40), int64(40))
	f.Add("0", "0", "\xcc", "", "0", int64(91)) // an id that is not UTF-8, on an error
	p := memoryProxy(f, Config{CName: testCName, MaxBodyBytes: 32})
	f.Fuzz(func(t *testing.T, host, path, reqID, clientID, body string, contentLength int64) {
		r := &http.Request{
			Method:        "POST",
			URL:           &url.URL{Path: path},
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Host:          host,
			Header:        http.Header{"X-Request-Id": {reqID}, "X-Ms-Client-Request-Id": {clientID}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: contentLength,
			RemoteAddr:    "192.0.2.1:1234",
		}
		if contentLength == 0 {
			r.Body = http.NoBody
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			if w.Body.String() != okBody {
				t.Fatalf("body = %q, want %q", w.Body, okBody)
			}
		case 400, 413, 421, 431:
			checkErrorBody(t, w.Header(), w.Body.String())
		default:
			t.Fatalf("status = %d; body %s", w.Code, w.Body)
		}
	})
}

// discardWriter is a reusable ResponseWriter for benchmarks.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkServeHTTPDirect is one request through the direct path to a
// real backend on 127.0.0.1.
func BenchmarkServeHTTPDirect(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, okBody)
	}))
	b.Cleanup(backend.Close)
	p := newTestProxy(b, backend.URL, Config{CName: testCName}, zerolog.Nop())
	const body = `{"data":[[1,2,3,4]]}`
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "https://api.example.com/score", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		clear(w.h)
		w.status = 0
		p.ServeHTTP(w, r)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkServeHTTP is one request through the ReverseProxy path with an
// in-memory backend.
func BenchmarkServeHTTP(b *testing.B) {
	p := memoryProxy(b, Config{CName: testCName})
	const body = `{"data":[[1,2,3,4]]}`
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "https://api.example.com/score", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		clear(w.h)
		p.ServeHTTP(w, r)
	}
}

// FuzzReadRequestIDs: whatever ids a client sends, readRequestIDs does not
// panic, answers 0 or 431, never keeps an id over 100 bytes, and derives
// the ids as the Azure ML inference server does (see readRequestIDs); set
// writes exactly them.
func FuzzReadRequestIDs(f *testing.F) {
	long := strings.Repeat("x", maxRequestIDLen+1)
	for _, s := range [][3]string{
		{"", "", ""}, {"r1", "", ""}, {"", "L1", ""}, {"", "", "c1"}, {"r1", "L1", "c1"},
		{long, "", ""}, {"", long, ""}, {"", "", long}, {long, long, long},
		{strings.Repeat("x", maxRequestIDLen), "", ""}, {"\xff\xfe", "é", "a b"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, reqID, legacy, client string) {
		h := http.Header{}
		for k, v := range map[string]string{headerRequestID: reqID, headerMSRequestID: legacy, headerClientRequestID: client} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		ids, status, msg := readRequestIDs(h)
		switch {
		case status == 0 && msg == "":
		case status == http.StatusRequestHeaderFieldsTooLarge && msg != "":
		default:
			t.Fatalf("readRequestIDs(%q, %q, %q) = status %d, %q; want 0 and no message, or 431 and one", reqID, legacy, client, status, msg)
		}
		if len(ids.id) == 0 || len(ids.id) > maxRequestIDLen || len(ids.msID) == 0 || len(ids.msID) > maxRequestIDLen || len(ids.clientID) > maxRequestIDLen {
			t.Fatalf("readRequestIDs(%q, %q, %q): ids %q, %q, %q; want 1-100 bytes (client id 0-100)", reqID, legacy, client, ids.id, ids.msID, ids.clientID)
		}
		if status == 0 {
			wantID, wantMS, wantClient := reqID, legacy, client
			if wantID == "" {
				wantID = ids.id // generated
			}
			switch {
			case legacy != "" && client == "":
				wantClient = legacy
			case legacy == "" && client != "":
				wantMS = client
			case legacy == "":
				wantMS = wantID
			}
			if ids.id != wantID || ids.msID != wantMS || ids.clientID != wantClient {
				t.Fatalf("readRequestIDs(%q, %q, %q) = %q, %q, %q; want %q, %q, %q", reqID, legacy, client,
					ids.id, ids.msID, ids.clientID, wantID, wantMS, wantClient)
			}
		}
		out := http.Header{headerClientRequestID: {"stale"}}
		ids.set(out)
		if out.Get(headerRequestID) != ids.id || out.Get(headerMSRequestID) != ids.msID || len(out[headerRequestID]) != 1 || len(out[headerMSRequestID]) != 1 {
			t.Fatalf("set wrote %q", out)
		}
		if got := out[headerClientRequestID]; (ids.clientID == "") != (got == nil) || (got != nil && got[0] != ids.clientID) {
			t.Fatalf("set wrote %s = %q, want %q", headerClientRequestID, got, ids.clientID)
		}
	})
}

// hopByHop are the request fields outHeader must never pass on as the
// client sent them.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host", "Expect"}

// FuzzOutHeader: whatever header a client sends, outHeader does not panic,
// passes on no hop-by-hop field (but Te: trailers and an upgrade's own
// Connection and Upgrade), none the Connection header names, no forwarding
// or client-certificate claim but scoregate's own, and no Authorization
// when keys are on; every other field passes unchanged.
func FuzzOutHeader(f *testing.F) {
	for _, s := range []struct {
		header, remote, host string
		tls, cert, auth      bool
	}{
		{"Content-Type: application/json\nX-Request-Id: r1", "192.0.2.1:1234", testCName, true, false, false},
		{"X-Forwarded-For: 6.6.6.6\nForwarded: for=6.6.6.6\nX-Real-IP: 6.6.6.6\nX-Forwarded-Port: 80", "192.0.2.1:1234", testCName, true, false, false},
		{"X_Forwarded_For: 6.6.6.6\nx-client-cert-subject: CN=admin\nX-Client-Cert-Sha256: 00", "[2001:db8::1]:443", testCName, true, true, false},
		{"Connection: keep-alive, X-Secret\nX-Secret: s\nKeep-Alive: 5\nTe: trailers, deflate", "192.0.2.1:1", testCName, false, false, false},
		{"Connection: Upgrade\nUpgrade: websocket\nUpgrade: h2c", "192.0.2.1:1", testCName, true, false, false},
		{"Authorization: Bearer k\nProxy-Authorization: Basic x", "192.0.2.1:1", testCName, true, false, true},
		{"Transfer-Encoding: chunked\nContent-Length: 5\nTrailer: X-Forwarded-For\nExpect: 100-continue", "bad", "", false, false, false},
		{"Connection: X-Forwarded-For, X-Request-Id\nX-Request-Id: r", "192.0.2.1:1", testCName, true, true, false},
	} {
		f.Add(s.header, s.remote, s.host, s.tls, s.cert, s.auth)
	}
	ca := certstest.NewRootCA(f, "fuzz client CA")
	leaf := ca.Leaf(f, certstest.LeafOptions{DNSNames: []string{"client.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	keyed := &Proxy{auth: NewKeySet([]string{keyA})}
	open := &Proxy{}
	f.Fuzz(func(t *testing.T, header, remote, host string, useTLS, cert, auth bool) {
		in := &http.Request{Header: http.Header{}, RemoteAddr: remote, Host: host}
		for line := range strings.SplitSeq(header, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				k = http.CanonicalHeaderKey(k) // as net/http's servers hand them over
				in.Header[k] = append(in.Header[k], strings.TrimSpace(v))
			}
		}
		if useTLS {
			in.TLS = &tls.ConnectionState{}
			if cert {
				in.TLS.PeerCertificates = []*x509.Certificate{leaf.Cert}
				in.TLS.VerifiedChains = [][]*x509.Certificate{{leaf.Cert, ca.Cert}}
			}
		}
		p := open
		if auth {
			p = keyed
		}
		st := &reqState{}
		st.ids, _, _ = readRequestIDs(in.Header)
		dst := http.Header{}
		p.outHeader(dst, in, st)

		upgrade := isUpgrade(in.Header)
		for _, k := range hopByHop {
			vv, ok := dst[k]
			switch {
			case !ok:
			case k == "Te" && slices.Equal(vv, []string{"trailers"}):
			case upgrade && k == "Connection" && slices.Equal(vv, []string{"Upgrade"}):
			case upgrade && k == "Upgrade" && len(vv) == 1 && vv[0] == in.Header["Upgrade"][0]:
			default:
				t.Fatalf("hop-by-hop %s = %q passed on (in: %q)", k, vv, in.Header)
			}
		}
		if auth && dst["Authorization"] != nil {
			t.Fatalf("Authorization passed on with keys on")
		}
		own := map[string][]string{
			"X-Forwarded-Host":  {host},
			"X-Forwarded-Proto": {"http"},
		}
		if h, _, err := net.SplitHostPort(remote); err == nil {
			own["X-Forwarded-For"] = []string{h}
		}
		if useTLS {
			own["X-Forwarded-Proto"] = []string{"https"}
			if cert {
				sum := sha256.Sum256(leaf.Cert.Raw)
				own[headerClientCertSubject] = []string{leaf.Cert.Subject.String()}
				own[headerClientCertSHA256] = []string{hex.EncodeToString(sum[:])}
			}
		}
		ids := map[string]bool{headerRequestID: true, headerMSRequestID: true, headerClientRequestID: true}
		for k, vv := range dst {
			if want, ok := own[k]; ok {
				if !slices.Equal(vv, want) {
					t.Fatalf("%s = %q, want scoregate's %q", k, vv, want)
				}
				continue
			}
			if forwardingClaim(k) {
				t.Fatalf("the client's %s = %q passed on", k, vv)
			}
			if ids[k] || slices.Contains(hopByHop, k) {
				continue
			}
			if connectionListed(in.Header["Connection"], k) {
				t.Fatalf("%s passed on though Connection names it", k)
			}
			if !slices.Equal(vv, in.Header[k]) {
				t.Fatalf("%s = %q, want the client's %q", k, vv, in.Header[k])
			}
		}
		for k := range own {
			if dst[k] == nil && !(k == "X-Forwarded-For") {
				t.Fatalf("scoregate's %s missing", k)
			}
		}
		// Every end-to-end field the client sent arrives.
		for k, vv := range in.Header {
			if slices.Contains(hopByHop, k) || forwardingClaim(k) || ids[k] || (auth && k == "Authorization") ||
				connectionListed(in.Header["Connection"], k) {
				continue
			}
			if !slices.Equal(dst[k], vv) {
				t.Fatalf("the client's %s = %q arrived as %q", k, vv, dst[k])
			}
		}
	})
}

// wireCheck checks, as a backend would, the request a Proxy hands to its
// transport: every field name a token and every value free of controls
// (so that no transport can write a second request line into the header
// block), no hop-by-hop or body-framing field (but an upgrade's own
// Connection and Upgrade), no trailer, and no forwarding claim but
// scoregate's. It then writes the request as net/http's transport
// does and reads it back: exactly one request, with the whole body, and
// nothing after it.
func wireCheck(r *http.Request) error {
	upgrade := isUpgrade(r.Header)
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("header field name %q is not a token", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("header field %s = %q has a control character", k, v)
			}
		}
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		case "Te":
			if !slices.Equal(vv, []string{"trailers"}) {
				return fmt.Errorf("Te = %q", vv)
			}
		case "Connection", "Upgrade":
			// outHeader's own, for an upgrade.
			if !upgrade || len(vv) != 1 || (k == "Connection" && vv[0] != "Upgrade") {
				return fmt.Errorf("%s = %q sent to the backend", k, vv)
			}
		default:
			if slices.Contains(hopByHop, k) || forwardingClaim(k) {
				return fmt.Errorf("%s = %q sent to the backend", k, vv)
			}
		}
	}
	if len(r.Trailer) > 0 {
		return fmt.Errorf("request trailers %q sent to the backend", r.Trailer)
	}
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return err // the client's body failed: answered 400 or 413
		}
	}
	out := r.Clone(r.Context())
	out.Body, out.ContentLength, out.TransferEncoding = io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
	if len(body) == 0 {
		out.Body = nil
	}
	var wire bytes.Buffer
	if err := out.Write(&wire); err != nil {
		return fmt.Errorf("writing the request: %w", err)
	}
	br := bufio.NewReader(&wire)
	got, err := http.ReadRequest(br)
	if err != nil {
		return fmt.Errorf("the request as written does not parse: %w\n%s", err, wire.Bytes())
	}
	gotBody, err := io.ReadAll(got.Body)
	if err != nil || !bytes.Equal(gotBody, body) {
		return fmt.Errorf("body read back as %q, %v; want %q", gotBody, err, body)
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("%d bytes after the request: a second request", br.Buffered())
	}
	if got.Method != r.Method {
		return fmt.Errorf("method read back as %q, want %q", got.Method, r.Method)
	}
	return nil
}

// FuzzHTTP1Request: whatever bytes a client sends, net/http's request
// reader either refuses them or gives a request that ServeHTTP answers
// without panicking, with one of its statuses (errors as JSON); what
// reaches the backend is one well-formed request (wireCheck); and an
// HTTP/1.0 or chunked request is answered with Connection: close
// (closeAfter).
func FuzzHTTP1Request(f *testing.F) {
	const host = "Host: " + testCName + "\r\n"
	for _, s := range []string{
		"POST /score HTTP/1.1\r\n" + host + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"GET /score?a=1 HTTP/1.1\r\n" + host + "X-Request-Id: r1\r\n\r\n",
		"POST /score HTTP/1.1\r\n" + host + "Content-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n",
		"POST /score HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTrailer: X-Forwarded-For\r\n\r\n3\r\nabc\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
		"POST /score HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"POST /score HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST /score HTTP/1.1\r\n" + host + "Transfer-Encoding:\tchunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n",
		"POST /score HTTP/1.0\r\n" + host + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
		"POST /score HTTP/1.1\r\n" + host + "X-Note: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		"POST /score HTTP/1.1\n" + "Host: " + testCName + "\nX-Note: a\nTransfer-Encoding: chunked\nContent-Length: 3\n\n3\r\nabc\r\n0\r\n\r\n",
		"POST /score HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
		"GET http://evil.example/score HTTP/1.1\r\n" + host + "\r\n",
		"GET https://" + testCName + "/score HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET /score HTTP/1.1\r\n" + host + "X-Forwarded-For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nForwarded: for=x\r\nConnection: X-Note\r\nX-Note: n\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"CONNECT " + testCName + ":443 HTTP/1.1\r\n" + host + "\r\n",
		"OPTIONS * HTTP/1.1\r\n" + host + "\r\n",
		"GET /score?a=%00\x01 HTTP/1.1\r\n" + host + "\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	p := newTestProxy(f, "http://127.0.0.1:5001", Config{CName: testCName, MaxBodyBytes: 64}, zerolog.Nop())
	p.noDirect = true // the in-memory transport serves the ReverseProxy path
	p.rp.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if err := wireCheck(r); err != nil {
			return nil, &wireError{err}
		}
		return okResponse(r), nil
	})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil || serverRefuses(r) {
			return
		}
		r.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		res := w.Result()
		switch w.Code {
		case 200:
			if w.Body.String() != okBody {
				t.Fatalf("body = %q, want %q", w.Body, okBody)
			}
		case 400, 401, 405, 413, 421, 431:
			checkErrorBody(t, res.Header, w.Body.String())
		case 502:
			t.Fatalf("502: the backend got a malformed request, or the transport failed:\n%s\nrequest:\n%q", w.Body, raw)
		default:
			t.Fatalf("status = %d; body %s", w.Code, w.Body)
		}
		if closeAfter(r) && res.Header.Get("Connection") != "close" {
			t.Fatalf("%s request with Transfer-Encoding %q answered without Connection: close", r.Proto, r.TransferEncoding)
		}
	})
}

// serverRefuses reports whether net/http's server refuses r before any
// handler sees it, with checks that http.ReadRequest leaves out (see
// readRequest in net/http's server.go): a version other than HTTP/1.x
// (505; the HTTP/2 preface is let through), and a field name that is not
// a token or a value with a control character (400).
func serverRefuses(r *http.Request) bool {
	if r.ProtoMajor != 1 && !(r.ProtoMajor == 2 && r.ProtoMinor == 0 && r.Method == "PRI" && r.RequestURI == "*") {
		return true
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return true
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return true
			}
		}
	}
	return false
}

// wireError is wireCheck's verdict, as the transport's error.
type wireError struct{ err error }

func (e *wireError) Error() string { return "wire check: " + e.err.Error() }
func (e *wireError) Unwrap() error { return e.err }
