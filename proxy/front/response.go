package front

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of one HTTP/1.1 request. Its
// framing follows net/http's server (chunkWriter.writeHeader): a response
// whose handler declared no Content-Length and wrote at most preMax bytes
// in all gets a Content-Length; a longer one is chunked (HTTP/1.1) or
// delimited by closing the connection (HTTP/1.0); HEAD, 1xx, 204 and 304
// carry no body; a missing Date and Content-Type are added. The head and
// a small body leave in one write to the TLS connection, so in one record.
type response struct {
	c    *conn
	req  *http.Request
	ctx  *requestContext
	body *body // nil without one

	header      http.Header
	snap        http.Header // the header as of WriteHeader, if changed since
	status      int
	wroteHeader bool  // a final status was set
	headSent    bool  // the head is in the write buffer; guarded by c.wmu
	done        bool  // the handler returned
	chunked     bool  // the body goes in chunks
	length      int64 // the declared Content-Length; -1 if none
	written     int64 // body bytes written by the handler
	closeAfter  bool  // the connection ends with this response
	trailers    []string
	pre         *[]byte // body held back while its length is unknown
}

// preMax is how much body of unknown length is held back before the head
// is sent, so that a short one gets a Content-Length (net/http's
// bufferBeforeChunkingSize).
const preMax = 2048

var pres = sync.Pool{New: func() any { b := make([]byte, 0, preMax); return &b }}

func (c *conn) newResponse(req *http.Request) *response {
	ctx := &requestContext{Context: c.ctx}
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tlsState
	w := &response{c: c, req: req, ctx: ctx, header: make(http.Header), length: -1}
	// HTTP/1.0 connections are not kept: the proxy closes them anyway
	// (framing.go), and a server may always close.
	w.closeAfter = req.Close || req.ProtoMinor == 0 || c.s.draining.Load() || isH2Preface(req)
	if req.Body != nil && req.Body != http.NoBody {
		w.body = &body{w: w, rc: req.Body}
		if isChunked(req) {
			// Decoded here, not by net/http: see chunkedBody.
			w.body.rc = &chunkedBody{br: c.br, req: req}
		}
		w.body.continueDue.Store(req.ProtoAtLeast(1, 1) && req.ContentLength != 0 && expectsContinue(req))
		req.Body = w.body
	}
	return w
}

// Header returns the header map. Once the status is set, changes no longer
// reach the head: the first call after WriteHeader takes a snapshot, which
// the head is written from, as net/http does (trailers are the changes
// that count, written from the live map at the end).
func (w *response) Header() http.Header {
	if w.wroteHeader && !w.headSent && w.snap == nil {
		w.snap = w.header.Clone()
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if w.c.hijacked {
		w.c.s.logf("http: response.WriteHeader on hijacked connection")
		return
	}
	if w.wroteHeader {
		w.c.s.logf("http: superfluous response.WriteHeader call")
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code)) // as net/http: a programming error
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	if cl := w.header.Get("Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || v < 0 {
			w.c.s.logf("http: invalid Content-Length of %q", cl)
			w.header.Del("Content-Length")
		} else {
			w.length = v
		}
	}
}

// informational sends a 1xx response at once, with the header as it is.
func (w *response) informational(code int) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if w.headSent {
		return
	}
	if code == http.StatusContinue && w.body != nil {
		w.body.continueDue.Store(false)
	}
	bw := w.c.writer()
	w.statusLine(bw, code)
	for k, vv := range w.header {
		if k != "Content-Length" && k != "Transfer-Encoding" {
			writeField(bw, k, vv)
		}
	}
	bw.WriteString("\r\n")
	w.c.flush()
}

func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if w.done {
		return 0, errors.New("http: write after the handler returned")
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headSent {
		if w.length < 0 && w.written <= preMax {
			w.hold(p)
			return len(p), nil
		}
		w.sendHead(p)
	}
	if w.req.Method == http.MethodHead {
		// Not sent; a HEAD response's body is only counted, and held
		// for Content-Type sniffing, as net/http does.
		return len(p), nil
	}
	return w.writeBody(p)
}

// hold keeps p back until the head is sent.
func (w *response) hold(p []byte) {
	if w.pre == nil {
		w.pre = pres.Get().(*[]byte)
	}
	*w.pre = append(*w.pre, p...)
}

// writeBody writes p, as a chunk if chunked.
func (w *response) writeBody(p []byte) (int, error) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	return w.writeBodyLocked(p)
}

// writeBodyLocked is writeBody with c.wmu held.
func (w *response) writeBodyLocked(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		var b [16]byte
		bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.c.werr = err
	}
	return n, err
}

// Flush sends the head and what the handler wrote so far.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush with the write's error, for http.ResponseController.
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(nil)
	}
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	return w.c.flush()
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.tc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.tc.SetWriteDeadline(t) }

// Hijack hands the connection to the handler (ReverseProxy does for a
// protocol switch): the server forgets it.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.c.disarmWatch() // the handler reads the connection from now on
	if w.wroteHeader && !w.headSent {
		w.sendHead(nil)
	}
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	bw := w.c.writer()
	if err := bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.c.hijacked = true
	w.c.tc.SetDeadline(time.Time{})
	// As net/http: a hijacked connection is the handler's, which Shutdown
	// does not wait for and Close does not close.
	w.c.s.forget(w.c)
	w.c.s.connState(w.c.raw, http.StateHijacked)
	return w.c.tc, bufio.NewReadWriter(w.c.br, bw), nil
}

