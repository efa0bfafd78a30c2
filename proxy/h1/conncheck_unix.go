//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
)

// peeker asks the kernel whether a connection's peer has closed it, or sent
// something unasked, without blocking: one recv(2) with MSG_PEEK and
// MSG_DONTWAIT. (A read with a deadline in the past would not do: Go
// returns the timeout before it asks the kernel.) It is made once per
// connection, so that a check allocates nothing; it is not safe for
// concurrent use, as a pooled connection is used by one request at a time.
type peeker struct {
	rc     syscall.RawConn // nil: the connection cannot be asked
	fn     func(fd uintptr) bool
	closed bool
	buf    [1]byte
}

func newPeeker(nc net.Conn) *peeker {
	p := &peeker{}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.fn = p.recv
	return p
}

func (p *peeker) recv(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		p.closed = false // nothing to read: open and idle
	case err != nil, n == 0, n > 0:
		p.closed = true // an error, EOF, or data nobody asked for
	}
	return true // never wait for readiness
}

// peerClosed reports whether the peer has closed the connection or sent
// something unasked.
func (p *peeker) peerClosed() bool {
	if p.rc == nil {
		return false
	}
	err := p.rc.Read(p.fn)
	return p.closed || err != nil
}

// peerClosed is newPeeker(nc).peerClosed().
func peerClosed(nc net.Conn) bool { return newPeeker(nc).peerClosed() }
