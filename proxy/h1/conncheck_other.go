//go:build !unix

package h1

import "net"

// peeker cannot check without blocking here; a dead connection shows when
// the request is sent.
type peeker struct{}

func newPeeker(net.Conn) *peeker { return &peeker{} }

func (*peeker) peerClosed() bool { return false }

func peerClosed(net.Conn) bool { return false }
