package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Why a forwarding path of our own: measured on one core, net/http's TLS
// server answers a keep-alive request in about 29 µs of CPU, while
// forwarding it through httputil.ReverseProxy and http.Transport costs about
// 100 µs more. Most of that is the Transport's design for the general case:
// each backend connection has a read goroutine and a write goroutine, so a
// request crosses goroutines four times, through channels and selects, plus
// the request cloning ReverseProxy does. A sidecar in front of one plain-HTTP
// backend needs none of that: the handler's goroutine writes the request to
// a pooled connection and reads the answer itself.
//
// The direct path serves the common case: an http:// backend without a path
// prefix, and requests that are not protocol upgrades. Everything else
// (https backends, HTTP/2 to the backend, Upgrade) goes through
// ReverseProxy, as before.

// backendConn is one keep-alive connection to the backend.
type backendConn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// pool keeps idle connections to one plain-HTTP backend, most recently
// used first. It is safe for concurrent use.
type pool struct {
	addr        string // host:port, to dial
	host        string // the backend URL's host, for the Host header
	dialer      *net.Dialer
	maxIdle     int
	idleTimeout time.Duration
	// peekAfter is how long a connection must have been idle before get
	// asks the kernel whether the backend closed it. Below it the check is
	// skipped: under load connections are reused within microseconds, and
	// a connection found dead by the request itself is retried.
	peekAfter time.Duration

	mu   sync.Mutex
	idle []*backendConn // stack: the last one is the most recently used
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and
// writes on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// get returns a live idle connection, or dials a new one. reused says
// which.
func (p *pool) get(ctx context.Context) (bc *backendConn, reused bool, err error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		bc = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if bc.alive(p.idleTimeout, p.peekAfter) {
			return bc, true, nil
		}
		bc.nc.Close()
	}
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, false, err
	}
	return &backendConn{nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}, false, nil
}

// alive reports whether an idle connection can carry a request: not idle
// for too long, and, once idle for peekAfter, not closed (or written to)
// by the backend meanwhile.
func (bc *backendConn) alive(idleTimeout, peekAfter time.Duration) bool {
	idle := time.Since(bc.idleSince)
	if idle > idleTimeout || bc.br.Buffered() > 0 {
		return false
	}
	return idle < peekAfter || !peerClosed(bc.nc)
}

// put returns a connection for reuse, or closes it if the pool is full.
func (p *pool) put(bc *backendConn) {
	bc.idleSince = time.Now()
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, bc)
		bc = nil
	}
	p.mu.Unlock()
	if bc != nil {
		bc.nc.Close()
	}
}

// closeIdle closes every idle connection.
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, bc := range idle {
		bc.nc.Close()
	}
}

// direct reports whether r can take the direct path.
func (p *Proxy) direct(r *http.Request) bool {
	return p.pool != nil && r.Header.Get("Upgrade") == ""
}

// hopHeaders are removed in both directions (RFC 9110, 7.6.1), with those
// the Connection header names. The request's framing (Content-Length,
// Transfer-Encoding, Expect) and the headers scoregate sets itself are not
// copied either.
var (
	hopHeaders = map[string]bool{
		"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
		"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
		"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	}
	ownRequestHeaders = map[string]bool{
		"Content-Length": true, "Expect": true, "Host": true,
		"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
		headerRequestID: true, headerMSRequestID: true, headerClientRequestID: true,
	}
)

// connectionListed reports whether the Connection header values name key.
func connectionListed(conn []string, key string) bool {
	for _, v := range conn {
		for f := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == key {
				return true
			}
		}
	}
	return false
}

