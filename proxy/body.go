package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// clientError marks an error of the client's request body (malformed,
// truncated, stalled, over the limit, or abandoned): the client's fault,
// never the backend's.
type clientError struct{ err error }

func (e *clientError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// errBodyShut is what a read of the request body returns once ServeHTTP has
// ended (a body writer that outlived the exchange).
var errBodyShut = errors.New("request finished")

// clientBody is the request body as the client sends it. It counts the
// bytes read, gives each read the body read timeout, marks its errors as
// the client's, and can be shut so that nothing reads r.Body after
// ServeHTTP has returned (net/http forbids it).
//
// The timeout is a timer of its own, reset before each read, which ends a
// stalled read by setting the read deadline in the past. Setting a future
// deadline instead would cost, on HTTP/2, a message to the connection's
// goroutine and a timer for every request (about 4 µs per request in the
// peers kit); a deadline in the past is applied at once.
type clientBody struct {
	rc      io.ReadCloser // r.Body, or a MaxBytesReader over it
	ctl     *http.ResponseController
	timeout time.Duration
	h1      bool  // HTTP/1.x: a deadline set by the timer is the connection's and is cleared at the end
	length  int64 // as declared; -1 if unknown

	n     atomic.Int64 // bytes read; read by the access log
	shut  atomic.Bool
	eof   atomic.Bool // read to its end
	fired atomic.Bool // the timer set the read deadline in the past

	// mu is held for the duration of each Read of rc, so that shutDown can
	// wait for one in progress.
	mu    sync.Mutex
	timer *time.Timer // nil until the first read

	// sd serialises shutDown, and only its first call acts: a later one
	// (h1's body writer closing the body, with ServeHTTP's own call
	// holding mu) would otherwise set the read deadline unsynchronised,
	// possibly after the handler returned, when net/http's HTTP/2
	// ResponseWriter is nil or serves another stream.
	sd     sync.Mutex
	isShut bool // guarded by sd
}

func (b *clientBody) init(r *http.Request, rc io.ReadCloser, ctl *http.ResponseController, timeout time.Duration) {
	b.rc, b.ctl, b.timeout = rc, ctl, timeout
	b.h1 = r.ProtoMajor < 2
	b.length = r.ContentLength
}

// Read reads from the client with the body read timeout. A stall longer
// than the timeout fails with a timeout error (408).
func (b *clientBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut.Load() {
		return 0, &clientError{errBodyShut}
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	b.arm()
	n, err := b.rc.Read(p)
	total := b.n.Add(int64(n))
	if err == io.EOF || (err == nil && b.length >= 0 && total == b.length) {
		b.finished()
	}
	if err != nil && err != io.EOF {
		if b.fired.Load() {
			err = errBodyStalled
		}
		err = &clientError{err}
	}
	return n, err
}

// errBodyStalled is the error of a read ended by the body read timeout.
var errBodyStalled = fmt.Errorf("nothing received within the body read timeout: %w", os.ErrDeadlineExceeded)

// arm (re)starts the body read timeout for the next read.
func (b *clientBody) arm() {
	if b.timeout <= 0 {
		return
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.timeout, b.expire)
		return
	}
	b.timer.Reset(b.timeout)
}

// expire runs when a read has waited the whole timeout: it ends the read.
func (b *clientBody) expire() {
	if b.eof.Load() {
		return
	}
	b.fired.Store(true)
	b.ctl.SetReadDeadline(aLongTimeAgo)
}

// finished records that the body was read to its end and stops the timer.
// Should the timer have fired meanwhile, on HTTP/1.x its deadline is
// cleared: the server reads the connection again once the body is done
// (net/http's reads ahead; proxy/front watches for the client leaving or
// waits for the next request), and a deadline left there would end it.
func (b *clientBody) finished() {
	b.eof.Store(true)
	if b.timer != nil && !b.timer.Stop() && b.fired.Load() && b.h1 {
		b.ctl.SetReadDeadline(time.Time{})
	}
}

// Close does nothing: the server closes r.Body after the handler.
func (b *clientBody) Close() error { return nil }

// shutDown ends the use of the body by the request: reads that start later
// fail, and a read in progress (a body writer still waiting for the
// client after the backend answered early) is ended by a deadline in the
// past, and waited for. Then nothing reads r.Body any more. It is safe to
// call more than once, and from any goroutine.
func (b *clientBody) shutDown() {
	b.sd.Lock()
	defer b.sd.Unlock()
	if b.isShut {
		return
	}
	b.isShut = true
	b.shut.Store(true)
	if b.mu.TryLock() {
		b.stopTimer()
		b.mu.Unlock()
		return // no read in progress
	}
	if !b.eof.Load() {
		b.ctl.SetReadDeadline(aLongTimeAgo)
	}
	b.mu.Lock()
	b.stopTimer()
	b.mu.Unlock()
}

func (b *clientBody) stopTimer() {
	if b.timer != nil {
		b.timer.Stop()
	}
}

// aLongTimeAgo is a deadline in the past: it ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// prefixedBody is a request body of which the first bytes were read ahead:
// they are read again first.
type prefixedBody struct {
	prefix []byte
	rest   *clientBody
}

func (b *prefixedBody) Read(p []byte) (int, error) {
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		return n, nil
	}
	return b.rest.Read(p)
}

