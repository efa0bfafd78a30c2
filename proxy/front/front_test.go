package front

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echo answers with the request's method, target and body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.RequestURI, b)
})

// TestKeepAlive: requests from net/http's client reuse one connection,
// and the request carries what handlers rely on: RemoteAddr, TLS, the
// server in its context.
func TestKeepAlive(t *testing.T) {
	var srv *http.Server
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.ServerName != testName || r.RemoteAddr == "" || r.Context().Value(http.ServerContextKey) != srv {
			t.Errorf("request: TLS %v, RemoteAddr %q, server in context %v", r.TLS, r.RemoteAddr, r.Context().Value(http.ServerContextKey) != nil)
		}
		echo(w, r)
	}), func(s *http.Server) { srv = s })
	c := client(t, ts.addr, 1)
	var reused []bool
	for i := range 3 {
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = append(reused, ci.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "POST", "https://"+testName+"/score", strings.NewReader(fmt.Sprint(i)))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST /score %d", i); string(b) != want || resp.Proto != "HTTP/1.1" {
			t.Errorf("%s answer %q, want HTTP/1.1 %q", resp.Proto, b, want)
		}
	}
	if fmt.Sprint(reused) != "[false true true]" {
		t.Errorf("connection reused: %v, want [false true true]", reused)
	}
}

// TestPipelining: requests sent at once are answered in order on the
// connection, bodies framed by Content-Length and chunked alike.
func TestPipelining(t *testing.T) {
	ts := start(t, echo, nil)
	raw := request("GET", "/a", "") +
		request("POST", "/b", "Content-Length: 2\r\n") + "bb" +
		request("GET", "/c", "")
	ex := rawExchange(t, ts.addr, raw, 3)
	if got := strings.Join(ex.bodies, "|"); got != "GET /a |POST /b bb|GET /c " {
		t.Errorf("answers %q (%v)", got, ex.err)
	}
	if ex.closed {
		t.Error("the connection was closed; want it kept")
	}
}

// TestExpectContinue: 100 Continue is sent when the handler first reads
// the body, and only then; a handler that never reads it answers without
// one and the connection ends (the client never sent the body); an
// expectation other than 100-continue is 417.
func TestExpectContinue(t *testing.T) {
	ignore := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "no thanks") })
	mux := http.NewServeMux()
	mux.Handle("/read", echo)
	mux.Handle("/ignore", ignore)
	ts := start(t, mux, nil)

	t.Run("read", func(t *testing.T) {
		c := dial(t, ts.addr)
		io.WriteString(c, request("POST", "/read", "Expect: 100-continue\r\nContent-Length: 3\r\n"))
		ex := readResponses(c, 1)
		if len(ex.resps) != 1 || ex.resps[0].StatusCode != 100 {
			t.Fatalf("first answer: %v %v, want 100 Continue", ex.resps, ex.err)
		}
		io.WriteString(c, "abc")
		ex = readResponses(c, 1)
		if len(ex.bodies) != 1 || ex.bodies[0] != "POST /read abc" {
			t.Fatalf("answer %q (%v)", ex.bodies, ex.err)
		}
	})
	t.Run("never read", func(t *testing.T) {
		ex := rawExchange(t, ts.addr, request("POST", "/ignore", "Expect: 100-continue\r\nContent-Length: 3\r\n"), -1)
		if len(ex.resps) != 1 || ex.resps[0].StatusCode != 200 || !ex.closed {
			t.Fatalf("answers %v, closed %v (%v); want one 200, then the connection closed", ex.resps, ex.closed, ex.err)
		}
		if !ex.resps[0].Close {
			t.Error("the answer lacks Connection: close")
		}
	})
	t.Run("other expectation", func(t *testing.T) {
		ex := rawExchange(t, ts.addr, request("POST", "/read", "Expect: 200-ok\r\nContent-Length: 3\r\n")+"abc", -1)
		if len(ex.resps) != 1 || ex.resps[0].StatusCode != 417 || !ex.closed {
			t.Fatalf("answers %v, closed %v; want 417, closed", ex.resps, ex.closed)
		}
	})
}

