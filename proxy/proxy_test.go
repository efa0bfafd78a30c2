package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHostPolicyOverTLS(t *testing.T) { forTransports(t, testHostPolicyOverTLS) }

func testHostPolicyOverTLS(t *testing.T, path seamPath) {
	var hits atomic.Int64
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "Healthy")
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))

	for _, pr := range protos {
		c := clientFor(t, front, pr.major)
		for _, tt := range []struct {
			name, host string
			want       int
		}{
			{"exact", "api.example.com", 200},
			{"case and trailing dot ignored", "API.Example.COM.", 200},
			{"port ignored", "api.example.com:8443", 200},
			{"other name", "evil.example.com", 421},
			{"subdomain of the cname", "x.api.example.com", 421},
			{"IPv4 literal", "127.0.0.1", 421},
			{"IPv6 literal", "[::1]:443", 421},
			{"empty label", "api..example.com", 400},
			{"port out of range", "api.example.com:65536", 400},
			{"port not a number", "api.example.com:https", 400},
			{"label too long", strings.Repeat("a", 64) + ".example.com", 400},
		} {
			t.Run(pr.name+"/"+tt.name, func(t *testing.T) {
				before := hits.Load()
				resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/", tt.host, nil), pr.major)
				if resp.StatusCode != tt.want {
					t.Fatalf("Host %q: status = %d, want %d; body %s", tt.host, resp.StatusCode, tt.want, body)
				}
				forwarded := hits.Load() > before
				if got, want := forwarded, tt.want == 200; got != want {
					t.Errorf("Host %q: reached backend = %v, want %v", tt.host, got, want)
				}
				if tt.want != 200 {
					checkErrorBody(t, resp.Header, body)
				}
			})
		}
	}
}

// TestHostPolicyDirect covers Hosts that net/http's client or server would
// not let through, by calling ServeHTTP directly.
func TestHostPolicyDirect(t *testing.T) {
	p := newTestProxy(t, "http://127.0.0.1:1", Config{}, testLog(t))
	for _, tt := range []struct {
		name, host string
		want       int
	}{
		{"empty (HTTP/1.0 without Host)", "", 400},
		{"space", "api example.com", 400},
		{"slash", "api.example.com/x", 400},
		{"unbracketed IPv6", "::1", 400},
		{"unclosed bracket", "[::1", 400},
		{"junk after bracket", "[::1]x", 400},
		{"empty brackets", "[]", 400},
		{"IPv4 in brackets", "[127.0.0.1]", 400},
		{"IPv6 zone", "[fe80::1%25eth0]", 400},
		{"too long", strings.Repeat("a.", 127) + "com", 400},
		{"only a port", ":443", 400},
		{"other name", "evil.example.com", 421},
		{"IPv6 literal", "[2001:db8::1]", 421},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/score", nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("Host %q: status = %d, want %d; body %s", tt.host, w.Code, tt.want, w.Body)
			}
			checkErrorBody(t, w.Header(), w.Body.String())
		})
	}
}

func TestForwardedHeaders(t *testing.T) { forTransports(t, testForwardedHeaders) }

func testForwardedHeaders(t *testing.T, path seamPath) {
	type seen struct {
		host, xff, xfh, xfp, forwarded string
		major                          int
	}
	got := make(chan seen, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Forwarded"), r.ProtoMajor}
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
	backendHost := strings.TrimPrefix(backend.URL, "http://")

	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			req := newRequest(t, t.Context(), front, "POST", "/score", "API.example.com:443", strings.NewReader("{}"))
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Forwarded-Host", "evil.example.com")
			req.Header.Set("X-Forwarded-Proto", "http")
			req.Header.Set("Forwarded", "for=203.0.113.7;proto=http")
			do(t, clientFor(t, front, pr.major), req, pr.major)
			want := seen{backendHost, "127.0.0.1", "API.example.com:443", "https", "", 1}
			if g := <-got; g != want {
				t.Errorf("backend saw %+v, want %+v", g, want)
			}
		})
	}
}

func TestHopByHopHeadersRemoved(t *testing.T) { forTransports(t, testHopByHopHeadersRemoved) }

