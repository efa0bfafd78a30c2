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

// chunkedCases are chunked request bodies, each sent alone and then
// followed by a probe, that front must read as net/http's server does:
// the same data, the same trailer, the same refusals.
var chunkedCases = map[string]string{
	"one chunk":                      "3\r\nabc\r\n0\r\n\r\n",
	"two chunks with extensions":     "3;a=b\r\nabc\r\n2;c;d=\"e f\"\r\nde\r\n0;last\r\n\r\n",
	"upper-case hex, leading zeros":  "00A\r\n0123456789\r\n0000\r\n\r\n",
	"whitespace after the size":      "3 \t\r\nabc\r\n0\r\n\r\n",
	"trailer fields":                 "3\r\nabc\r\n0\r\nX-Sum: 12\r\nx-other:  two words \r\nX-Sum: 13\r\n\r\n",
	"empty trailer value":            "3\r\nabc\r\n0\r\nX-Empty:\r\n\r\n",
	"trailer of 3 KiB in many lines": "3\r\nabc\r\n0\r\n" + strings.Repeat("X-Many: "+strings.Repeat("m", 90)+"\r\n", 34) + "\r\n",
	// Sent without a Trailer header (see TestChunkedBodiesAsNetHTTP).
	"trailer fields, none declared":   "3\r\nabc\r\n0\r\nX-Sum: 12\r\nX-Other: 2\r\n\r\n",
	"size not hex":                    "zz\r\nabc\r\n0\r\n\r\n",
	"size with a sign":                "+3\r\nabc\r\n0\r\n\r\n",
	"size of 17 hex digits":           "00000000000000003\r\nabc\r\n0\r\n\r\n",
	"empty size":                      "\r\nabc\r\n0\r\n\r\n",
	"whitespace before the extension": "3 ;a\r\nabc\r\n0\r\n\r\n",
	"size line ending in bare LF":     "3\nabc\r\n0\r\n\r\n",
	"bare CR in the size line":        "3\r;a\r\nabc\r\n0\r\n\r\n",
	"data longer than its size":       "3\r\nabcd\r\n0\r\n\r\n",
	"data ending in bare LF":          "3\r\nabc\n0\r\n\r\n",
	"size line of 4 KiB":              "3;" + strings.Repeat("e", 4<<10) + "\r\nabc\r\n0\r\n\r\n",
	"extensions outweighing the data": strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\nx\r\n", 20) + "0\r\n\r\n",
	"trailer field without a colon":   "3\r\nabc\r\n0\r\nX-Sum 12\r\n\r\n",
	"NUL in a trailer value":          "3\r\nabc\r\n0\r\nX-Sum: 1\x002\r\n\r\n",
	"bare CR in a trailer value":      "3\r\nabc\r\n0\r\nX-Sum: 1\r2\r\n\r\n",
	"trailer line of 5 KiB":           "3\r\nabc\r\n0\r\nX-Big: " + strings.Repeat("b", 5<<10) + "\r\n\r\n",
	"obs-fold as the first trailer":   "3\r\nabc\r\n0\r\n X-Sum: 12\r\n\r\n",
	// Accepted by net/http, refused by front: see chunkedDifferences.
	"trailer section ended by a bare LF": "3\r\nabc\r\n0\r\n\n",
	"trailer line ending in bare LF":     "3\r\nabc\r\n0\r\nX-Sum: 12\n\r\n",
	"obs-fold in the trailer":            "3\r\nabc\r\n0\r\nX-Sum: 12\r\n 13\r\n\r\n",
	"trailer name not a token":           "3\r\nabc\r\n0\r\nX Sum: 12\r\n\r\n",
	"space before a trailer colon":       "3\r\nabc\r\n0\r\nX-Sum : 12\r\n\r\n",
	"trailer of 5 KiB in many lines":     "3\r\nabc\r\n0\r\n" + strings.Repeat("X-Many: "+strings.Repeat("m", 90)+"\r\n", 50) + "\r\n",
}

