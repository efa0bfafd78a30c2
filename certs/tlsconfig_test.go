package certs_test

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
)

// testClock is a clock the test sets; safe for concurrent use.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestSessionTicketsExpire checks, on the server's clock (tls.Config.Time),
// that a ticket resumes its session until certs.MaxTicketAge after the key
// that sealed it was made, and never after: the first ticket's key is made
// with it, and a ticket issued after the next rotation outlives it.
func TestSessionTicketsExpire(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			start := time.Now()
			clock := &testClock{now: start}
			cfg := certs.ServerTLSConfig(newSource(t, f, nil), certs.SNIPolicy{CName: cname}, nil)
			cfg.Time = clock.Now
			addr := serve(t, cfg)
			// Each client keeps its own ticket; a resumption would replace it.
			client := func() *tls.Config {
				c := clientConfig(f, cname)
				c.MaxVersion = version
				c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				return c
			}
			handshake := func(c *tls.Config) bool {
				t.Helper()
				cs, err := dial(addr, c)
				if err != nil {
					t.Fatalf("handshake at +%s: %v", clock.Now().Sub(start), err)
				}
				return cs.DidResume
			}
			early, late, expired := client(), client(), client()
			for _, c := range []*tls.Config{early, expired} {
				handshake(c) // tickets sealed by the first key, made now
			}
			clock.Set(start.Add(7 * time.Hour))
			handshake(late) // a ticket sealed by a newer key

			for _, tt := range []struct {
				name   string
				at     time.Duration // since start
				client *tls.Config
				want   bool
			}{
				{"first key's ticket just before MaxTicketAge", certs.MaxTicketAge - time.Minute, early, true},
				{"first key's ticket just after MaxTicketAge", certs.MaxTicketAge + time.Minute, expired, false},
				{"newer key's ticket at the same time", certs.MaxTicketAge + time.Minute, late, true},
			} {
				clock.Set(start.Add(tt.at))
				if got := handshake(tt.client); got != tt.want {
					t.Errorf("%s (+%s): resumed = %v, want %v", tt.name, tt.at, got, tt.want)
				}
			}
		})
	}
}

// TestSessionTicketKeysPerConfig checks that each ServerTLSConfig has keys
// of its own: a ticket from one server does not resume on another.
func TestSessionTicketKeysPerConfig(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	a := serve(t, certs.ServerTLSConfig(newSource(t, f, nil), certs.SNIPolicy{CName: cname}, nil))
	b := serve(t, certs.ServerTLSConfig(newSource(t, f, nil), certs.SNIPolicy{CName: cname}, nil))
	c := clientConfig(f, cname)
	c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	if _, err := dial(a, c); err != nil {
		t.Fatal(err)
	}
	if cs, err := dial(a, c); err != nil || !cs.DidResume {
		t.Fatalf("second handshake with the same server: resumed %v, %v; want resumed", cs.DidResume, err)
	}
	if cs, err := dial(b, c); err != nil || cs.DidResume {
		t.Errorf("handshake with another server's ticket: resumed %v, %v; want a full handshake", cs.DidResume, err)
	}
}
