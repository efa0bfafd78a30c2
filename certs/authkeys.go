package certs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// Auth-key file limits.
const (
	maxAuthKeys      = 2  // Azure ML's model: a primary and a secondary key
	minAuthKeyLength = 16 // shorter is guessable; Azure ML's keys have 32 characters
)

// ErrAuthKeyFile means the bearer-key file (--auth-key-file) is unusable:
// empty, more than two keys, or a key too short or with spaces in it.
var ErrAuthKeyFile = errors.New("invalid auth key file")

// LoadAuthKeys reads the bearer-key file: one or two keys (primary and
// secondary), one per line. Blank lines and lines starting with # are
// ignored; spaces around a key are trimmed. An error is a *FileError
// naming the file (Role AuthKeyFileRole) and, where it applies, the line.
func LoadAuthKeys(path string) ([]string, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, &FileError{Role: AuthKeyFileRole, Path: path, Err: err}
	}
	keys, err := ParseAuthKeys(b)
	if err != nil {
		return nil, &FileError{Role: AuthKeyFileRole, Path: path, Err: err}
	}
	return keys, nil
}

// ParseAuthKeys parses the content of a bearer-key file; see LoadAuthKeys.
func ParseAuthKeys(b []byte) ([]string, error) {
	var keys []string
	for i, line := range strings.Split(string(b), "\n") {
		key := strings.TrimSpace(line)
		if key == "" || strings.HasPrefix(key, "#") {
			continue
		}
		switch {
		case strings.ContainsAny(key, " \t\x00"):
			return nil, fmt.Errorf("%w: line %d: a key must not contain spaces", ErrAuthKeyFile, i+1)
		case len(key) < minAuthKeyLength:
			return nil, fmt.Errorf("%w: line %d: key has %d characters, want at least %d", ErrAuthKeyFile, i+1, len(key), minAuthKeyLength)
		case len(keys) == maxAuthKeys:
			return nil, fmt.Errorf("%w: line %d: more than %d keys; give a primary and at most one secondary key", ErrAuthKeyFile, i+1, maxAuthKeys)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key in the file: give one key per line (primary, then optionally a secondary)", ErrAuthKeyFile)
	}
	return keys, nil
}

// AuthKeys keeps the bearer keys of --auth-key-file loaded: it reads the
// file, hands each valid set of keys to its apply function, and reloads on
// change. Its methods are safe for concurrent use.
type AuthKeys struct {
	path    string
	apply   func([]string)
	log     zerolog.Logger
	metrics *metrics.Metrics

	mu      sync.Mutex // serialises loads, so an older set never replaces a newer one
	current []string   // the keys applied last

	reloadsOK, reloadErrors atomic.Uint64
}

// NewAuthKeys loads path once and calls apply with its keys; an error is
// LoadAuthKeys's. apply is called again with every new valid set of keys,
// never concurrently; the proxy's KeySet.Store fits.
// Reloads are recorded in m, which may be nil.
func NewAuthKeys(path string, apply func([]string), log zerolog.Logger, m *metrics.Metrics) (*AuthKeys, error) {
	keys, err := LoadAuthKeys(path)
	if err != nil {
		return nil, err
	}
	apply(keys)
	return &AuthKeys{path: path, apply: apply, current: keys, metrics: m, log: log.With().Str("auth_key_file", path).Logger()}, nil
}

// Reload reads the file again. Changed valid keys are applied (and logged
// with their count, never their value); unchanged ones are left alone. An
// invalid file is logged and counted, and the previous keys stay in force.
func (a *AuthKeys) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.publish(LoadAuthKeys(a.path))
}

func (a *AuthKeys) publish(keys []string, err error) error {
	if err != nil {
		a.reloadErrors.Add(1)
		a.metrics.AuthKeyReload(false)
		a.log.Warn().Err(err).Msg("auth key reload failed; the previous keys stay in force")
		return err
	}
	if slices.Equal(keys, a.current) {
		return nil
	}
	a.apply(keys)
	a.current = keys
	a.reloadsOK.Add(1)
	a.metrics.AuthKeyReload(true)
	a.log.Info().Int("keys", len(keys)).Msg("auth keys reloaded")
	return nil
}

// Watch reloads the keys whenever the file changes, until ctx is done, the
// way Source.Watch does for certificates (an invalid file is retried for
// cfg.Settle before it counts as a failure). Call it at most once.
func (a *AuthKeys) Watch(ctx context.Context, cfg WatchConfig) error {
	cfg = cfg.withDefaults()
	return watchFiles(ctx, []string{a.path}, cfg, a.log, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.publish(settle(ctx, cfg.Settle, cfg.Retry, func() ([]string, error) { return LoadAuthKeys(a.path) }))
	})
}

// ReloadCounts are cumulative reload counters.
type ReloadCounts struct {
	OK     uint64 // reloads that applied a new set
	Errors uint64 // reloads refused; the previous set stayed
}

// Counts returns the reload counters.
func (a *AuthKeys) Counts() ReloadCounts {
	return ReloadCounts{OK: a.reloadsOK.Load(), Errors: a.reloadErrors.Load()}
}
