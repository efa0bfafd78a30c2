package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/scoregate/scoregate/metrics"
)

// DefaultStreamIdleTimeout is how long a streamed answer may go without a
// byte from the backend before scoregate ends it: minutes, since a model
// may think long between two tokens, and no total cap, since a token
// stream may rightly last longer than any short request's timeout.
const DefaultStreamIdleTimeout = 5 * time.Minute

// StreamIdleError is the error of a streamed answer that the backend left
// idle for longer than Config.StreamIdleTimeout.
type StreamIdleError struct{ Idle time.Duration }

func (e *StreamIdleError) Error() string {
	return fmt.Sprintf("the backend sent nothing for %v (StreamIdleTimeout) in a streamed answer", e.Idle)
}

// aborter is a body that a goroutine other than its reader may end: h1's
// response bodies. net/http's may be closed from another goroutine.
type aborter interface{ Abort() }

// idleBody is a streamed answer's body that ends itself when the backend
// sends nothing for d: each read that brings bytes sets the clock back.
// Ending it makes the read in progress fail, so the copy stops, the client's
// stream is aborted, and the backend connection (or HTTP/2 stream) is
// closed.
type idleBody struct {
	rc    io.ReadCloser
	d     time.Duration
	t     *time.Timer
	idled atomic.Bool
}

func newIdleBody(rc io.ReadCloser, d time.Duration) *idleBody {
	b := &idleBody{rc: rc, d: d}
	b.t = time.AfterFunc(d, b.expire)
	return b
}

func (b *idleBody) expire() {
	b.idled.Store(true)
	if a, ok := b.rc.(aborter); ok {
		a.Abort()
		return
	}
	b.rc.Close()
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.t.Stop() // the stream has ended, one way or the other
		if err != io.EOF && b.idled.Load() {
			err = &StreamIdleError{Idle: b.d}
		}
		return n, err
	}
	if n > 0 && !b.idled.Load() {
		b.t.Reset(b.d)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.t.Stop()
	return b.rc.Close()
}

// streamIdleTimeout is Config.StreamIdleTimeout with its default applied.
func streamIdleTimeout(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultStreamIdleTimeout
	case d < 0:
		return 0
	}
	return d
}

// watchStream puts a streamed answer's body under the idle limit. A
// protocol switch (101) is not a stream of the backend's answer but a
// connection of its own, and is left alone.
func (p *Proxy) watchStream(st *reqState, resp *http.Response) {
	if p.streamIdle > 0 && resp.StatusCode != http.StatusSwitchingProtocols && streamed(resp) {
		st.idle = newIdleBody(resp.Body, p.streamIdle)
		resp.Body = st.idle
	}
}

// streamCut is the cause of an answer cut off after its header was
// written, for scoregate_streams_cut_total.
func streamCut(st *reqState, r *http.Request) string {
	switch {
	case r.Context().Err() != nil:
		return metrics.StreamCutClient
	case st.idle != nil && st.idle.idled.Load():
		return metrics.StreamCutIdle
	}
	return metrics.StreamCutBackend
}
