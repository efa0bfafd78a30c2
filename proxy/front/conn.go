package front

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one client connection, served by one goroutine: the handshake,
// then HTTP/1.1 requests one after the other.
//
// While idle it holds no buffers: the wait for the next request reads one
// byte into first, and the read and write buffers come from pools when
// that byte arrives and go back when the connection is idle again (unless
// the client pipelined the next request, whose bytes are then in the
// read buffer).
type conn struct {
	s    *Server
	raw  net.Conn  // as accepted
	tc   *tls.Conn // raw, with TLS
	idle atomic.Bool

	ctx        context.Context // the values of every request's context
	remoteAddr string
	tlsState   *tls.ConnectionState

	in       reader        // below br: the first byte, the framing guard, the header limit
	br       *bufio.Reader // nil while idle
	bw       *bufio.Writer // nil while idle
	wmu      sync.Mutex    // writes to bw: the response, and 100 Continue from the body
	werr     error         // the first write error; the connection ends
	hijacked bool

	// The watch for a client that leaves while its request is served
	// (watchClient).
	watch    *time.Timer // nil until the first request
	watchMu  sync.Mutex
	cur      *response     // the request being served; guarded by watchMu
	watching chan struct{} // closed when the watch's read returns; nil if none; guarded by watchMu
	peeked   [1]byte
}

func (c *conn) serve() {
	c.tc = tls.Server(c.raw, c.s.tls)
	if !c.s.handshake(c.tc) {
		c.close()
		return
	}
	cs := c.tc.ConnectionState()
	switch cs.NegotiatedProtocol {
	case "", "http/1.1", "http/1.0":
	case "h2":
		c.s.forget(c)
		if !c.s.h2.hand(c.tc) {
			c.tc.Close()
			c.s.connState(c.raw, http.StateClosed)
		}
		return
	default: // acme-tls/1: the handshake was all (net/http does the same)
		c.close()
		return
	}
	c.tlsState = &cs
	c.remoteAddr = c.raw.RemoteAddr().String()
	// ReverseProxy aborts a response it cannot finish by panicking with
	// http.ErrAbortHandler only under a server, which it recognises by
	// ServerContextKey.
	ctx := context.WithValue(context.Background(), http.ServerContextKey, c.s.srv)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.raw.LocalAddr())
	c.ctx = ctx
	c.in.c = c
	// The handshake grew this goroutine's stack to tens of KiB, which a
	// blocked goroutine keeps until a collection shrinks it; the
	// connection, idle most of its life, goes on in a fresh goroutine
	// with a small one (10,000 idle connections: 4.2 KB of stack each
	// instead of 8.2 KB, 20.0 KB resident instead of 26.1 KB). A fresh
	// goroutine for every wait measured no smaller: blocked in a TLS
	// read, a stack takes 4 KiB anyway.
	go c.serveHTTP1()
}

// serveHTTP1 serves the connection's requests, one after the other.
func (c *conn) serveHTTP1() {
	// The first request has the read-header timeout from the handshake
	// on, as in net/http; later ones the idle timeout until their first
	// byte, then the read-header timeout from it.
	wait := c.s.srv.ReadHeaderTimeout
	for {
		if c.br == nil || c.br.Buffered() == 0 {
			if !c.awaitRequest(wait) {
				c.end()
				return
			}
		}
		if !c.serveRequest() {
			c.end()
			return
		}
		wait = c.s.srv.IdleTimeout
		if wait <= 0 {
			wait = c.s.srv.ReadTimeout
		}
	}
}

// end releases the connection once it serves no more requests.
func (c *conn) end() {
	if c.hijacked {
		return // the handler has it
	}
	if c.br != nil {
		putReader(c.br)
		c.br = nil
	}
	c.close()
}