// TestRefusals: requests refused before any handler runs, each answered
// as net/http answers it and the connection closed.
func TestRefusals(t *testing.T) {
	var ran atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1) })
	ts := start(t, h, func(s *http.Server) { s.MaxHeaderBytes = 1 << 10 })
	for _, tt := range []struct {
		name, raw string
		want      int
	}{
		{"header over MaxHeaderBytes+4096: 431", request("GET", "/", "X-Big: "+strings.Repeat("b", 6<<10)+"\r\n"), 431},
		{"no Host: 400", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts: 400", request("GET", "/", "Host: other.example\r\n"), 400},
		{"malformed Host: 400", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"HTTP/2.0 request line: 505", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"unsupported transfer coding: 501", request("POST", "/", "Transfer-Encoding: gzip\r\n"), 501},
		{"two transfer codings: 501", request("POST", "/", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 501},
		{"obs-fold: 400", request("GET", "/", "X-A: a\r\n b\r\n"), 400},
		{"bare LF: 400", "GET / HTTP/1.1\nHost: " + testName + "\n\n", 400},
		{"bare CR: 400", request("GET", "/", "X-A: a\rb\r\n"), 400},
		{"NUL in a value: 400", request("GET", "/", "X-A: a\x00b\r\n"), 400},
		{"space before the colon: 400", request("GET", "/", "X-A : a\r\n"), 400},
		{"garbage: 400", "HELLO\r\n\r\n", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ran.Load()
			ex := rawExchange(t, ts.addr, tt.raw, -1)
			if len(ex.resps) != 1 || ex.resps[0].StatusCode != tt.want {
				t.Fatalf("answers %v (%v), want one %d", ex.resps, ex.err, tt.want)
			}
			if !ex.closed {
				t.Error("connection kept; want it closed")
			}
			if ran.Load() != before {
				t.Error("the handler ran")
			}
		})
	}
}

// TestReadHeaderTimeout: a request whose header does not arrive within
// the timeout, counted from its first byte, ends the connection without
// an answer; a connection idle for longer than that timeout (but within
// the idle timeout) is served.
func TestReadHeaderTimeout(t *testing.T) {
	const headerTimeout = 50 * time.Millisecond
	ts := start(t, echo, func(s *http.Server) {
		s.ReadHeaderTimeout = headerTimeout
		s.IdleTimeout = waitLimit
	})
	t.Run("stalled header", func(t *testing.T) {
		c := dial(t, ts.addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testName+"\r\n")
		ex := readResponses(c, -1)
		if len(ex.resps) != 0 || !ex.closed {
			t.Errorf("answers %v, closed %v (%v); want none, closed", ex.resps, ex.closed, ex.err)
		}
	})
	t.Run("idle longer than the header timeout", func(t *testing.T) {
		c := dial(t, ts.addr)
		io.WriteString(c, request("GET", "/1", ""))
		if ex := readResponses(c, 1); len(ex.resps) != 1 {
			t.Fatalf("first request: %v", ex.err)
		}
		time.Sleep(3 * headerTimeout) // idle: the behaviour under test
		io.WriteString(c, request("GET", "/2", ""))
		if ex := readResponses(c, 1); len(ex.bodies) != 1 || ex.bodies[0] != "GET /2 " {
			t.Fatalf("second request after idling: %q %v", ex.bodies, ex.err)
		}
	})
}

// TestIdleTimeout: an idle connection is closed after the idle timeout.
func TestIdleTimeout(t *testing.T) {
	ts := start(t, echo, func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
	ex := rawExchange(t, ts.addr, request("GET", "/", ""), -1)
	if len(ex.resps) != 1 || !ex.closed {
		t.Fatalf("answers %d, closed %v (%v); want 1, then closed", len(ex.resps), ex.closed, ex.err)
	}
}

// TestUnreadBody: a short body the handler left unread is read and
// dropped, and the connection kept; a long one ends the connection.
func TestUnreadBody(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), nil)
	for _, tt := range []struct {
		name string
		size int
		kept bool
	}{
		{"1 KiB", 1 << 10, true},
		{"1 MiB", 1 << 20, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			go io.WriteString(c, request("POST", "/", fmt.Sprintf("Content-Length: %d\r\n", tt.size))+strings.Repeat("x", tt.size)+request("GET", "/next", ""))
			ex := readResponses(c, 2)
			if kept := len(ex.resps) == 2; kept != tt.kept {
				t.Errorf("answers %d (%v); want the connection kept: %v", len(ex.resps), ex.err, tt.kept)
			}
		})
	}
}

