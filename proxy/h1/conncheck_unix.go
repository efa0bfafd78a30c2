//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether nc's peer has closed the connection or sent
// something unasked, without blocking: one recv(2) with MSG_PEEK and
// MSG_DONTWAIT. (A read with a deadline in the past would not do: Go
// returns the timeout before it asks the kernel.)
func peerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
			closed = false // nothing to read: open and idle
		case rerr != nil, n == 0, n > 0:
			closed = true // an error, EOF, or data nobody asked for
		}
		return true // never wait for readiness
	})
	return closed || err != nil
}