// chunkedDifferences are the chunked bodies front refuses (400, and the
// connection closed) and net/http's server reads, by design: the trailer
// section gets the header's strict framing (see chunkedBody). net/http
// takes a bare LF for CRLF there and unfolds obsolete line folding
// (textproto), and takes a field name with a space in it as it stands.
var chunkedDifferences = map[string]bool{
	"trailer section ended by a bare LF": true,
	"trailer line ending in bare LF":     true,
	"obs-fold in the trailer":            true,
	"trailer name not a token":           true,
	"space before a trailer colon":       true,
}

// readsBody answers with the body it read and the request's trailer, or
// 400 if the body failed (the error in X-Body-Error).
var readsBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.Header().Set("X-Body-Error", err.Error())
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "body failed")
		return
	}
	fmt.Fprintf(w, "%q trailer", b)
	for _, k := range slices.Sorted(maps.Keys(r.Trailer)) {
		fmt.Fprintf(w, " %s=%q", k, r.Trailer[k])
	}
})

// TestChunkedBodiesAsNetHTTP sends every chunked case, followed by a
// probe, to a handler that reads the body and its trailer, on front and
// on net/http's server, and compares what the client reads; the cases
// in chunkedDifferences must instead be refused by front (400, closed)
// and read by net/http.
func TestChunkedBodiesAsNetHTTP(t *testing.T) {
	fs, ns := start(t, readsBody, nil), startNetHTTP(t, readsBody, nil)
	for _, name := range slices.Sorted(maps.Keys(chunkedCases)) {
		declare := "Trailer: X-Sum, X-Declared\r\n"
		if strings.HasSuffix(name, "none declared") {
			declare = ""
		}
		raw := request("POST", "/x", "Transfer-Encoding: chunked\r\n"+declare) + chunkedCases[name] + request("GET", "/probe", "")
		t.Run(name, func(t *testing.T) {
			got, want := sendAll(t, fs.addr, raw), sendAll(t, ns, raw)
			if !chunkedDifferences[name] {
				if g, w := summarizeBody(got), summarizeBody(want); g != w {
					t.Errorf("front:\n%s\nnet/http:\n%s", g, w)
				}
				return
			}
			if len(got.resps) != 1 || got.resps[0].StatusCode != 400 || !got.closed {
				t.Errorf("front:\n%s\nwant one 400, then the connection closed", summarize(got))
			}
			if len(want.resps) == 0 || want.resps[0].StatusCode != 200 {
				t.Errorf("net/http:\n%s\nwant the body read (200): else this is no longer a difference", summarize(want))
			}
		})
	}
}

// summarizeBody is summarize without the body's error text, which is
// each server's own.
func summarizeBody(ex exchange) string {
	for _, resp := range ex.resps {
		resp.Header.Del("X-Body-Error")
	}
	return summarize(ex)
}

// FuzzChunkedBodies sends a chunked body to readsBody on front and on
// net/http's server and compares what the first response says: the data
// and trailer read, or a refusal. Front may refuse where net/http reads
// only with the errors of the trailer framing only front enforces (see
// chunkedDifferences).
func FuzzChunkedBodies(f *testing.F) {
	for _, name := range slices.Sorted(maps.Keys(chunkedCases)) {
		f.Add([]byte(chunkedCases[name]))
	}
	slow := func(s *http.Server) { s.ReadHeaderTimeout = 2 * time.Second }
	fs, ns := start(f, readsBody, slow), startNetHTTP(f, readsBody, slow)
	strictOnly := map[string]bool{}
	for _, err := range []error{errTrailerLF, errTrailerCR, errTrailerFold, errTrailerField, errChunkExt} {
		strictOnly[err.Error()] = true
	}
	f.Fuzz(func(t *testing.T, chunks []byte) {
		raw := request("POST", "/x", "Transfer-Encoding: chunked\r\n") + string(chunks)
		got, want := sendAll(t, fs.addr, raw), sendAll(t, ns, raw)
		g, w := firstAnswer(got), firstAnswer(want)
		if g == w {
			return
		}
		if len(got.resps) > 0 && strictOnly[got.resps[0].Header.Get("X-Body-Error")] {
			return
		}
		t.Errorf("front: %s, net/http: %s, for %q", g, w, chunks)
	})
}

// firstAnswer is the status and body of ex's first response, or "none".
func firstAnswer(ex exchange) string {
	if len(ex.resps) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d %q", ex.resps[0].StatusCode, ex.bodies[0])
}
