package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// respBody is one exchange on a connection and, once the response headers
// are in, the response body handed to the caller: it returns the
// connection to the pool at EOF. It is not safe for concurrent use, as
// response bodies are not.
type respBody struct {
	rc       io.ReadCloser
	t        *Transport
	c        *conn
	ctx      context.Context
	w        *writer // nil: the request body was written before the response
	stop     func() bool
	reusable bool
	done     bool
	eof      bool // read to its end
}

func (b *respBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF // as often as asked, as net/http's bodies do
	}
	if b.done {
		return 0, errors.New("h1: read on a closed response body")
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.release(true)
	case err != nil:
		b.release(false)
		err = fmt.Errorf("h1: reading the response body: %w", err)
	}
	return n, err
}

// Close closes the connection unless the body was read to its end.
func (b *respBody) Close() error {
	if !b.done {
		b.release(false)
	}
	return nil
}

// release ends the exchange: the connection goes back to the pool if the
// whole response was read, the whole request written, and nobody
// canceled; otherwise it is closed, which also ends a body writer that is
// still at work.
func (b *respBody) release(complete bool) {
	b.done = true
	ok := complete && b.reusable
	if b.w != nil {
		select {
		case <-b.w.done:
			ok = ok && b.w.err == nil
		default:
			ok = false // answered before the whole body was sent
		}
	}
	if b.stop() && ok {
		b.t.putIdle(b.c)
		return
	}
	b.c.nc.Close()
}

// writer is one request body being written by its own goroutine.
type writer struct {
	done chan struct{} // closed when the writer has ended
	err  error         // valid once done is closed
}

// failed returns the writer's error if it has ended, else nil.
func (w *writer) failed() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

// writeBody streams body to c and flushes; then it arms the response header
// clock. If the body fails, the connection is closed, which ends the wait
// for a response the backend cannot give. If the write fails, c is left
// to the response reader: a backend that answered early and closed has
// its answer there still (net/http's Transport loses it, golang/go#51109).
func (t *Transport) writeBody(ctx context.Context, c *conn, w *writer, body io.ReadCloser, length int64, trailer http.Header) {
	err := copyBody(c.bw, body, length)
	body.Close()
	if err == nil && length < 0 {
		err = writeTrailer(c.bw, trailer)
	}
	if err == nil {
		if err = c.bw.Flush(); err != nil {
			err = fmt.Errorf("h1: writing the request body: %w", err)
		}
	}
	if err == nil {
		// Before done: once done, c may be back in the pool.
		t.armHeaderTimeout(ctx, c)
	}
	w.err = err
	close(w.done)
	if be := (*BodyReadError)(nil); errors.As(err, &be) {
		c.nc.Close()
	}
}

// Abort ends the exchange from any goroutine: a Read in progress fails,
// later ones too, and the connection is closed, not reused. It does
// nothing once the body was released (read to its end, failed or closed)
// or the caller's context ended. It is safe for concurrent use with Read
// and Close; a proxy uses it to end a stream that went idle.
func (b *respBody) Abort() {
	// stop returns true to one caller only: either Abort takes the
	// cancel from the context's AfterFunc, or release has the
	// connection (and a pooled connection is never touched here).
	if b.stop() {
		b.cancel()
	}
}