func testHopByHopHeadersRemoved(t *testing.T, path seamPath) {
	got := make(chan http.Header, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Connection", "X-Backend-Hop")
		w.Header().Set("X-Backend-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End-To-End", "1")
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))

	// HTTP/1.1 only: HTTP/2 has no connection-specific headers to strip
	// (Go's HTTP/2 client refuses to send them).
	req := newRequest(t, t.Context(), front, "GET", "/", testCName, nil)
	req.Header.Set("Connection", "X-Foo, keep-alive")
	req.Header.Set("X-Foo", "hop")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Te", "gzip")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("X-Kept", "end-to-end")
	resp, _ := do(t, clientFor(t, front, 1), req, 1)

	h := <-got
	for _, k := range []string{"X-Foo", "Keep-Alive", "Te", "Proxy-Connection"} {
		if v, ok := h[k]; ok {
			t.Errorf("backend got hop-by-hop %s: %q, want it removed", k, v)
		}
	}
	if got := h.Get("X-Kept"); got != "end-to-end" {
		t.Errorf("backend X-Kept = %q, want end-to-end", got)
	}
	for _, k := range []string{"X-Backend-Hop", "Keep-Alive"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("client got hop-by-hop %s: %q, want it removed", k, v)
		}
	}
	if got := resp.Header.Get("X-End-To-End"); got != "1" {
		t.Errorf("client X-End-To-End = %q, want 1", got)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestIDs(t *testing.T) { forTransports(t, testRequestIDs) }

func testRequestIDs(t *testing.T, path seamPath) {
	type ids struct{ id, msID, clientID string }
	got := make(chan ids, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- ids{r.Header.Get("X-Request-Id"), r.Header.Get("X-Ms-Request-Id"), r.Header.Get("X-Ms-Client-Request-Id")}
		// The backend's own ids must not reach the client beside ours.
		w.Header().Set("X-Request-Id", "backend-made")
		w.Header().Set("X-Ms-Request-Id", "backend-made")
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
	id100 := strings.Repeat("r", 100)

	for _, pr := range protos {
		c := clientFor(t, front, pr.major)
		for _, tt := range []struct {
			name                     string
			reqID, legacy, clientID  string
			wantID, wantMSID, wantCl string // "uuid": a generated UUID; "id": the x-request-id
		}{
			{"none: generated", "", "", "", "uuid", "id", ""},
			{"x-request-id kept", "abc-123", "", "", "abc-123", "abc-123", ""},
			{"client id becomes x-ms-request-id", "", "", "client-7", "uuid", "client-7", "client-7"},
			{"both given", "abc-123", "", "client-7", "abc-123", "client-7", "client-7"},
			{"legacy x-ms-request-id kept, also the client id", "abc-123", "legacy-3", "", "abc-123", "legacy-3", "legacy-3"},
			{"legacy x-ms-request-id kept beside the client id", "", "legacy-3", "client-7", "uuid", "legacy-3", "client-7"},
			{"100 characters allowed", id100, id100, id100, id100, id100, id100},
		} {
			t.Run(pr.name+"/"+tt.name, func(t *testing.T) {
				req := newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader("{}"))
				if tt.reqID != "" {
					req.Header.Set("X-Request-Id", tt.reqID)
				}
				if tt.clientID != "" {
					req.Header.Set("X-Ms-Client-Request-Id", tt.clientID)
				}
				if tt.legacy != "" {
					req.Header.Set("X-Ms-Request-Id", tt.legacy)
				}
				resp, _ := do(t, c, req, pr.major)
				b := <-got

				if vs := resp.Header.Values("X-Request-Id"); len(vs) != 1 {
					t.Fatalf("response x-request-id values = %q, want exactly one", vs)
				}
				id := resp.Header.Get("X-Request-Id")
				switch tt.wantID {
				case "uuid":
					if !uuidV4.MatchString(id) {
						t.Errorf("x-request-id = %q, want a UUID v4", id)
					}
				default:
					if id != tt.wantID {
						t.Errorf("x-request-id = %q, want %q", id, tt.wantID)
					}
				}
				wantMSID := tt.wantMSID
				if wantMSID == "id" {
					wantMSID = id
				}
				want := ids{id, wantMSID, tt.wantCl}
				// Toward the model: x-request-id, and the other two only as
				// the client sent them (no invented legacy id).
				if wantBackend := (ids{id, tt.legacy, tt.clientID}); b != wantBackend {
					t.Errorf("backend got ids %+v, want %+v", b, wantBackend)
				}
				gotResp := ids{id, resp.Header.Get("X-Ms-Request-Id"), resp.Header.Get("X-Ms-Client-Request-Id")}
				if gotResp != want {
					t.Errorf("response ids %+v, want %+v", gotResp, want)
				}
			})
		}
	}
}

func TestRequestIDTooLong(t *testing.T) {
	var hits atomic.Int64
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	front := startFront(t, newTestProxy(t, backend.URL, Config{}, testLog(t)))
	long := strings.Repeat("x", 101)

	for _, pr := range protos {
		c := clientFor(t, front, pr.major)
		for _, tt := range []struct{ name, header string }{
			{"x-request-id", "X-Request-Id"},
			{"x-ms-client-request-id", "X-Ms-Client-Request-Id"},
			{"x-ms-request-id", "X-Ms-Request-Id"},
		} {
			t.Run(pr.name+"/"+tt.name, func(t *testing.T) {
				req := newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader("{}"))
				req.Header.Set(tt.header, long)
				resp, body := do(t, c, req, pr.major)
				if resp.StatusCode != 431 {
					t.Fatalf("status = %d, want 431; body %s", resp.StatusCode, body)
				}
				e := checkErrorBody(t, resp.Header, body)
				if !strings.Contains(e.Error, tt.name) {
					t.Errorf("error %q does not name %s", e.Error, tt.name)
				}
				if strings.Contains(headerString(resp.Header), long) {
					t.Errorf("the oversized id was echoed:\n%s", headerString(resp.Header))
				}
			})
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("backend reached %d times, want 0", n)
	}
}

// TestStreamingResponse: the first chunk reaches the client while the
// backend is still blocked before writing the second.
func TestStreamingResponse(t *testing.T) { forTransports(t, testStreamingResponse) }

func testStreamingResponse(t *testing.T, path seamPath) {
	next := make(chan struct{}, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))

	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			resp, err := clientFor(t, front, pr.major).Do(newRequest(t, ctx, front, "GET", "/stream", testCName, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "first\n" {
				t.Fatalf("first line = %q, %v; want %q before the backend finishes", line, err, "first\n")
			}
			next <- struct{}{}
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "second\n" {
				t.Fatalf("rest = %q, %v; want %q", rest, err, "second\n")
			}
		})
	}
}

