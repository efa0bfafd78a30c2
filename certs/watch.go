package certs

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs/filewatch"
)

// WatchConfig configures Source.Watch and AuthKeys.Watch. The zero value
// gives the defaults stated beside each field.
type WatchConfig struct {
	// Debounce is how long the watched directories must be quiet after an
	// event before the files are read; if zero, 250ms.
	Debounce time.Duration
	// Poll is how often the files are compared by content hash without any
	// event, the safety net for lost events; if zero, 10s; if negative,
	// never.
	Poll time.Duration
	// Settle is how long an invalid update is retried before it counts as
	// a failure. Certificate and key are often written a moment apart, and
	// the pair in between does not match. If zero, 5s.
	Settle time.Duration
	// Retry is the interval between attempts within Settle; if zero, 100ms.
	Retry time.Duration
}

func (c WatchConfig) withDefaults() WatchConfig {
	if c.Debounce <= 0 {
		c.Debounce = 250 * time.Millisecond
	}
	if c.Poll == 0 {
		c.Poll = 10 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 5 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = 100 * time.Millisecond
	}
	return c
}

// settle calls load until it succeeds, ctx is done, or window has passed
// since the first attempt, waiting retry between attempts. It returns the
// last result.
func settle[T any](ctx context.Context, window, retry time.Duration, load func() (T, error)) (T, error) {
	deadline := time.Now().Add(window)
	t := time.NewTimer(retry)
	defer t.Stop()
	for {
		v, err := load()
		if err == nil || !time.Now().Before(deadline) {
			return v, err
		}
		t.Reset(retry)
		select {
		case <-ctx.Done():
			return v, err
		case <-t.C:
		}
	}
}

// watchFiles runs a filewatch.Watcher over files that calls onChange, until
// ctx is done. Watch problems that the poll covers for are logged.
func watchFiles(ctx context.Context, files []string, cfg WatchConfig, log zerolog.Logger, onChange func()) error {
	w, err := filewatch.New(filewatch.Config{
		Files:    files,
		OnChange: onChange,
		OnError:  func(err error) { log.Warn().Err(err).Msg("file watch problem") },
		Debounce: cfg.Debounce,
		Poll:     cfg.Poll,
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Watch reloads the pair whenever the certificate or key file changes on
// disk, until ctx is done; it returns ctx's error. It handles in-place
// rewrites, replacement by rename, delete and re-create, and the Kubernetes
// Secret volume's "..data" symlink swap (see certs/filewatch). An update
// that does not validate is retried for cfg.Settle (the key may follow the
// certificate a moment later) before it is logged and counted as a failed
// reload; the old pair serves throughout. Watch also logs a warning when
// the served certificate has fewer than 30 days left, at most once a day.
//
// Call Watch at most once per Source, from a goroutine the caller owns.
func (s *Source) Watch(ctx context.Context, cfg WatchConfig) error {
	cfg = cfg.withDefaults()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { s.watchExpiry(ctx, time.Hour) })
	return watchFiles(ctx, []string{s.certFile, s.keyFile}, cfg, s.log, func() {
		s.reloadSettled(ctx, cfg)
	})
}

// reloadSettled is Reload with retries for cfg.Settle.
func (s *Source) reloadSettled(ctx context.Context, cfg WatchConfig) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	p, err := settle(ctx, cfg.Settle, cfg.Retry, func() (*Pair, error) {
		return LoadPair(s.certFile, s.keyFile, s.opts)
	})
	return s.publish(p, err)
}

// expiryWarnDays is how close to its end a served certificate must be for
// the daily warning.
const expiryWarnDays = 30

// watchExpiry logs a warning when the served certificate has fewer than
// 30 days left, checking every interval and warning at most once a day.
func (s *Source) watchExpiry(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastWarned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		leaf := s.Current().Leaf
		left := leaf.NotAfter.Sub(now)
		if left >= expiryWarnDays*24*time.Hour || now.Sub(lastWarned) < 24*time.Hour {
			continue
		}
		lastWarned = now
		s.log.Warn().Time(keyNotAfter, leaf.NotAfter).Int("days_left", int(left.Hours()/24)).
			Str(keySerial, leaf.SerialNumber.Text(16)).
			Msg("the served certificate expires soon: renew it and replace the files (scoregate reloads them)")
	}
}
