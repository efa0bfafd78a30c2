package main

import (
	"net"
	"net/netip"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"

	"github.com/scoregate/scoregate/metrics"
)

// limitConns wraps the TLS listener's ln with serverConfig's connection
// limits; a limit of zero is none.
//
// maxConns bounds the client connections open at once with
// netutil.LimitListener: at the limit, Accept is not called until one of
// them closes, so new connections complete TCP's handshake in the kernel
// and wait in the listen backlog (or are refused by the kernel once the
// backlog is full) without costing scoregate a file descriptor or memory.
// Nothing is closed and nothing crashes; a client waits, up to its own
// connect or TLS timeout. LimitListener does all of that, so there is no
// code of our own for it.
//
// maxPerIP bounds the connections one client address has open at once:
// one more is closed as soon as it is accepted, before the TLS handshake,
// counted in scoregate_connections_refused_total{reason="per_ip_limit"}
// and logged at debug level (a flood must not flood the log).
// LimitListener has no notion of addresses, hence perIPListener. It wraps
// the LimitListener, so a refused connection holds a slot of maxConns only
// for the moment it takes to close it. The address is the TCP peer's: behind
// a load balancer that does not keep client addresses (Kubernetes'
// externalTrafficPolicy Cluster), every client shares the few addresses of
// the nodes and the limit must stay off.
func limitConns(ln net.Listener, maxConns, maxPerIP int, log zerolog.Logger, m *metrics.Metrics) net.Listener {
	if maxConns > 0 {
		ln = netutil.LimitListener(ln, maxConns)
	}
	if maxPerIP > 0 {
		ln = &perIPListener{Listener: ln, max: maxPerIP, log: log, metrics: m, open: map[netip.Addr]int{}}
	}
	return ln
}

// perIPListener closes, at accept, connections from an address that has
// max connections open. Its methods are safe for concurrent use.
type perIPListener struct {
	net.Listener
	max     int
	log     zerolog.Logger
	metrics *metrics.Metrics // may be nil

	mu   sync.Mutex
	open map[netip.Addr]int // connections open per address; no zero entries
}

// Accept returns the next connection whose address is below the limit,
// closing the others.
func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := peerAddr(c)
		if l.acquire(addr) {
			return &perIPConn{Conn: c, release: func() { l.release(addr) }}, nil
		}
		// Counted before the close, so that whoever sees the close sees
		// the count too.
		l.metrics.ConnRefused(metrics.ConnRefusedPerIPLimit)
		c.Close()
		l.log.Debug().Str("client", addr.String()).Int("limit", l.max).Msg("connection closed at accept: the client address has --max-connections-per-ip open")
	}
}

func (l *perIPListener) acquire(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr] >= l.max {
		return false
	}
	l.open[addr]++
	return true
}

func (l *perIPListener) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr]--; l.open[addr] <= 0 {
		delete(l.open, addr)
	}
}

// peerAddr is c's remote IP address, IPv4-mapped IPv6 addresses as IPv4,
// or the zero Addr (one shared bucket) for a connection that is not TCP.
func peerAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// perIPConn gives its address's slot back on its first Close.
type perIPConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *perIPConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