// TestStreamingRequest: the backend reads the first chunk of the body and
// answers while the client has not yet sent the rest. HTTP/2 only: an
// HTTP/1.1 net/http server is not full duplex.
func TestStreamingRequest(t *testing.T) { forTransports(t, testStreamingRequest) }

func testStreamingRequest(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		br := bufio.NewReader(r.Body)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Errorf("backend reading the first line: %v", err)
			return
		}
		fmt.Fprintf(w, "ack %s", line)
		http.NewResponseController(w).Flush()
		n, err := io.Copy(io.Discard, br)
		if err != nil {
			t.Errorf("backend reading the rest: %v", err)
		}
		fmt.Fprintf(w, "rest %d bytes\n", n)
	})
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))

	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req := newRequest(t, ctx, front, "POST", "/score", testCName, pr)
	type result struct {
		resp *http.Response
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := clientFor(t, front, 2).Do(req)
		res <- result{resp, err}
	}()
	if _, err := io.WriteString(pw, "first\n"); err != nil {
		t.Fatal(err)
	}
	r := <-res // the response headers arrive while the body is still open
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	br := bufio.NewReader(r.resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "ack first\n" {
		t.Fatalf("first response line = %q, %v; want %q", line, err, "ack first\n")
	}
	io.WriteString(pw, "second\nthird\n")
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "rest 13 bytes\n" {
		t.Fatalf("rest = %q, %v; want %q", rest, err, "rest 13 bytes\n")
	}
}

