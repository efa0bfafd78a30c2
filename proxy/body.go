package proxy

import (
	"errors"
	"io"
	"net/http"
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
type clientBody struct {
	rc      io.ReadCloser // r.Body, or a MaxBytesReader over it
	ctl     *http.ResponseController
	timeout time.Duration
	h1      bool  // HTTP/1.x: the read deadline is the connection's and is cleared at the end
	length  int64 // as declared; -1 if unknown

	n    atomic.Int64 // bytes read; read by the access log
	shut atomic.Bool
	eof  atomic.Bool // read to its end

	// mu is held for the duration of each Read of rc, so that shutDown can
	// wait for one in progress.
	mu      sync.Mutex
	armedAt time.Time // when the read deadline was last set; zero if never
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
		err = &clientError{err}
	}
	return n, err
}

// arm sets the read deadline a timeout from now. To keep the cost of that
// low (on HTTP/2 it is a message to the connection's goroutine), it is
// renewed only once a quarter of the timeout has passed, so a read has at
// least three quarters of the timeout.
func (b *clientBody) arm() {
	if b.timeout <= 0 {
		return
	}
	now := time.Now()
	if !b.armedAt.IsZero() && now.Sub(b.armedAt) < b.timeout/4 {
		return
	}
	if b.ctl.SetReadDeadline(now.Add(b.timeout)) == nil {
		b.armedAt = now
	}
}

// finished records that the body was read to its end. On HTTP/1.x the
// deadline is cleared: net/http's server reads ahead on the connection
// once the body is done, and a deadline left there would end it. On HTTP/2
// the deadline is the stream's and a finished body ignores it.
func (b *clientBody) finished() {
	b.eof.Store(true)
	if b.h1 && !b.armedAt.IsZero() {
		b.ctl.SetReadDeadline(time.Time{})
		b.armedAt = time.Time{}
	}
}

// Close does nothing: the server closes r.Body after the handler.
func (b *clientBody) Close() error { return nil }

// shutDown ends the use of the body by the request: reads that start later
// fail, and a read in progress (a body writer still waiting for the
// client after the backend answered early) is ended by a deadline in the
// past, and waited for. Then nothing reads r.Body any more.
func (b *clientBody) shutDown() {
	b.shut.Store(true)
	if b.mu.TryLock() {
		b.mu.Unlock()
		return // no read in progress
	}
	if !b.eof.Load() {
		b.ctl.SetReadDeadline(aLongTimeAgo)
	}
	b.mu.Lock()
	//lint:ignore SA2001 an empty critical section: it waits for the read in progress to end
	b.mu.Unlock()
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
