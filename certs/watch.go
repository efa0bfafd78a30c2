package certs

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs/filewatch"
)

// WatchConfig configures Source.Watch. The zero value gives the defaults
// stated beside each field.
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

// WatchFiles runs a filewatch.Watcher over files until ctx is done: each
// change calls reload, retried within cfg.Settle (filewatch owns the
// settle-and-retry logic), and watch problems that the poll covers for are
// logged. It is how a consumer of files (the certificate pair, the bearer
// key file) is kept current.
func WatchFiles(ctx context.Context, files []string, cfg WatchConfig, log zerolog.Logger, reload func(final bool) error) error {
	w, err := filewatch.New(filewatch.Config{
		Files:    files,
		Reload:   reload,
		OnError:  func(err error) { log.Warn().Err(err).Msg("file watch problem") },
		Debounce: cfg.Debounce,
		Poll:     cfg.Poll,
		Settle:   cfg.Settle,
		Retry:    cfg.Retry,
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
// reload; the old pair serves throughout.
//
// Call Watch at most once per Source, from a goroutine the caller owns.
func (s *Source) Watch(ctx context.Context, cfg WatchConfig) error {
	return WatchFiles(ctx, []string{s.certFile, s.keyFile}, cfg, s.log, s.TryReload)
}