// unsized hides the length of a reader so that the client sends it chunked
// (HTTP/1.1) or without content-length (HTTP/2).
type unsized struct{ io.Reader }

func TestBodyLimit(t *testing.T) { forTransports(t, testBodyLimit) }

func testBodyLimit(t *testing.T, path seamPath) {
	var hits atomic.Int64
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%d", n)
	})
	const limit = 1024
	limited := startFront(t, newProxyVia(t, path, backend.URL, Config{MaxBodyBytes: limit}, testLog(t)))
	unlimited := startFront(t, newProxyVia(t, path, backend.URL, Config{MaxBodyBytes: -1}, testLog(t)))
	body := func(n int) string { return strings.Repeat("b", n) }

	for _, pr := range protos {
		for _, tt := range []struct {
			name        string
			front       *httptest.Server
			body        io.Reader
			want        int
			wantBackend string // "yes", "no", or "maybe": the cut races the backend reading the headers
		}{
			{"Content-Length over the limit: 413 at once", limited, strings.NewReader(body(limit + 1)), 413, "no"},
			{"unsized over the limit: 413 mid-stream", limited, unsized{strings.NewReader(body(4 * limit))}, 413, "maybe"},
			{"Content-Length at the limit", limited, strings.NewReader(body(limit)), 200, "yes"},
			{"unsized at the limit", limited, unsized{strings.NewReader(body(limit))}, 200, "yes"},
			{"negative: no limit", unlimited, unsized{strings.NewReader(body(4 * limit))}, 200, "yes"},
		} {
			t.Run(pr.name+"/"+tt.name, func(t *testing.T) {
				before := hits.Load()
				req := newRequest(t, t.Context(), tt.front, "POST", "/score", testCName, tt.body)
				resp, got := do(t, clientFor(t, tt.front, pr.major), req, pr.major)
				if resp.StatusCode != tt.want {
					t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.want, got)
				}
				if reached := hits.Load() > before; tt.wantBackend != "maybe" && reached != (tt.wantBackend == "yes") {
					t.Errorf("reached backend = %v, want %s", reached, tt.wantBackend)
				}
				if tt.want == 413 {
					e := checkErrorBody(t, resp.Header, got)
					if want := "request body larger than 1024 bytes"; !strings.Contains(e.Error, want) {
						t.Errorf("error = %q, want it to contain %q", e.Error, want)
					}
				}
			})
		}
	}
}

// closedPort returns the address of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	// 127.0.0.9, not 127.0.0.1: the port freed here must not be handed to
	// the next httptest listener, which binds 127.0.0.1.
	ln, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestBackendRefused502AtOnce(t *testing.T) { forTransports(t, testBackendRefused502AtOnce) }

func testBackendRefused502AtOnce(t *testing.T, path seamPath) {
	// Timeouts far longer than waitLimit: a 502 within waitLimit shows
	// that the refusal was not waited out.
	p := newProxyVia(t, path, "http://"+closedPort(t), Config{DialTimeout: time.Hour, UpstreamTimeout: time.Hour}, testLog(t))
	front := startFront(t, p)
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			resp, body := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader("{}")), pr.major)
			if resp.StatusCode != 502 {
				t.Fatalf("status = %d, want 502; body %s", resp.StatusCode, body)
			}
			checkErrorBody(t, resp.Header, body)
		})
	}
}

func TestBackendSlow504(t *testing.T) { forTransports(t, testBackendSlow504) }

