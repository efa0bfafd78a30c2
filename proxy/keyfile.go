package proxy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// Bearer-key file limits.
const (
	maxKeys        = 2       // Azure ML's model: a primary and a secondary key
	minKeyLength   = 16      // shorter is guessable; Azure ML's keys have 32 characters
	maxKeyFileSize = 1 << 16 // a key file is a few lines
)

// ErrKeyFile means the bearer-key file is unusable: empty, more than two
// keys, or a key too short or with spaces in it.
var ErrKeyFile = errors.New("invalid auth key file")

// KeyFileError is a problem with the bearer-key file at Path.
type KeyFileError struct {
	Path string
	Err  error
}

func (e *KeyFileError) Error() string { return fmt.Sprintf("key file %q: %v", e.Path, e.Err) }
func (e *KeyFileError) Unwrap() error { return e.Err }

// LoadKeys reads a bearer-key file: one or two keys (primary and
// secondary), one per line. Blank lines and lines starting with # are
// ignored; spaces around a key are trimmed. An error is a *KeyFileError
// naming the file and, where it applies, the line.
func LoadKeys(path string) ([]string, error) {
	b, err := readLimited(path)
	if err == nil {
		var keys []string
		if keys, err = ParseKeys(b); err == nil {
			return keys, nil
		}
	}
	return nil, &KeyFileError{Path: path, Err: err}
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err == nil && len(b) > maxKeyFileSize {
		err = fmt.Errorf("%w: larger than %d bytes", ErrKeyFile, maxKeyFileSize)
	}
	return b, err
}

// ParseKeys parses the content of a bearer-key file; see LoadKeys.
func ParseKeys(b []byte) ([]string, error) {
	var keys []string
	// A UTF-8 byte order mark (Windows editors) is not part of a key.
	text := strings.TrimPrefix(string(b), "\uFEFF")
	for i, line := range strings.Split(text, "\n") {
		key := strings.TrimSpace(line)
		if key == "" || strings.HasPrefix(key, "#") {
			continue
		}
		switch {
		case strings.ContainsAny(key, " \t"):
			return nil, fmt.Errorf("%w: line %d: a key must not contain spaces", ErrKeyFile, i+1)
		case strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			// Such as a CR: a file with old Mac line endings would
			// otherwise load as one key that matches nothing.
			return nil, fmt.Errorf("%w: line %d: a key must not contain control characters (lines end with LF or CRLF)", ErrKeyFile, i+1)
		case len(key) < minKeyLength:
			return nil, fmt.Errorf("%w: line %d: key has %d characters, want at least %d", ErrKeyFile, i+1, len(key), minKeyLength)
		case len(keys) == maxKeys:
			return nil, fmt.Errorf("%w: line %d: more than %d keys; give a primary and at most one secondary key", ErrKeyFile, i+1, maxKeys)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key in the file: give one key per line (primary, then optionally a secondary)", ErrKeyFile)
	}
	return keys, nil
}

// KeyFile keeps a KeySet loaded from a bearer-key file: it reads the file
// and stores each valid set of keys in the KeySet. Nothing watches the file
// by itself; the caller's file watcher calls TryReload (or Reload, on
// SIGHUP). Its methods are safe for concurrent use.
type KeyFile struct {
	path    string
	keys    *KeySet
	log     zerolog.Logger
	metrics *metrics.Metrics

	mu      sync.Mutex // serialises loads, so that an older set never replaces a newer one
	current []string   // the keys stored last
}

// OpenKeyFile loads path once; an error is LoadKeys's. Reloads are
// recorded in m, which may be nil.
func OpenKeyFile(path string, log zerolog.Logger, m *metrics.Metrics) (*KeyFile, error) {
	keys, err := LoadKeys(path)
	if err != nil {
		return nil, err
	}
	return &KeyFile{path: path, keys: NewKeySet(keys), current: keys, metrics: m,
		log: log.With().Str("auth_key_file", path).Logger()}, nil
}

// Keys returns the KeySet the file's keys are stored in: give it to
// Config.Auth.
func (f *KeyFile) Keys() *KeySet { return f.keys }

// Path returns the file's path.
func (f *KeyFile) Path() string { return f.path }

// Reload reads the file again. Changed valid keys are stored (and logged
// with their count, never their value); unchanged ones are left alone. An
// invalid file is logged and counted, and the previous keys stay in force.
func (f *KeyFile) Reload() error { return f.TryReload(true) }

// TryReload is Reload for a watcher that tries again within a settle
// window: unless final is set, an invalid file is neither logged nor
// counted.
func (f *KeyFile) TryReload(final bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys, err := LoadKeys(f.path)
	switch {
	case err != nil && !final:
		return err
	case err != nil:
		f.metrics.AuthKeyReload(false)
		f.log.Warn().Err(err).Msg("auth key reload failed; the previous keys stay in force")
		return err
	case slices.Equal(keys, f.current):
		return nil
	}
	f.keys.Store(keys)
	f.current = keys
	f.metrics.AuthKeyReload(true)
	f.log.Info().Int("keys", len(keys)).Msg("auth keys reloaded")
	return nil
}
