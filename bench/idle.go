package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync"
)

// IdleConns are keep-alive connections held open and idle, for measuring
// what an idle client connection costs the server. Close them when done.
type IdleConns struct {
	conns []*http.ClientConn
}

// idleDialers bounds the connections being opened at once, so that the
// server's accept queue does not overflow.
const idleDialers = 64

// OpenIdle opens n connections to cfg's URL, each with a full TLS
// handshake (for https) and one request answered on it, and leaves them
// open and idle. It stops at the first error, closes what it opened and
// returns the error.
func OpenIdle(ctx context.Context, cfg Config, n int) (*IdleConns, error) {
	cfg.Scenario = H1
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, invalidf("idle connections: want at least 1, not %d", n)
	}
	t := newTarget(cfg)
	ic := &IdleConns{conns: make([]*http.ClientConn, n)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for range min(idleDialers, n) {
		wg.Go(func() {
			for i := range next {
				cc, err := t.dial(ctx)
				if err == nil {
					if o := t.send(ctx, cc, false); o.err != nil {
						cc.Close()
						err = o.err
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("idle connection %d of %d: %w", i+1, n, err)
						cancel()
					}
					mu.Unlock()
					continue
				}
				ic.conns[i] = cc
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		ic.Close()
		return nil, firstErr
	}
	return ic, nil
}

// Lost is the number of connections that have ended since they were
// opened: the server closed them (its idle timeout, or a limit) or the
// network failed. A measurement of what idle connections cost the server
// is wrong by that many.
func (ic *IdleConns) Lost() int {
	n := 0
	for _, cc := range ic.conns {
		if cc != nil && cc.Err() != nil {
			n++
		}
	}
	return n
}

// Len is the number of connections held.
func (ic *IdleConns) Len() int { return len(ic.conns) }

// Close closes every connection.
func (ic *IdleConns) Close() {
	for _, cc := range ic.conns {
		if cc != nil {
			cc.Close()
		}
	}
}