// TestHTTP10: an HTTP/1.0 request is answered in HTTP/1.0 and its
// connection closed.
func TestHTTP10(t *testing.T) {
	ts := start(t, echo, nil)
	ex := rawExchange(t, ts.addr, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", -1)
	if len(ex.resps) != 1 || ex.resps[0].Proto != "HTTP/1.0" || ex.bodies[0] != "GET /old " || !ex.closed {
		t.Fatalf("answers %v %q, closed %v (%v)", ex.resps, ex.bodies, ex.closed, ex.err)
	}
}

// TestHijack: a handler can take the connection over, with what the
// client sent after the request.
func TestHijack(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		line, _ := brw.ReadString('\n')
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\necho: " + line)
		brw.Flush()
	}), nil)
	ex := rawExchange(t, ts.addr, request("GET", "/", "Upgrade: echo\r\nConnection: Upgrade\r\n")+"hello\n", 1)
	if len(ex.resps) != 1 || ex.resps[0].StatusCode != 101 {
		t.Fatalf("answers %v (%v)", ex.resps, ex.err)
	}
}

// TestPanic: a handler's panic ends its connection and is logged (not
// http.ErrAbortHandler's); the server goes on serving.
func TestPanic(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "fine")
	}), nil)
	for _, path := range []string{"/panic", "/abort"} {
		ex := rawExchange(t, ts.addr, request("GET", path, ""), -1)
		if path == "/panic" && len(ex.resps) != 0 || !ex.closed && ex.err == nil {
			t.Errorf("%s: answers %v, closed %v (%v); want the connection ended", path, ex.resps, ex.closed, ex.err)
		}
	}
	if ex := rawExchange(t, ts.addr, request("GET", "/", ""), 1); len(ex.bodies) != 1 || ex.bodies[0] != "fine" {
		t.Errorf("after the panics: %q %v", ex.bodies, ex.err)
	}
	if logs := ts.log.String(); !strings.Contains(logs, "panic serving") || !strings.Contains(logs, "boom") || strings.Count(logs, "panic serving") != 1 {
		t.Errorf("log %q; want the one panic (boom) logged", logs)
	}
}

// TestClientGone: a client that leaves while its request waits on a
// slow backend cancels the request's context.
func TestClientGone(t *testing.T) {
	canceled := make(chan struct{})
	arrived := make(chan struct{})
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		close(arrived)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(waitLimit):
		}
	}), nil)
	c := dial(t, ts.addr)
	io.WriteString(c, request("POST", "/", "Content-Length: 2\r\n")+"{}")
	<-arrived
	c.Close()
	select {
	case <-canceled:
	case <-time.After(waitLimit):
		t.Fatal("the request's context was not canceled after the client left")
	}
}

// TestNotHTTPS: plain HTTP on the TLS port gets net/http's 400 and the
// handshake error line the handshake metrics read.
func TestNotHTTPS(t *testing.T) {
	ts := start(t, echo, nil)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.0 400 Bad Request") {
		t.Errorf("answer %q", b)
	}
	waitFor(t, "the handshake error line", func() bool {
		return strings.Contains(ts.log.String(), "http: TLS handshake error from 127.0.0.1:")
	})
}

// TestConnState: every connection is reported new once and closed once,
// HTTP/1.1 and HTTP/2 alike, and handshakes that fail too.
func TestConnState(t *testing.T) {
	var open, news atomic.Int64
	ts := start(t, echo, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				news.Add(1)
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
	})
	for _, major := range []int{1, 2} {
		c := client(t, ts.addr, major)
		resp, err := c.Get("https://" + testName + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != major {
			t.Errorf("answered in %s, want major %d", resp.Proto, major)
		}
		c.CloseIdleConnections()
	}
	c, _ := net.Dial("tcp", ts.addr)
	c.Close() // a handshake that fails
	waitFor(t, "every connection closed", func() bool { return news.Load() == 3 && open.Load() == 0 })
}

