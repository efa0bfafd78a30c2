package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/caddyserver/certmagic"
)

// probeStorage creates dir (mode 0700) if it is missing and proves that a
// file can be created, written, flushed and removed in it, so that a
// read-only file system, a path under a regular file or a full disk
// fails NewACME at once. (certmagic itself only finds out when it first
// orders, and then logs a single "job failed" line and never retries.)
func probeStorage(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create it: %w", err)
	}
	f, err := os.CreateTemp(dir, ".scoregate-probe-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	_, err = f.Write([]byte("scoregate storage probe\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	return nil
}

// reportingStorage is certmagic's FileStorage that reports each failed
// operation to report. certmagic reports some storage failures only in a
// log line (a failed storage check or lock before an order, in its job
// manager's "job failed"), and does not retry them; through report they
// are counted and shown in Status. A missing key (fs.ErrNotExist) is not
// a failure, and neither is a cancelled context (Stop).
type reportingStorage struct {
	*certmagic.FileStorage // Exists (no error to report), String, Filename
	report                 func(op, key string, err error)
}

// reportingStorage must keep FileStorage's optional TryLocker: certmagic
// asks for it with a type assertion.
var (
	_ certmagic.Storage   = (*reportingStorage)(nil)
	_ certmagic.TryLocker = (*reportingStorage)(nil)
)

// check reports err if it is a storage failure, and returns it.
func (s *reportingStorage) check(op, key string, err error) error {
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		s.report(op, key, err)
	}
	return err
}

// Store implements certmagic.Storage.
func (s *reportingStorage) Store(ctx context.Context, key string, value []byte) error {
	return s.check("store", key, s.FileStorage.Store(ctx, key, value))
}

// Load implements certmagic.Storage.
func (s *reportingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	b, err := s.FileStorage.Load(ctx, key)
	return b, s.check("load", key, err)
}

// Delete implements certmagic.Storage.
func (s *reportingStorage) Delete(ctx context.Context, key string) error {
	return s.check("delete", key, s.FileStorage.Delete(ctx, key))
}

// List implements certmagic.Storage.
func (s *reportingStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	keys, err := s.FileStorage.List(ctx, prefix, recursive)
	return keys, s.check("list", prefix, err)
}

// Stat implements certmagic.Storage.
func (s *reportingStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ki, err := s.FileStorage.Stat(ctx, key)
	return ki, s.check("stat", key, err)
}

// Lock implements certmagic.Storage.
func (s *reportingStorage) Lock(ctx context.Context, name string) error {
	return s.check("lock", name, s.FileStorage.Lock(ctx, name))
}

// TryLock implements certmagic.TryLocker.
func (s *reportingStorage) TryLock(ctx context.Context, name string) (bool, error) {
	ok, err := s.FileStorage.TryLock(ctx, name)
	return ok, s.check("lock", name, err)
}

// Unlock implements certmagic.Storage.
func (s *reportingStorage) Unlock(ctx context.Context, name string) error {
	return s.check("unlock", name, s.FileStorage.Unlock(ctx, name))
}

// storageFailed is the reportingStorage's report: a failed storage
// operation counts as an ACME failure, becomes Status's LastError and,
// while there is no certificate, its Pending reason, and is logged.
func (a *ACME) storageFailed(op, key string, err error) {
	// The key is in the log line only: FileStorage's errors carry the
	// file's path already.
	err = fmt.Errorf("storage %q: %s: %w", a.storagePath, op, err)
	a.metrics.ACMEFailure()
	a.mu.Lock()
	a.lastErr = err
	if !a.haveCert.Load() {
		a.reason = "the ACME storage failed (certificates cannot be obtained or renewed until it works): " + err.Error()
	}
	a.mu.Unlock()
	a.log.Error().Err(err).Str(keyStorage, a.storagePath).Str("key", key).
		Msg("ACME storage failed; certificates cannot be obtained or renewed until it works")
}