func testBackendSlow504(t *testing.T, path seamPath) {
	release := make(chan struct{})
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before backend.Close
	logs := newLogSink()
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{UpstreamTimeout: 50 * time.Millisecond}, logs.logger()))

	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			resp, body := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader("{}")), pr.major)
			if resp.StatusCode != 504 {
				t.Fatalf("status = %d, want 504; body %s", resp.StatusCode, body)
			}
			e := checkErrorBody(t, resp.Header, body)
			if !strings.Contains(e.Error, "50ms") {
				t.Errorf("error = %q, want it to name the 50ms timeout", e.Error)
			}
			if name := namedSetting(e.Error); name != "" {
				t.Errorf("error = %q names %s, want no setting named to the API client", e.Error, name)
			}
			line := logs.waitFor(t, "a backend error at error level", func(m map[string]any) bool {
				return m["level"] == "error" && m[keyRequestID] == e.RequestID
			})
			if line[keyStatus] != 504.0 {
				t.Errorf("error log status = %v, want 504", line[keyStatus])
			}
			if line[keySetting] != "UpstreamTimeout" {
				t.Errorf("error log %s = %v, want UpstreamTimeout", keySetting, line[keySetting])
			}
		})
	}
}

func TestClientGone499(t *testing.T) { forTransports(t, testClientGone499) }

func testClientGone499(t *testing.T, path seamPath) {
	arrived := make(chan struct{}, 1)
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: net/http notices a closed connection
		// (and cancels r's context) only once the body is consumed.
		io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done() // the proxy cancels its request when the client leaves
	})
	logs := newLogSink()
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, logs.logger()))

	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			req := newRequest(t, ctx, front, "POST", "/score", testCName, strings.NewReader("{}"))
			const id = "gone-client"
			req.Header.Set("X-Request-Id", id+pr.name)
			errc := make(chan error, 1)
			go func() {
				resp, err := clientFor(t, front, pr.major).Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			select {
			case <-arrived:
			case <-time.After(waitLimit):
				t.Fatal("the request never reached the backend")
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client error = %v, want context.Canceled", err)
			}
			line := logs.accessLine(t, id+pr.name)
			if line[keyStatus] != 499.0 {
				t.Errorf("access log status = %v, want 499", line[keyStatus])
			}
			logs.waitFor(t, "the client-gone debug line", func(m map[string]any) bool {
				return m["level"] == "debug" && m[keyRequestID] == id+pr.name
			})
			for _, m := range logs.all() {
				if m[keyRequestID] == id+pr.name && m["level"] != "debug" && m["level"] != "info" {
					t.Errorf("client gone logged as %v: %v", m["level"], m)
				}
			}
		})
	}
}

func TestAccessLog(t *testing.T) { forTransports(t, testAccessLog) }

