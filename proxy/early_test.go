package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// An early answer is one that is complete before the request body has
// been read: scoregate's own 401 and 413, or a backend's that did not
// read the body. The client must get it, not a reset, however much body
// it still sends.

// earlyUpload is the body size of the early-answer tests: what Node's
// fetch sent when the answers were lost.
const earlyUpload = 10 << 20

// earlyTries is how many times each early answer must arrive: the loss
// was a race, seen in 11 of 16 tries.
const earlyTries = 16

// answerWithin bounds the wait for an answer that needs no body: well
// under the 5 s that front gave an unread body before.
const answerWithin = 2 * time.Second

// earlyCase is a request answered before its body is read.
type earlyCase struct {
	name    string
	cfg     Config
	header  string // extra request header lines
	chunked bool   // the body goes chunked (HTTP/1.1) or unsized (HTTP/2)
	want    int
}

var earlyCases = []earlyCase{
	{name: "401 wrong key", cfg: Config{Auth: NewKeySet([]string{"right"})}, header: "Authorization: Bearer wrong\r\n", want: 401},
	{name: "413 declared length over the limit", cfg: Config{MaxBodyBytes: 1 << 20}, want: 413},
	{name: "413 chunked body over the limit", cfg: Config{MaxBodyBytes: 1 << 20}, chunked: true, want: 413},
}

// uploadFirst is a client as Node's fetch is: it writes the whole
// request, header and body, and only then reads the answer.
func uploadFirst(t *testing.T, front *httptest.Server, header string, chunked bool) (status int, err error) {
	t.Helper()
	c := dialFront(t, front)
	defer c.Close()
	body := earlyContentLength()
	if chunked {
		body = earlyChunked()
	}
	if _, err := io.WriteString(c, "POST /score HTTP/1.1\r\nHost: "+testCName+"\r\n"+header); err != nil {
		return 0, fmt.Errorf("writing the request: %w", err)
	}
	if _, err := io.WriteString(c, body); err != nil {
		return 0, fmt.Errorf("writing the request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer's body: %w", err)
	}
	return resp.StatusCode, nil
}

// The rest of an early request after its own header lines, made once:
// the framing header and earlyUpload bytes of body, by Content-Length or
// in 64 KiB chunks.
var (
	earlyContentLength = sync.OnceValue(func() string {
		return fmt.Sprintf("Content-Length: %d\r\n\r\n", earlyUpload) + strings.Repeat("b", earlyUpload)
	})
	earlyChunked = sync.OnceValue(func() string {
		var b strings.Builder
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		chunk := strings.Repeat("b", 64<<10)
		for left := earlyUpload; left > 0; left -= len(chunk) {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	})
)

// TestEarlyAnswerHTTP1: a client that writes its whole 10 MB body before
// reading gets scoregate's early 401 and 413, every time.
func TestEarlyAnswerHTTP1(t *testing.T) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	for _, tt := range earlyCases {
		t.Run(tt.name, func(t *testing.T) {
			front := startFront(t, newTestProxy(t, backend.URL, tt.cfg, testLog(t)))
			for i := range earlyTries {
				status, err := uploadFirst(t, front, tt.header, tt.chunked)
				if err != nil || status != tt.want {
					t.Fatalf("try %d of %d: status %d, %v; want %d", i+1, earlyTries, status, err, tt.want)
				}
			}
		})
	}
}

// TestEarlyAnswerFromBackendHTTP1: a backend's answer sent without
// reading the body (a 404 for a wrong path) reaches a client that writes
// its whole 10 MB body before reading, every time, on every path.
func TestEarlyAnswerFromBackendHTTP1(t *testing.T) {
	forTransports(t, func(t *testing.T, path seamPath) {
		backend := startBackend(t, http.NotFound)
		front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
		for i := range earlyTries {
			status, err := uploadFirst(t, front, "", false)
			if err != nil || status != http.StatusNotFound {
				t.Fatalf("try %d of %d: status %d, %v; want 404", i+1, earlyTries, status, err)
			}
		}
	})
}

// TestEarlyAnswerHTTP2: the same early answers over HTTP/2, to Go's
// client writing a 10 MB body: net/http's server ends the stream with
// RST_STREAM NO_ERROR after the answer (RFC 9113 section 8.1), which the
// client takes as the end of the upload, not as an error.
func TestEarlyAnswerHTTP2(t *testing.T) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	body := bytes.Repeat([]byte("b"), earlyUpload)
	for _, tt := range earlyCases {
		t.Run(tt.name, func(t *testing.T) {
			front := startFront(t, newTestProxy(t, backend.URL, tt.cfg, testLog(t)))
			c := clientFor(t, front, 2)
			for i := range earlyTries {
				var r io.Reader = bytes.NewReader(body)
				if tt.chunked {
					r = unsized{r}
				}
				req := newRequest(t, t.Context(), front, "POST", "/score", testCName, r)
				if tt.header != "" {
					k, v, _ := strings.Cut(strings.TrimSuffix(tt.header, "\r\n"), ": ")
					req.Header.Set(k, v)
				}
				if status, err := doEarly(c, req); err != nil || status != tt.want {
					t.Fatalf("try %d of %d: status %d, %v; want %d", i+1, earlyTries, status, err, tt.want)
				}
			}
		})
	}
}

