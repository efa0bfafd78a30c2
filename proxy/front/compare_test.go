package front

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// responseCases are handler behaviours whose responses front must frame
// exactly as net/http's server does.
var responseCases = map[string]http.HandlerFunc{
	"nothing written": func(w http.ResponseWriter, r *http.Request) {},
	"small body":      func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"score":1}`) },
	"2048 bytes":      func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("a", 2048)) },
	"2049 bytes":      func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("a", 2049)) },
	"64 KiB in writes of 1000": func(w http.ResponseWriter, r *http.Request) {
		for range 64 {
			io.WriteString(w, strings.Repeat("b", 1000))
		}
	},
	"Content-Length declared": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
		io.WriteString(w, strings.Repeat("c", 5000))
	},
	"Content-Length declared, less written": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "short")
	},
	"Content-Length declared, more written": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "toolong")
	},
	"flushed, then more": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		io.WriteString(w, "second")
	},
	"flushed before any body": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.(http.Flusher).Flush()
	},
	"204 with a body": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4")
		w.WriteHeader(204)
		io.WriteString(w, "body")
	},
	"304 with Content-Type": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "4")
		w.Header().Set("Etag", `"x"`)
		w.WriteHeader(304)
	},
	"declared trailer": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Score-Time")
		io.WriteString(w, "body")
		w.Header().Set("X-Score-Time", "12ms")
	},
	"prefixed trailer": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	},
	"Connection: close from the handler": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	},
	"sniffed Content-Type": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html><body>hi</body></html>")
	},
	"Content-Encoding, not sniffed": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(w, "\x1f\x8b\x08")
	},
	"suppressed Content-Type": func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html></html>")
	},
	"103 Early Hints, then 200": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(103)
		io.WriteString(w, "final")
	},
	"WriteHeader twice": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		w.WriteHeader(500)
	},
	"Transfer-Encoding: identity": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "identity")
		io.WriteString(w, "till the end")
	},
	"header value with a line break": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Multi", "a\r\nInjected: yes")
		w.Header()["Bad Name"] = []string{"v"}
	},
	"a body left unread": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored the body")
	},
	"the body read": func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d bytes", len(b))
	},
}

// requestCases are the requests each responseCase answers, and a probe
// pipelined after each tells whether the connection was kept.
var requestCases = map[string]string{
	"GET":                       request("GET", "/x", ""),
	"HEAD":                      request("HEAD", "/x", ""),
	"POST with a body":          request("POST", "/x", "Content-Length: 5\r\n") + "abcde",
	"POST chunked":              request("POST", "/x", "Transfer-Encoding: chunked\r\n") + "5\r\nabcde\r\n0\r\n\r\n",
	"GET with Connection close": request("GET", "/x", "Connection: close\r\n"),
	"HTTP/1.0 GET":              "GET /x HTTP/1.0\r\nHost: " + testName + "\r\n\r\n",
}

// TestResponsesAsNetHTTP runs every response case for every request case
// on front and on net/http's server, and compares what the client reads:
// status, protocol, header (Date aside), body, trailer, framing, and
// whether the connection survives.
func TestResponsesAsNetHTTP(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(responseCases)) {
		h := responseCases[name]
		fs := start(t, h, nil)
		ns := startNetHTTP(t, h, nil)
		for _, rname := range slices.Sorted(maps.Keys(requestCases)) {
			raw := requestCases[rname] + request("GET", "/probe", "")
			t.Run(name+"/"+rname, func(t *testing.T) {
				method, _, _ := strings.Cut(raw, " ")
				got := summarize(sendAll(t, fs.addr, raw, method))
				want := summarize(sendAll(t, ns, raw, method))
				if got != want {
					t.Errorf("front:\n%s\nnet/http:\n%s", got, want)
				}
			})
		}
	}
}

// sendAll writes raw on a new connection, ends the client's side (so that
// a server waiting for more reads EOF) and reads every response.
func sendAll(t testing.TB, addr, raw string, methods ...string) exchange {
	c := dial(t, addr)
	io.WriteString(c, raw)
	c.CloseWrite()
	return readResponses(c, -1, methods...)
}

// summarize prints an exchange for comparison.
func summarize(ex exchange) string {
	var b strings.Builder
	for i, resp := range ex.resps {
		h := resp.Header.Clone()
		h.Del("Date")
		if resp.Header.Get("Date") == "" {
			fmt.Fprintf(&b, "(no Date) ")
		}
		fmt.Fprintf(&b, "%d: %s %d len=%d te=%v close=%v\n  header %v\n  body %q trailer %v\n",
			i, resp.Proto, resp.StatusCode, resp.ContentLength, resp.TransferEncoding, resp.Close, h, ex.bodies[i], resp.Trailer)
	}
	fmt.Fprintf(&b, "responses=%d closed=%v failed=%v", len(ex.resps), ex.closed, ex.err != nil && !ex.closed)
	return b.String()
}

// FuzzRequests sends the same bytes to front and to net/http's server
// and compares their verdicts on the first request: the handler ran, or
// the request was refused with the same status, or neither answered.
// Front refuses more, by design: a header with bare LF or CR line ends
// or obsolete line folding is 400 there (see reader).
func FuzzRequests(f *testing.F) {
	for _, s := range []string{
		request("GET", "/", ""),
		request("POST", "/", "Content-Length: 3\r\n") + "abc",
		request("POST", "/", "Transfer-Encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n",
		request("POST", "/", "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n") + "0\r\n\r\n",
		request("POST", "/", "Content-Length: 3\r\nContent-Length: 4\r\n") + "abcd",
		request("POST", "/", "Content-Length: 3, 3\r\n") + "abc",
		request("POST", "/", "Transfer-Encoding: chunked, identity\r\n"),
		request("POST", "/", "Transfer-Encoding: xchunked\r\n"),
		request("POST", "/", "Transfer-Encoding : chunked\r\n"),
		request("POST", "/", "Transfer-Encoding:\tchunked\r\n") + "0\r\n\r\n",
		request("GET", "/", "Expect: 100-continue\r\n"),
		request("GET", "/", "Expect: foo\r\n"),
		request("GET", "http://other.example/", ""),
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: " + testName + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHOST:" + testName + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost-Extra: x\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: " + testName + "\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\nHost: " + testName + "\n\n",
		"GET / HTTP/1.1\r\nHost: " + testName + "\r\nX: a\rb\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: " + testName + "\r\n\r\n",
		"GET /\x00 HTTP/1.1\r\nHost: " + testName + "\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET / HTTP/1.1\r\n: empty\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Ran", "1") })
	slow := func(s *http.Server) { s.ReadHeaderTimeout = 2 * time.Second }
	fs, ns := start(f, h, slow), startNetHTTP(f, h, slow)
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, want := verdict(t, fs.addr, raw), verdict(t, ns, raw)
		if got == want {
			return
		}
		if got == "400" && strictRefusal(raw) {
			return
		}
		t.Errorf("front: %s, net/http: %s, for %q", got, want, raw)
	})
}

// verdict is what the server did with raw's first request: "ran", a
// refusal's status code, or "none".
func verdict(t testing.TB, addr string, raw []byte) string {
	ex := sendAll(t, addr, string(raw))
	switch {
	case len(ex.resps) == 0:
		return "none"
	case ex.resps[0].Header.Get("X-Ran") == "1":
		return "ran"
	}
	return fmt.Sprint(ex.resps[0].StatusCode)
}

// strictRefusal reports whether raw's header has what only front refuses:
// a bare LF or CR, or a line starting with a space or tab.
func strictRefusal(raw []byte) bool {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for i, c := range head {
		switch {
		case c == '\n' && (i == 0 || head[i-1] != '\r'):
			return true
		case c == '\r' && (i+1 == len(head) || head[i+1] != '\n'):
			return true
		case (c == ' ' || c == '\t') && i > 0 && head[i-1] == '\n':
			return true
		}
	}
	return false
}