func testAccessLog(t *testing.T, path seamPath) {
	const secrets = "QUERYSECRET AUTHSECRET BODYSECRET RESPONSESECRET"
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"result":"RESPONSESECRET"}`)
	})
	logs := newLogSink()
	p := newProxyVia(t, path, backend.URL, Config{}, logs.logger())
	refused := newProxyVia(t, path, "http://"+closedPort(t), Config{}, logs.logger())

	for _, tt := range []struct {
		name       string
		h          http.Handler
		maxTLS     uint16
		major      int
		wantStatus float64
		wantTLS    string
		wantProto  string
	}{
		{"HTTP/1.1 TLS 1.3", p, 0, 1, 200, "1.3", "HTTP/1.1"},
		{"HTTP/2 TLS 1.3", p, 0, 2, 200, "1.3", "HTTP/2.0"},
		{"HTTP/2 TLS 1.2", p, tls.VersionTLS12, 2, 200, "1.2", "HTTP/2.0"},
		// The body is read before the backend is asked, so bytes_in
		// counts it even then.
		{"backend refused", refused, 0, 2, 502, "1.3", "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(tt.h)
			srv.TLS = &tls.Config{MaxVersion: tt.maxTLS}
			startTLS(t, srv)
			defer srv.Close()
			c := clientFor(t, srv, tt.major)
			c.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(4)

			for _, resumed := range []bool{false, true} {
				const reqBody = `{"data":"BODYSECRET"}`
				req := newRequest(t, t.Context(), srv, "POST", "/score?api_key=QUERYSECRET", testCName, strings.NewReader(reqBody))
				req.Header.Set("Authorization", "Bearer AUTHSECRET")
				resp, body := do(t, c, req, tt.major)
				c.CloseIdleConnections() // the next request makes a new connection, resuming
				id := resp.Header.Get("X-Request-Id")
				line := logs.accessLine(t, id)

				want := map[string]any{
					keyMethod:     "POST",
					keyPath:       "/score",
					keyStatus:     tt.wantStatus,
					keyBytesIn:    float64(len(reqBody)),
					keyBytesOut:   float64(len(body)),
					keyTLSVersion: tt.wantTLS,
					keyTLSResumed: resumed,
					keyProto:      tt.wantProto,
					"level":       "info",
				}
				for k, v := range want {
					if line[k] != v {
						t.Errorf("access log %s = %v (%T), want %v (%T)", k, line[k], line[k], v, v)
					}
				}
				for _, k := range []string{keyDuration, keyUpstreamDuration, keyClient} {
					if _, ok := line[k]; !ok {
						t.Errorf("access log lacks %s: %v", k, line)
					}
				}
			}
		})
	}
	for _, s := range strings.Fields(secrets) {
		if strings.Contains(logs.text(), s) {
			t.Errorf("the log contains %s:\n%s", s, logs.text())
		}
	}
}

func TestHTTPSBackend(t *testing.T) {
	major := make(chan int, 1)
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		major <- r.ProtoMajor
		io.WriteString(w, "scored")
	}))
	backend.EnableHTTP2 = true
	backend.StartTLS()
	defer backend.Close()
	tlsCfg := backend.Client().Transport.(*http.Transport).TLSClientConfig

	p := newTestProxy(t, backend.URL, Config{BackendTLS: tlsCfg}, testLog(t))
	front := startFront(t, p)
	resp, body := do(t, clientFor(t, front, 1), newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader("{}")), 1)
	if resp.StatusCode != 200 || body != "scored" {
		t.Fatalf("got %d %q, want 200 \"scored\"", resp.StatusCode, body)
	}
	if got := <-major; got != 2 {
		t.Errorf("backend proto major = %d, want 2 (HTTP/2 negotiated over TLS)", got)
	}
}

func TestCloseKeepsProxyUsable(t *testing.T) { forTransports(t, testCloseKeepsProxyUsable) }

func testCloseKeepsProxyUsable(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Healthy") })
	p := newProxyVia(t, path, backend.URL, Config{}, testLog(t))
	front := startFront(t, p)
	c := clientFor(t, front, 2)
	for i := range 2 {
		resp, body := do(t, c, newRequest(t, t.Context(), front, "GET", "/", testCName, nil), 2)
		if resp.StatusCode != 200 || body != "Healthy" {
			t.Fatalf("request %d: got %d %q, want 200 Healthy", i, resp.StatusCode, body)
		}
		p.Close()
	}
}

func TestConnectRefused(t *testing.T) {
	p := newTestProxy(t, "http://127.0.0.1:1", Config{}, testLog(t))
	r := httptest.NewRequest("CONNECT", "/", nil)
	r.Host = testCName + ":443"
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status = %d, want 405", w.Code)
	}
	checkErrorBody(t, w.Header(), w.Body.String())
}

// TestAbortedResponseLogged: a backend that breaks off mid-body makes the
// proxy abort the client's response, and the access log says so. The
// answer is not read whole first (BufferResponseBytes -1): one that is
// gets a 502 instead (TestBufferedAnswerBrokenOff).
func TestAbortedResponseLogged(t *testing.T) { forTransports(t, testAbortedResponseLogged) }

func testAbortedResponseLogged(t *testing.T, path seamPath) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		bw.Flush()
	})
	logs := newLogSink()
	front := startFront(t, newProxyVia(t, path, backend.URL, Config{BufferResponseBytes: -1}, logs.logger()))

	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			id := "aborted-" + pr.name
			req := newRequest(t, t.Context(), front, "GET", "/", testCName, nil)
			req.Header.Set("X-Request-Id", id)
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			resp, err := clientFor(t, front, pr.major).Do(req.WithContext(ctx))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Errorf("the client read a complete response; want it cut off")
			}
			line := logs.accessLine(t, id)
			if line[keyAborted] != true || line[keyStatus] != 200.0 {
				t.Errorf("access log %s = %v, %s = %v; want true, 200", keyAborted, line[keyAborted], keyStatus, line[keyStatus])
			}
		})
	}
}
