package certs

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs/certstest"
)

// TestExpiryWarning runs the daily expiry warning on a fake clock.
func TestExpiryWarning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const name = "api.example.com"
		dir := t.TempDir()
		f := certstest.NewFiles(t, dir, name)
		leaf := f.Intermediate.Leaf(t, certstest.LeafOptions{DNSNames: []string{name}, NotAfter: time.Now().Add(40 * 24 * time.Hour)})
		certFile := certstest.WriteChain(t, dir, "soon.pem", leaf.CertPEM, f.Intermediate.CertPEM)
		keyFile := certstest.WriteFile(t, dir, "soon-key.pem", leaf.KeyPEM)
		var logs strings.Builder
		var mu sync.Mutex
		src, err := NewSource(SourceConfig{CertFile: certFile, KeyFile: keyFile, CName: name},
			zerolog.New(lockedWriter{&mu, &logs}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		// watchExpiry itself: Watch's fsnotify goroutine blocks in a
		// read(2), which a synctest bubble cannot wait out.
		go func() { src.watchExpiry(ctx, time.Hour); close(done) }()
		warnings := func() int {
			mu.Lock()
			defer mu.Unlock()
			return strings.Count(logs.String(), "expires soon")
		}
		for _, step := range []struct {
			advance time.Duration
			want    int
		}{
			{10 * 24 * time.Hour, 0}, // exactly 30 days left
			{time.Hour, 1},           // under 30 days: warned
			{23 * time.Hour, 1},      // not again within the day
			{time.Hour, 2},           // a day later: again
			{5 * 24 * time.Hour, 7},  // daily
		} {
			time.Sleep(step.advance)
			synctest.Wait()
			if got := warnings(); got != step.want {
				t.Fatalf("after %s more: %d expiry warnings, want %d", step.advance, got, step.want)
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