// awaitRequest waits up to d (no limit if zero) for the first byte of a
// request with the buffers in their pools; false if the connection
// should end (the client left or went quiet, or the server drains).
func (c *conn) awaitRequest(d time.Duration) bool {
	if c.br != nil {
		putReader(c.br)
		c.br = nil
	}
	if c.in.pending { // the watch read the first byte
		c.br = getReader(&c.in)
		return !c.s.draining.Load()
	}
	setDeadline(c.tc.SetReadDeadline, d)
	c.idle.Store(true)
	if c.s.draining.Load() {
		return false
	}
	n, err := c.tc.Read(c.in.first[:])
	c.idle.Store(false)
	if n == 0 || err != nil && !errors.Is(err, io.EOF) || c.s.draining.Load() {
		return false
	}
	c.in.pending = true
	c.br = getReader(&c.in)
	return true
}

// serveRequest reads one request, runs the handler and finishes the
// response; false if the connection must end.
func (c *conn) serveRequest() (keep bool) {
	if err := c.in.startHeader(c.s.maxHeaderBytes(), c.br); err != nil {
		c.s.connState(c.raw, http.StateActive)
		c.refuse(err)
		return false
	}
	// The read-header timeout runs from the request's first byte. It is
	// lifted only when the body needs a read from the connection (reader
	// does): a request whose body came with its header, the common case,
	// costs one deadline fewer.
	setDeadline(c.tc.SetReadDeadline, c.s.srv.ReadHeaderTimeout)
	c.in.armed = c.s.srv.ReadHeaderTimeout > 0
	req, err := http.ReadRequest(c.br)
	if err == nil && c.in.err != nil {
		// A check failed on bytes that ReadRequest had read already:
		// the request's own error, whatever ReadRequest made of it.
		err = c.in.err
	}
	if err == nil {
		err = c.in.check(req)
	}
	c.s.connState(c.raw, http.StateActive)
	if err != nil {
		c.refuse(err)
		return false
	}

	w := c.newResponse(req)
	c.armWatch(w)
	ok := c.runHandler(w)
	c.disarmWatch()
	w.ctx.cancel()
	if c.hijacked {
		return false // the handler had it; the server forgot it then
	}
	if !ok {
		return false // the response is cut off: the connection ends
	}
	keep = w.finish()
	if keep {
		c.s.connState(c.raw, http.StateIdle)
	} else if c.werr == nil && (w.body != nil && !w.body.eof.Load() || c.br.Buffered() > 0) {
		// The client may still be sending: the body, or requests
		// after it.
		c.lingerClose()
	}
	return keep
}

// runHandler runs the handler for w; false if it panicked. The panic is
// logged unless it is http.ErrAbortHandler, with which ReverseProxy cuts
// off a response it cannot finish.
func (c *conn) runHandler(w *response) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logf("http: panic serving %v: %v\n%s", c.remoteAddr, p, buf)
			}
		}
	}()
	c.s.srv.Handler.ServeHTTP(w, w.req)
	return true
}

// watchAfter is how long a request runs before the connection is watched
// for the client leaving. net/http's server reads ahead on every request
// for this, which costs a goroutine wake-up and a read that meets EAGAIN
// each time; scoring calls that last long enough to be worth cancelling
// pay it, fast ones do not.
const watchAfter = 10 * time.Millisecond

func (c *conn) armWatch(w *response) {
	c.watchMu.Lock()
	c.cur = w
	c.watchMu.Unlock()
	if c.watch == nil {
		c.watch = time.AfterFunc(watchAfter, c.watchClient)
	} else {
		c.watch.Reset(watchAfter)
	}
}

// disarmWatch stops the watch, waiting for its read to end if one runs.
func (c *conn) disarmWatch() {
	c.watch.Stop()
	c.watchMu.Lock()
	c.cur = nil
	ch := c.watching
	c.watching = nil
	c.watchMu.Unlock()
	if ch != nil {
		c.tc.SetReadDeadline(aLongTimeAgo)
		<-ch
		c.tc.SetReadDeadline(time.Time{})
	}
}