// TestEarlyAnswerFromBackendHTTP2: a backend's early 404 reaches an
// HTTP/2 client writing a 10 MB body, every time, on every path.
func TestEarlyAnswerFromBackendHTTP2(t *testing.T) {
	body := bytes.Repeat([]byte("b"), earlyUpload)
	forTransports(t, func(t *testing.T, path seamPath) {
		backend := startBackend(t, http.NotFound)
		front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, testLog(t)))
		c := clientFor(t, front, 2)
		for i := range earlyTries {
			req := newRequest(t, t.Context(), front, "POST", "/score", testCName, bytes.NewReader(body))
			if status, err := doEarly(c, req); err != nil || status != http.StatusNotFound {
				t.Fatalf("try %d of %d: status %d, %v; want 404", i+1, earlyTries, status, err)
			}
		}
	})
}

// doEarly sends req within waitLimit and reads the whole answer.
func doEarly(c *http.Client, req *http.Request) (int, error) {
	ctx, cancel := context.WithTimeout(req.Context(), waitLimit)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer's body: %w", err)
	}
	return resp.StatusCode, nil
}

// TestEarlyBodyLimitAtOnce: a request whose declared Content-Length is
// over MaxBodyBytes gets 413 as soon as its header has arrived, with no
// byte of the body sent, over HTTP/1.1 (with and without Expect:
// 100-continue, and for a length front would otherwise read and drop to
// keep the connection) and HTTP/2.
func TestEarlyBodyLimitAtOnce(t *testing.T) {
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	const limit = 1 << 10
	front := startFront(t, newTestProxy(t, backend.URL, Config{MaxBodyBytes: limit}, testLog(t)))
	for _, tt := range []struct {
		name   string
		header string
	}{
		{"10 MB declared", fmt.Sprintf("Content-Length: %d\r\n", earlyUpload)},
		{"one byte over the limit declared", fmt.Sprintf("Content-Length: %d\r\n", limit+1)},
		{"10 MB declared, Expect: 100-continue", fmt.Sprintf("Content-Length: %d\r\nExpect: 100-continue\r\n", earlyUpload)},
	} {
		t.Run("HTTP/1.1/"+tt.name, func(t *testing.T) {
			c := dialFront(t, front)
			io.WriteString(c, "POST /score HTTP/1.1\r\nHost: "+testCName+"\r\n"+tt.header+"\r\n")
			c.SetReadDeadline(time.Now().Add(answerWithin))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer within %v: %v", answerWithin, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
				t.Errorf("status %d, Connection: close %v; want 413, close", resp.StatusCode, resp.Close)
			}
		})
	}
	t.Run("HTTP/2/10 MB declared", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close() // the body is never sent
		req := newRequest(t, t.Context(), front, "POST", "/score", testCName, pr)
		req.ContentLength = earlyUpload
		ctx, cancel := context.WithTimeout(t.Context(), answerWithin)
		defer cancel()
		resp, err := clientFor(t, front, 2).Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("no answer within %v: %v", answerWithin, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	})
}

// startClosingBackend is a backend as a one-worker server may be: it
// reads a request's head, answers 404 and closes the connection at once,
// the body unread, so that the proxy's write of the body then fails
// (EPIPE or a reset) while the answer waits to be read.
func startClosingBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitLimit))
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 404 NOT FOUND\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// TestEarlyAnswerFromClosingBackend: a backend that answers before
// reading the body and closes at once has its answer relayed, not a 502
// for the body it no longer takes, over HTTP/1.1 and HTTP/2, every time.
// Only the paths over h1: net/http's Transport (https backends and
// upgrades) reports the failed write instead of the answer
// (golang/go#51109).
func TestEarlyAnswerFromClosingBackend(t *testing.T) {
	body := bytes.Repeat([]byte("b"), earlyUpload)
	for _, path := range []seamPath{pathDirect, pathReverseProxyH1} {
		for _, pr := range protos {
			t.Run(fmt.Sprintf("%s/%s", paths[path].name, pr.name), func(t *testing.T) {
				front := startFront(t, newProxyVia(t, path, startClosingBackend(t), Config{}, testLog(t)))
				c := clientFor(t, front, 2)
				for i := range earlyTries {
					var status int
					var err error
					if pr.major == 1 {
						status, err = uploadFirst(t, front, "", false)
					} else {
						status, err = doEarly(c, newRequest(t, t.Context(), front, "POST", "/score", testCName, bytes.NewReader(body)))
					}
					if err != nil || status != http.StatusNotFound {
						t.Fatalf("try %d of %d: status %d, %v; want 404", i+1, earlyTries, status, err)
					}
				}
			})
		}
	}
}
