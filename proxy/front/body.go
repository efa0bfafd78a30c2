package front

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// maxDiscard is how much of a request body the handler did not read is
// read and dropped to keep the connection (net/http's
// maxPostHandlerReadBytes); beyond it, the connection is closed.
const maxDiscard = 256 << 10

// discardTimeout bounds the reading of an unread body without a
// ReadHeaderTimeout.
const discardTimeout = 5 * time.Second

// body is the request body as the handler reads it: it sends 100
// Continue before the first read when the client asked for it, notes
// the end, and its Close leaves the rest for the server to discard (or
// not: ReadRequest's own Close would read a body of any size).
type body struct {
	w           *response
	rc          io.Reader // the body as framed: ReadRequest's, or a chunkedBody
	continueDue atomic.Bool
	eof         atomic.Bool
	read        atomic.Int64 // bytes the handler read
	failed      atomic.Bool  // a read failed: what is left on the wire is not to be read
	closed      atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.continueDue.Load() {
		b.w.sendContinue()
	}
	n, err := b.rc.Read(p)
	b.read.Add(int64(n))
	if err == io.EOF {
		b.eof.Store(true)
	} else if err != nil {
		b.failed.Store(true)
	}
	return n, err
}

func (b *body) Close() error {
	b.closed.Store(true)
	return nil
}

// drained reads what is left of the body, up to maxDiscard and within the
// read-header timeout (or discardTimeout), and reports whether it ended:
// the connection can carry another request. A body whose read failed (a
// timeout, a malformed chunk) is not read again, nor one the client will
// send only after 100 Continue, nor one whose declared length leaves
// maxDiscard or more unread (net/http's "tooBig", which it does not wait
// for either): the connection ends.
func (b *body) drained() bool {
	if b.eof.Load() {
		return true
	}
	if b.failed.Load() || b.continueDue.Load() {
		return false
	}
	if cl := b.w.req.ContentLength; cl > 0 && cl-b.read.Load() >= maxDiscard {
		return false
	}
	c := b.w.c
	d := c.s.srv.ReadHeaderTimeout
	if d <= 0 {
		d = discardTimeout
	}
	c.in.armed = false // this deadline is not to be lifted by reader
	c.tc.SetReadDeadline(time.Now().Add(d))
	n, err := io.CopyN(io.Discard, b.rc, maxDiscard+1)
	c.tc.SetReadDeadline(time.Time{})
	if err == io.EOF && n <= maxDiscard {
		b.eof.Store(true)
		return true
	}
	return false
}

// sendContinue answers Expect: 100-continue, unless the final response
// has begun.
func (w *response) sendContinue() {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if !w.body.continueDue.Swap(false) || w.headSent {
		return
	}
	bw := w.c.writer()
	bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	w.c.flush()
}