// watchClient runs watchAfter into a request: once its body has been read
// (nothing else reads the connection then), it reads the connection until
// the request ends. The client closing or resetting the connection
// cancels the request's context, as net/http's background read does; a
// byte read is the next request's first, kept for it.
func (c *conn) watchClient() {
	c.watchMu.Lock()
	w := c.cur
	if w == nil || c.watching != nil || w.body != nil && !w.body.eof.Load() || c.br.Buffered() > 0 {
		c.watchMu.Unlock()
		return
	}
	done := make(chan struct{})
	c.watching = done
	c.watchMu.Unlock()
	defer close(done)
	c.tc.SetReadDeadline(time.Time{}) // the read-header deadline may still be set
	n, err := c.tc.Read(c.peeked[:])
	if n > 0 {
		c.in.first[0], c.in.pending = c.peeked[0], true
		return
	}
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		w.ctx.cancel()
	}
}

// cancelRequest ends the context of the request being served, if any.
func (c *conn) cancelRequest() {
	c.watchMu.Lock()
	w := c.cur
	c.watchMu.Unlock()
	if w != nil {
		w.ctx.cancel()
	}
}

// Bounds of a lingering close (see lingerClose). The time is RFC 9112's
// "reasonably certain" made generous: enough for a client on a slow link
// to finish an upload of several MB and read the answer; the size is
// above the 10 MB that Node's fetch was seen to send before reading, and
// about what 5 s bring at 100 Mbit/s.
const (
	lingerTime  = 5 * time.Second
	lingerBytes = 64 << 20
)

// lingerClose ends a connection on which the client may still be
// sending (a body the handler did not read, a request refused before
// its end, requests pipelined after a Connection: close): it sends the
// buffered answer, then TLS close_notify and a TCP FIN, and reads and
// drops what the client still sends until the client closes, or for
// lingerTime, or lingerBytes, whichever comes first; the caller then
// closes. Closing with unread bytes at once makes the kernel send a
// reset, and a client still writing (Node's fetch, Go's client: they
// write the whole body before reading) then loses the answer it had not
// read yet, or never gets to read it (ECONNRESET).
//
// net/http's server (closeWriteAndWait) sends the FIN and then only
// sleeps rstAvoidanceDelay, 500 ms, without reading, and only after an
// over-limit or closed body; RFC 9112 section 9.6 (RFC 7230 section 6.6,
// which its comment quotes) asks a server to go on reading until the
// client closes or until it is reasonably certain the client has the
// answer. Reading is what lets a client that writes before it reads get
// to its read. This runs after the handler returned, so no handler or
// backend slot is held; the connection still counts as active, so that
// Shutdown waits for it (at most lingerTime) and Close ends it at once.
func (c *conn) lingerClose() {
	c.tc.SetWriteDeadline(time.Now().Add(time.Second))
	c.tc.CloseWrite() // close_notify
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() // FIN
	}
	c.tc.SetReadDeadline(time.Now().Add(c.s.lingerTime()))
	n := c.s.lingerBytes()
	if c.br != nil {
		n -= int64(c.br.Buffered())
		c.br.Discard(c.br.Buffered())
	}
	if n > 0 {
		io.CopyN(io.Discard, c.tc, n)
	}
}

// close ends the connection (with a TLS close_notify once the handshake
// is done) and its accounting.
func (c *conn) close() {
	if c.tc != nil {
		c.tc.Close()
	} else {
		c.raw.Close()
	}
	c.s.forget(c)
	c.s.connState(c.raw, http.StateClosed)
}

func (s *Server) maxHeaderBytes() int {
	if s.srv.MaxHeaderBytes > 0 {
		return s.srv.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

func setDeadline(set func(time.Time) error, d time.Duration) {
	if d > 0 {
		set(time.Now().Add(d))
	} else {
		set(time.Time{})
	}
}

// The buffers of active connections, 4 KiB each as net/http's.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func getReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}