// TestShutdown: Shutdown closes idle connections at once and lets an
// active request finish, its answer marked Connection: close.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{})
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		io.WriteString(w, "done")
	}), nil)
	idle := dial(t, ts.addr)
	io.WriteString(idle, request("GET", "/", ""))
	if ex := readResponses(idle, 1); len(ex.resps) != 1 {
		t.Fatal(ex.err)
	}
	busy := dial(t, ts.addr)
	io.WriteString(busy, request("GET", "/slow", ""))
	<-arrived

	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	if ex := readResponses(idle, -1); !ex.closed {
		t.Errorf("idle connection: %v; want it closed", ex.err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	ex := readResponses(busy, -1)
	if len(ex.resps) != 1 || ex.bodies[0] != "done" || !ex.resps[0].Close || !ex.closed {
		t.Errorf("active request: %v %q closed %v (%v); want done, Connection: close, closed", ex.resps, ex.bodies, ex.closed, ex.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Error("the listener still accepts")
	}
}

// TestShutdownLeavesHijacked: a hijacked connection is the handler's, as
// under net/http: Shutdown does not wait for it.
func TestShutdownLeavesHijacked(t *testing.T) {
	release := make(chan struct{})
	hijacked := make(chan struct{})
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		close(hijacked)
		<-release
	}), nil)
	defer close(release)
	c := dial(t, ts.addr)
	io.WriteString(c, request("GET", "/", "Upgrade: x\r\nConnection: Upgrade\r\n"))
	<-hijacked
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v with only a hijacked connection open", err)
	}
}

// TestPipelinedFraming: the strict framing holds for every request of a
// connection: a bare LF, a bare CR or obsolete line folding in the second
// of two requests sent in one write (so that its bytes are in the read
// buffer before it is parsed) is 400 and closes, as in the first.
func TestPipelinedFraming(t *testing.T) {
	var ran atomic.Int32
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		echo(w, r)
	}), nil)
	first := request("GET", "/first", "")
	for _, tt := range []struct{ name, second string }{
		{"bare LF ending the request line", "GET /second HTTP/1.1\nHost: " + testName + "\r\n\r\n"},
		{"bare LF ending a field line", request("GET", "/second", "X-A: a\n")},
		{"bare LF ending the header", "GET /second HTTP/1.1\r\nHost: " + testName + "\r\n\n"},
		{"bare CR in a field line", request("GET", "/second", "X-A: a\rb\r\n")},
		{"obs-fold", request("GET", "/second", "X-A: a\r\n b\r\n")},
		{"obs-fold with a tab", request("GET", "/second", "X-A: a\r\n\tb\r\n")},
		{"after a body", request("POST", "/second", "Content-Length: 3\r\n") + "abc" + request("GET", "/third", "X-A: a\r\n b\r\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ran.Store(0)
			ex := rawExchange(t, ts.addr, first+tt.second, -1)
			var got []int
			for _, resp := range ex.resps {
				got = append(got, resp.StatusCode)
			}
			want := []int{200, 400}
			if strings.HasPrefix(tt.name, "after a body") {
				want = []int{200, 200, 400}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || !ex.closed {
				t.Fatalf("statuses %v, closed %v (%v); want %v, then closed", got, ex.closed, ex.err, want)
			}
			if n := int(ran.Load()); n != len(want)-1 {
				t.Errorf("the handler ran %d times, want %d", n, len(want)-1)
			}
		})
	}
}

// uploadFirst writes head and then size bytes of body on c before it
// reads anything, as Node's fetch and Go's client do, and returns the
// write's error.
func uploadFirst(c net.Conn, head string, size int) error {
	if _, err := io.WriteString(c, head); err != nil {
		return err
	}
	chunk := []byte(strings.Repeat("b", 64<<10))
	for size > 0 {
		n, err := c.Write(chunk[:min(size, len(chunk))])
		if err != nil {
			return err
		}
		size -= n
	}
	return nil
}

