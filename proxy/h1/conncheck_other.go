//go:build !unix

package h1

import "net"

// peerClosed cannot check without blocking here; a dead connection shows
// when the request is sent.
func peerClosed(net.Conn) bool { return false }