// forward sends r to the backend over a pooled connection and copies the
// answer to w. Errors before the response starts go to upstreamFailed, as
// ReverseProxy's do; a backend failure after the response has started
// aborts it (http.ErrAbortHandler), as ReverseProxy does.
//
// A small body of known size is read whole first. Then, if a reused
// connection turns out to be dead (the backend closed it while it was idle,
// so the write fails or the read meets EOF before any byte of a response),
// the request is sent once more on a new connection, as http.Transport
// does for a connection the server closed while idle.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, st *reqState, body io.ReadCloser) {
	ctx := r.Context()
	small := body != nil && r.ContentLength >= 0 && r.ContentLength <= syncBodyLimit
	var payload []byte // the whole body, when it is small
	for attempt := 1; ; attempt++ {
		bc, reused, err := p.pool.get(ctx)
		if err != nil {
			p.upstreamFailed(w, r, st, err)
			return
		}
		if small && payload == nil {
			// Read once the backend is reachable, so that a refused
			// connection leaves the body unread.
			buf := p.buffers.Get()
			defer p.buffers.Put(buf)
			n, err := io.ReadFull(body, buf[:r.ContentLength])
			if err != nil {
				p.pool.put(bc)
				p.upstreamFailed(w, r, st, fmt.Errorf("reading the request body: %w", err))
				return
			}
			payload = buf[:n]
		}
		if p.exchange(w, r, st, bc, reused, body, payload) == retryable && attempt == 1 {
			continue
		}
		return
	}
}

// outcome of one exchange.
type exchangeResult int

const (
	done      exchangeResult = iota // answered, or failed with the error written
	retryable                       // a reused connection was dead; nothing was written to w
)