// TestEarlyAnswer: an answer sent before the body was read reaches a
// client that writes its whole 10 MB body before it reads, every time:
// the connection ends with a lingering close, not a reset.
func TestEarlyAnswer(t *testing.T) {
	const size = 10 << 20
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "no key")
	}), nil)
	for _, tt := range []struct{ name, head string }{
		{"Content-Length", request("POST", "/", fmt.Sprintf("Content-Length: %d\r\n", size))},
		{"chunked", request("POST", "/", "Transfer-Encoding: chunked\r\n") + fmt.Sprintf("%x\r\n", size)},
		{"HTTP/1.0", fmt.Sprintf("POST / HTTP/1.0\r\nContent-Length: %d\r\n\r\n", size)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 16 {
				c := dial(t, ts.addr)
				if err := uploadFirst(c, tt.head, size); err != nil {
					t.Fatalf("try %d: writing the request: %v", i+1, err)
				}
				ex := readResponses(c, -1)
				if len(ex.resps) != 1 || ex.resps[0].StatusCode != 401 || ex.bodies[0] != "no key" || !ex.closed {
					t.Fatalf("try %d: answers %v %q, closed %v (%v); want the 401, then closed", i+1, ex.resps, ex.bodies, ex.closed, ex.err)
				}
				c.Close()
			}
		})
	}
}

// TestLingerBounded: the lingering close reads for a bounded time and a
// bounded size. A client that neither sends nor closes is closed on once
// the time is up; one that sends more than the size is cut off; either
// has the answer first.
func TestLingerBounded(t *testing.T) {
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "early") })
	t.Run("time", func(t *testing.T) {
		ts := start(t, answer, nil)
		ts.lingerFor = int64(50 * time.Millisecond)
		c := dial(t, ts.addr)
		io.WriteString(c, request("POST", "/", "Content-Length: 1048576\r\n")+"some")
		ex := readResponses(c, 1)
		if len(ex.bodies) != 1 || ex.bodies[0] != "early" {
			t.Fatalf("answers %q (%v)", ex.bodies, ex.err)
		}
		// The client goes on holding the connection open, sending
		// nothing: the server must end it.
		c.SetReadDeadline(time.Now().Add(waitLimit))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after the answer: %v, want EOF (the server's close_notify)", err)
		}
		waitFor(t, "the server closing the connection", func() bool {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			return len(ts.conns) == 0
		})
	})
	t.Run("size", func(t *testing.T) {
		ts := start(t, answer, nil)
		ts.lingerMax = 1 << 20
		c := dial(t, ts.addr)
		err := uploadFirst(c, request("POST", "/", "Content-Length: 104857600\r\n"), 100<<20)
		if err == nil {
			t.Fatal("the server read a 100 MB body it had answered; want the connection cut after 1 MiB")
		}
	})
}

// TestShutdownWaitsForLinger: Shutdown waits for a lingering close (the
// client has its answer and is still sending) until the client closes,
// and Close ends it at once.
func TestShutdownWaitsForLinger(t *testing.T) {
	for _, how := range []string{"client closes", "Close"} {
		t.Run(how, func(t *testing.T) {
			ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "early") }), nil)
			ts.lingerFor = int64(waitLimit * 2) // longer than the test may take
			c := dial(t, ts.addr)
			io.WriteString(c, request("POST", "/", "Content-Length: 1048576\r\n")+"some")
			if ex := readResponses(c, 1); len(ex.bodies) != 1 {
				t.Fatalf("no answer: %v", ex.err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- ts.Shutdown(ctx) }()
			// Shutdown closes idle connections within a few ms; this one
			// must be waited for.
			select {
			case err := <-shut:
				t.Fatalf("Shutdown = %v while a connection lingers", err)
			case <-time.After(50 * time.Millisecond):
			}
			switch how {
			case "client closes":
				c.Close()
				if err := <-shut; err != nil {
					t.Errorf("Shutdown = %v", err)
				}
			case "Close":
				cancel()
				if err := <-shut; err != context.Canceled {
					t.Errorf("Shutdown = %v, want context.Canceled", err)
				}
				ts.Close()
			}
			waitFor(t, "the connection closed", func() bool {
				ts.mu.Lock()
				defer ts.mu.Unlock()
				return len(ts.conns) == 0
			})
		})
	}
}