// finish completes the response once the handler has returned and
// reports whether the connection can serve another request.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.done = true
	if !w.headSent {
		w.sendHead(nil)
	}
	c := w.c
	c.wmu.Lock()
	if w.chunked {
		bw := c.bw
		bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			if vv := w.header[k]; len(vv) > 0 {
				writeField(bw, k, vv)
			}
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeField(bw, name, vv)
			}
		}
		bw.WriteString("\r\n")
	}
	c.flush()
	putWriter(c.bw)
	c.bw = nil
	c.wmu.Unlock()
	if w.pre != nil {
		*w.pre = (*w.pre)[:0]
		pres.Put(w.pre)
		w.pre = nil
	}
	if w.length >= 0 && w.written != w.length && w.req.Method != http.MethodHead && bodyAllowed(w.status) {
		return false // the client would read the next response as this body
	}
	if w.body != nil && !w.closeAfter && !w.body.drained() {
		return false
	}
	return !w.closeAfter && c.werr == nil && !c.s.draining.Load()
}

// sendHead puts the head, and any body held back, in the write buffer;
// first is the body's first bytes (for Content-Type sniffing) when none
// was held back.
func (w *response) sendHead(first []byte) {
	h := w.header
	if w.snap != nil {
		h = w.snap
	}
	isHead := w.req.Method == http.MethodHead
	noBody := isHead || !bodyAllowed(w.status)
	var pre []byte
	if w.pre != nil {
		pre = *w.pre
		first = pre
	}

	// Trailers count only when the handler changed the header after
	// WriteHeader (net/http reads them from its snapshot alone).
	w.trailers = w.trailers[:0]
	for _, v := range w.snap["Trailer"] {
		for _, f := range strings.Split(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(f))
			}
		}
	}
	hasPrefixed := false
	for k := range w.snap {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			hasPrefixed = true
			break
		}
	}
	te := h.Get("Transfer-Encoding")
	var autoLength []byte
	if w.done && len(w.trailers) == 0 && !hasPrefixed && te == "" && bodyAllowed(w.status) && w.length < 0 && (!isHead || w.written > 0) {
		w.length = w.written
		autoLength = strconv.AppendInt(make([]byte, 0, 20), w.written, 10)
	}
	if w.length >= 0 && te != "" && te != "identity" {
		w.c.s.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.length)
		w.length = -1
	}
	handlerClose := httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if handlerClose || w.c.s.draining.Load() {
		w.closeAfter = true
	}
	// A body the handler left unread: read it now, before the head, since
	// some clients send the whole request before reading the response
	// (net/http does the same); or, if that is too much, close. Not for a
	// 413: the body is what the handler refused, and the client is to
	// have the answer at once, not after the body (RFC 7231 section
	// 6.5.11: the server may close the connection to stop the client
	// sending it). Either way the connection's end is a lingering close
	// (conn.lingerClose), so that the answer is not lost to a reset.
	if w.body != nil && !w.closeAfter && w.status == http.StatusRequestEntityTooLarge && !w.body.eof.Load() {
		w.closeAfter = true
	}
	if w.body != nil && !w.closeAfter && !w.body.drained() {
		w.closeAfter = true
	}
	switch {
	case noBody:
	case w.length >= 0:
	case w.req.ProtoAtLeast(1, 1) && te != "identity":
		w.chunked = true
	default:
		w.closeAfter = true // the end of the body is the end of the connection
	}

	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w.headSent = true
	bw := c.writer()
	w.statusLine(bw, w.status)
	switchProto := w.status == http.StatusSwitchingProtocols
	for k, vv := range h {
		switch k {
		case "Content-Length":
			if w.length < 0 || w.chunked || autoLength != nil || !bodyAllowed(w.status) {
				continue
			}
		case "Transfer-Encoding":
			continue
		case "Connection":
			if w.closeAfter && !switchProto && !handlerClose {
				continue
			}
		case "Content-Type":
			if w.status == http.StatusNotModified {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || contains(w.trailers, k) {
			continue
		}
		writeField(bw, k, vv)
	}
	if autoLength != nil {
		bw.WriteString("Content-Length: ")
		bw.Write(autoLength)
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	if _, ok := h["Content-Type"]; !ok && bodyAllowed(w.status) && te == "" && h.Get("Content-Encoding") == "" && len(first) > 0 {
		bw.WriteString("Content-Type: ")
		bw.WriteString(http.DetectContentType(first))
		bw.WriteString("\r\n")
	}
	if w.closeAfter && !switchProto && !handlerClose && w.req.ProtoAtLeast(1, 1) {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if len(pre) > 0 && !noBody { // HEAD's held bytes were for sniffing
		w.writeBodyLocked(pre)
	}
}

func (w *response) statusLine(bw *bufio.Writer, code int) {
	line := statusLine(code)
	if w.req.ProtoMinor == 0 {
		bw.WriteString("HTTP/1.0")
		line = line[len("HTTP/1.1"):]
	}
	bw.WriteString(line)
}

// writer returns the connection's write buffer, from the pool if it has
// none; c.wmu is held.
func (c *conn) writer() *bufio.Writer {
	if c.bw == nil {
		c.bw = getWriter(c.tc)
	}
	return c.bw
}

// flush writes the buffer out; c.wmu is held.
func (c *conn) flush() error {
	if c.bw == nil || c.werr != nil {
		return c.werr
	}
	if err := c.bw.Flush(); err != nil {
		c.werr = err
	}
	return c.werr
}