// exchange sends r on bc and copies the answer to w. It owns bc: it
// returns it to the pool or closes it.
func (p *Proxy) exchange(w http.ResponseWriter, r *http.Request, st *reqState, bc *backendConn, reused bool, body io.Reader, payload []byte) exchangeResult {
	ctx := r.Context()
	// A client that leaves unblocks the wait for the backend.
	stop := context.AfterFunc(ctx, func() { bc.nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	keep := false
	defer func() {
		if keep && stop() {
			p.pool.put(bc)
		} else {
			bc.nc.Close()
		}
	}()

	p.writeRequestHead(bc.bw, r, st, body != nil)
	// A small body goes with the head. Others stream from their own
	// goroutine, so that a backend may answer while the client is still
	// sending. That goroutine reports on bodyErr and, if it fails, closes
	// the connection to end the wait for a response the backend will never
	// send. Like http.Transport's writer, it may outlive the handler when
	// the backend answered early; it ends when its next read or write fails
	// on the closed connection.
	var bodyErr chan error
	var err error
	switch {
	case payload != nil || body == nil:
		bc.bw.Write(payload)
		err = bc.bw.Flush()
	default:
		bodyErr = make(chan error, 1)
		go func() {
			err := p.writeBody(bc.bw, body, r.ContentLength)
			bodyErr <- err
			if err != nil {
				bc.nc.Close()
			}
		}()
	}
	if err != nil {
		if reused && bodyErr == nil && ctx.Err() == nil {
			return retryable
		}
		p.upstreamFailed(w, r, st, err)
		return done
	}

	setReadDeadline(ctx, bc, time.Now().Add(p.upstreamTimeout))
	// The first byte apart: EOF before it means the backend had closed the
	// connection, whereas ReadResponse reports any EOF as unexpected.
	_, err = bc.br.Peek(1)
	if reused && bodyErr == nil && err != nil && ctx.Err() == nil && deadConn(err) {
		return retryable
	}
	var resp *http.Response
	if err == nil {
		resp, err = readResponse(bc.br, r)
	}
	st.upstream = time.Since(st.upstreamStart)
	if err != nil {
		if bodyErr != nil {
			select {
			case berr := <-bodyErr:
				if berr != nil {
					err = p.bodyError(r, reused, berr)
				}
			default:
			}
		}
		p.upstreamFailed(w, r, st, err)
		return done
	}
	setReadDeadline(ctx, bc, time.Time{}) // the body may take as long as it needs
	defer resp.Body.Close()

	h := w.Header()
	copyResponseHeader(h, resp.Header)
	st.ids.set(h)
	w.WriteHeader(resp.StatusCode)
	complete, err := p.copyResponse(w, resp)
	if err != nil {
		if ctx.Err() != nil {
			p.log.Debug().Err(err).Str(keyRequestID, st.ids.id).Msg("client left while the response was being copied")
		} else {
			p.log.Error().Err(err).Str(keyRequestID, st.ids.id).Msg("backend response broke off")
		}
		panic(http.ErrAbortHandler)
	}
	if bodyErr != nil {
		select {
		case berr := <-bodyErr:
			complete = complete && berr == nil
		default:
			complete = false // answered before the whole body was sent
		}
	}
	keep = complete && !resp.Close
	return done
}

// setReadDeadline sets bc's read deadline unless the client has left: the
// AfterFunc that unblocks bc when it does may already have run, and its
// deadline in the past must not be overwritten.
func setReadDeadline(ctx context.Context, bc *backendConn, t time.Time) {
	bc.nc.SetReadDeadline(t)
	if ctx.Err() != nil {
		bc.nc.SetDeadline(aLongTimeAgo)
	}
}

// deadConn reports whether a failure to read a response says the
// connection was closed by the backend before it answered: EOF before the
// first byte, or a reset.
func deadConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// syncBodyLimit is the largest request body read whole and sent with the
// head, before the response is read: a scoring request of known size, which
// the backend reads whole before it answers. It fits one copy buffer.
const syncBodyLimit = copyBufferSize

// bodyError maps a failure to send the request to what the client is told:
// an oversized body (413) or a client that left (499) keep their meaning.
func (p *Proxy) bodyError(r *http.Request, reused bool, err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || r.Context().Err() != nil {
		return err
	}
	if reused {
		return fmt.Errorf("writing to a reused backend connection: %w", err)
	}
	return err
}

// writeRequestHead writes the request line and headers of r, as the
// backend gets them.
func (p *Proxy) writeRequestHead(bw *bufio.Writer, r *http.Request, st *reqState, hasBody bool) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(p.pool.host)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if hopHeaders[k] || ownRequestHeaders[k] || (p.auth != nil && k == "Authorization") ||
			(len(conn) > 0 && connectionListed(conn, k)) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		bw.WriteString(host)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-Host: ")
	bw.WriteString(r.Host)
	if r.TLS != nil {
		bw.WriteString("\r\nX-Forwarded-Proto: https\r\n")
	} else {
		bw.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	}
	writeHeaderLine(bw, headerRequestID, st.ids.id)
	writeHeaderLine(bw, headerMSRequestID, st.ids.msID)
	if st.ids.clientID != "" {
		writeHeaderLine(bw, headerClientRequestID, st.ids.clientID)
	}
	switch {
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.ContentLength < 0 && hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeBody sends the request body (chunked when its length is unknown)
// and flushes.
func (p *Proxy) writeBody(bw *bufio.Writer, body io.Reader, length int64) error {
	buf := p.buffers.Get()
	defer p.buffers.Put(buf)
	if length >= 0 {
		n, err := io.CopyBuffer(bw, body, buf)
		if err != nil {
			return err
		}
		if n != length {
			return fmt.Errorf("request body had %d bytes, Content-Length said %d", n, length)
		}
		return bw.Flush()
	}
	// Unknown length: chunked, and flushed after every read, so that a
	// body the client streams reaches the backend as it comes.
	cw := httputil.NewChunkedWriter(bw)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := cw.Write(buf[:n]); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if _, err := bw.WriteString("\r\n"); err != nil { // no trailers
		return err
	}
	return bw.Flush()
}

// readResponse reads the backend's response to r, skipping interim 1xx
// responses (scoregate does not forward Expect, so 100 Continue is not
// owed to the client).
func readResponse(br *bufio.Reader, r *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			resp.Body.Close()
			return nil, errors.New("backend switched protocols without an Upgrade request")
		}
		resp.Body.Close()
	}
}

// copyResponseHeader copies the end-to-end headers of a backend response.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if hopHeaders[k] || (len(conn) > 0 && connectionListed(conn, k)) {
			continue
		}
		dst[k] = vv
	}
}

// copyResponse copies the response body to w. A body without a known
// length (chunked, or until close) is flushed after every read so that
// streamed answers reach the client as they come. complete says the body
// was read to its end, so the connection can carry another request.
func (p *Proxy) copyResponse(w http.ResponseWriter, resp *http.Response) (complete bool, err error) {
	buf := p.buffers.Get()
	defer p.buffers.Put(buf)
	if resp.ContentLength >= 0 {
		_, err = io.CopyBuffer(w, resp.Body, buf)
		return err == nil, err
	}
	rc := http.NewResponseController(w)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false, werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return false, ferr
			}
		}
		if rerr == io.EOF {
			return true, nil
		}
		if rerr != nil {
			return false, rerr
		}
	}
}
