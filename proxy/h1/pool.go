package h1

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"
)

// conn is one connection to the backend.
type conn struct {
	nc        net.Conn
	peek      *peeker
	br        *bufio.Reader
	bw        *bufio.Writer
	written   int64 // bytes the kernel accepted for the current request
	idleSince time.Time
	reused    bool // carried a request before the current one

	// mu orders the read deadline between the response reader and a body
	// writer: the writer arms ResponseHeaderTimeout when it finishes, unless
	// the headers have arrived already.
	mu          sync.Mutex
	headersDone bool
	canceled    bool // the caller left: the deadline in the past stays
}

// Write counts what the kernel accepted, so that a failed write can tell
// whether anything of the request left.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.written += int64(n)
	return n, err
}

// aLongTimeAgo is a deadline in the past: it ends blocked reads and writes.
var aLongTimeAgo = time.Unix(1, 0)

// getConn returns a live idle connection unless fresh is set, or dials.
func (t *Transport) getConn(ctx context.Context, fresh bool) (*conn, error) {
	for !fresh {
		c := t.popIdle()
		if c == nil {
			break
		}
		// The backend may have closed the connection while it sat idle
		// (gunicorn's keep-alive is 2s): ask the kernel first, rather than
		// find out by losing a request (see Config.CheckIdleAfter).
		if c.br.Buffered() == 0 && (time.Since(c.idleSince) < t.checkAfter || !c.peek.peerClosed()) {
			c.reused = true
			return c, nil
		}
		c.nc.Close()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if t.testHookDialed != nil {
		t.testHookDialed()
	}
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, peek: newPeeker(nc)}
	c.br = bufio.NewReaderSize(nc, bufferSize)
	c.bw = bufio.NewWriterSize(c, bufferSize)
	return c, nil
}

// popIdle takes the most recently used idle connection, after dropping
// those idle for longer than the idle timeout.
func (t *Transport) popIdle() *conn {
	now := time.Now()
	t.mu.Lock()
	expired := t.expireLocked(now)
	var c *conn
	if n := len(t.idle); n > 0 {
		c = t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
	}
	t.mu.Unlock()
	closeAll(expired)
	return c
}

// putIdle returns c to the pool, or closes it when the pool is full.
func (t *Transport) putIdle(c *conn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	expired := t.expireLocked(c.idleSince)
	if len(t.idle) < t.maxIdle {
		t.idle = append(t.idle, c)
		c = nil
	}
	t.mu.Unlock()
	closeAll(expired)
	if c != nil {
		c.nc.Close()
	}
}

// expireLocked removes the connections idle past the timeout from the
// bottom of the stack and returns them, to be closed outside the lock.
func (t *Transport) expireLocked(now time.Time) []*conn {
	n := 0
	for n < len(t.idle) && now.Sub(t.idle[n].idleSince) > t.idleTimeout {
		n++
	}
	if n == 0 {
		return nil
	}
	expired := append([]*conn(nil), t.idle[:n]...)
	rest := copy(t.idle, t.idle[n:])
	clear(t.idle[rest:])
	t.idle = t.idle[:rest]
	return expired
}

func closeAll(cs []*conn) {
	for _, c := range cs {
		c.nc.Close()
	}
}