// Close shuts the client's body: h1 closes a request body once it is
// written, or when it gives up on it, which ends a read still waiting for
// the client.
func (b *prefixedBody) Close() error {
	b.rest.shutDown()
	return nil
}

// bytesBody is a request body held whole in memory. GetBody gives a fresh
// one, so that a replayable request can be sent again.
type bytesBody struct {
	b   []byte
	off int
}

func (b *bytesBody) Read(p []byte) (int, error) {
	if b.off >= len(b.b) {
		return 0, io.EOF
	}
	n := copy(p, b.b[b.off:])
	b.off += n
	return n, nil
}

func (b *bytesBody) Close() error { return nil }

// readAhead reads the request body, or its first bytes, before a backend
// connection is taken, and gives out the body to forward.
//
// A body of known length that fits one buffer (a scoring request, as a
// rule) is read whole: the backend then gets the request in one write and
// the model never waits on a slow client. A larger body, or one of unknown
// length, streams; but only once its first bytes have arrived, so that a
// client that announces a body and sends nothing holds no backend
// connection. Either wait is bounded by the body read timeout, and is
// recorded in st.bodyWait: it is not scoregate's overhead.
//
// pooled says whether the buffer that holds what was read ahead may go
// back to the pool when ServeHTTP ends: only on the direct path, and only
// for a body read whole, which h1 writes before Do returns. A streaming
// body's writer, or net/http's transport, may still hold the buffer after
// ServeHTTP has returned.
func (p *Proxy) readAhead(st *reqState, w http.ResponseWriter, r, out *http.Request, pooled bool) error {
	rc := r.Body
	if p.maxBodyBytes > 0 && r.ContentLength < 0 {
		// Unknown length (chunked, or HTTP/2 without content-length):
		// cut it off mid-stream. The server's writer w, not st.rec, so
		// that net/http closes the connection after the 413.
		rc = http.MaxBytesReader(w, r.Body, p.maxBodyBytes)
	}
	st.ctl = *http.NewResponseController(w) // a copy in st: one allocation less
	st.body.init(r, rc, &st.ctl, p.bodyReadTimeout)
	st.buf = p.buffers.pool.Get().(*[copyBufferSize]byte)
	buf := st.buf[:]
	var n int
	var err error
	waitStart := time.Now()
	if r.ContentLength > 0 && r.ContentLength <= int64(len(buf)) {
		n, err = io.ReadFull(&st.body, buf[:r.ContentLength])
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = &clientError{io.ErrUnexpectedEOF}
		}
		if err == nil {
			err = io.EOF // whole
		}
	} else {
		for n == 0 && err == nil {
			n, err = st.body.Read(buf)
		}
	}
	st.bodyWait = time.Since(waitStart)
	if !pooled || err != io.EOF {
		st.buf = nil // not back to the pool: see above
	}
	switch {
	case err == io.EOF:
		// The whole body is in hand: forward it with its length, which
		// also spares the backend a chunked body.
		st.whole = bytesBody{b: buf[:n]}
		out.Body, out.ContentLength, out.TransferEncoding = &st.whole, int64(n), nil
		out.GetBody = func() (io.ReadCloser, error) { return &bytesBody{b: buf[:n]}, nil }
		if n == 0 {
			out.Body, out.GetBody = http.NoBody, nil
		}
		return nil
	case err != nil:
		return err
	}
	st.prefixed = prefixedBody{prefix: buf[:n], rest: &st.body}
	out.Body = &st.prefixed
	return nil
}
