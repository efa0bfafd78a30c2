package certs

import (
	"context"
	"crypto/x509"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// TestWatchExpiry runs the expiry watch on a fake clock: the daily warning
// under 30 days, one error line at the moment the certificate expires, and
// a fresh warning cycle for a new certificate.
func TestWatchExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var leaf atomic.Pointer[x509.Certificate]
		leaf.Store(&x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(40 * 24 * time.Hour)})
		var logs strings.Builder
		var mu sync.Mutex
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			WatchExpiry(ctx, func() Status { return Status{Leaf: leaf.Load()} }, zerolog.New(lockedWriter{&mu, &logs}))
			close(done)
		}()
		count := func(s string) int {
			mu.Lock()
			defer mu.Unlock()
			return strings.Count(logs.String(), s)
		}
		for _, step := range []struct {
			name           string
			advance        time.Duration
			renew          bool // serve a new certificate, valid 60 days, first
			warns, expired int
		}{
			{"40 days left", 0, false, 0, 0},
			{"exactly 30 days left", 10 * 24 * time.Hour, false, 0, 0},
			{"under 30 days: warned", time.Hour, false, 1, 0},
			{"not again within the day", 23 * time.Hour, false, 1, 0},
			{"a day later: again", time.Hour, false, 2, 0},
			{"daily", 5 * 24 * time.Hour, false, 7, 0},
			{"a second before expiry", 24*24*time.Hour - time.Hour - time.Second, false, 30, 0},
			{"expired: one error at the moment", time.Second, false, 30, 1},
			{"once only", 3 * 24 * time.Hour, false, 30, 1},
			{"a new certificate with 60 days", time.Hour, true, 30, 1},
			{"its warnings start afresh", 30*24*time.Hour + 12*time.Hour, false, 31, 1},
		} {
			if step.renew {
				leaf.Store(&x509.Certificate{SerialNumber: big.NewInt(2), NotAfter: time.Now().Add(60 * 24 * time.Hour)})
			}
			time.Sleep(step.advance)
			synctest.Wait()
			if w, e := count("expires soon"), count("has expired"); w != step.warns || e != step.expired {
				t.Fatalf("%s: %d warnings and %d expiry errors, want %d and %d\n%s", step.name, w, e, step.warns, step.expired, logs.String())
			}
		}
		cancel()
		<-done
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
