package certs

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// maxTicketKeyFileSize bounds what is read of a session ticket key file:
// far more than any sensible number of keys.
const maxTicketKeyFileSize = 64 << 10

// ticketKeyLabel is the HKDF info that turns a key from the file into the
// key crypto/tls seals tickets with. Every instance derives the same key
// from the same bytes, so they open each other's tickets.
const ticketKeyLabel = "scoregate session ticket key v1"

// TicketKeyFileError is a session ticket key file that cannot be used:
// unreadable, empty, or with a line that is not a key. Err never holds key
// material.
type TicketKeyFileError struct {
	Path string
	Err  error
}

// Error returns the quoted path and the problem.
func (e *TicketKeyFileError) Error() string {
	return fmt.Sprintf("session ticket key file %q: %v", e.Path, e.Err)
}

// Unwrap returns Err.
func (e *TicketKeyFileError) Unwrap() error { return e.Err }

// parseTicketKeys parses a session ticket key file in the formats nginx
// and HAProxy share: either one base64-encoded key per line (HAProxy's
// tls-ticket-keys; blank lines and lines starting with '#' are skipped),
// or a binary file holding exactly one key (nginx's
// ssl_session_ticket_key). A key is 32, 48 or 80 bytes. The first key
// seals new tickets; all open them. Errors give the line and the problem,
// never the key.
func parseTicketKeys(data []byte) ([][]byte, error) {
	if isBinaryKey(data) {
		return [][]byte{bytes.Clone(data)}, nil
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("line %d: bad base64 at character %d", i+1, int64(ce)+1)
			}
			return nil, fmt.Errorf("line %d: bad base64", i+1)
		}
		if !validTicketKeyLen(len(k)) {
			return nil, fmt.Errorf("line %d: a %d-byte key; want 32, 48 or 80 bytes", i+1, len(k))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys: want one base64-encoded key per line (32, 48 or 80 bytes, such as `openssl rand 48 | base64 -w0`)")
	}
	return keys, nil
}

func validTicketKeyLen(n int) bool { return n == 32 || n == 48 || n == 80 }

// isBinaryKey reports whether data is one raw key, as nginx reads it: a
// key's length and a byte that no text file holds. A text file of the
// same length is parsed as text, so that a mistyped line gets an error
// rather than becoming a key.
func isBinaryKey(data []byte) bool {
	if !validTicketKeyLen(len(data)) {
		return false
	}
	for _, b := range data {
		if (b < 0x20 || b > 0x7e) && b != '\t' && b != '\r' && b != '\n' {
			return true
		}
	}
	return false
}

// LoadTicketKeys reads and parses the session ticket key file at path, in
// the formats nginx and HAProxy share: one base64-encoded key per line
// (blank lines and '#' comments skipped), or a binary file of exactly one
// key. A key is 32, 48 or 80 bytes; the first seals new tickets and all
// open them. Errors are *TicketKeyFileError, giving the line and the
// problem, never the key.
func LoadTicketKeys(path string) ([][]byte, error) {
	fail := func(err error) ([][]byte, error) { return nil, &TicketKeyFileError{Path: path, Err: err} }
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTicketKeyFileSize+1))
	if err != nil {
		return fail(err)
	}
	if len(data) > maxTicketKeyFileSize {
		return fail(fmt.Errorf("larger than %d bytes", maxTicketKeyFileSize))
	}
	keys, err := parseTicketKeys(data)
	if err != nil {
		return fail(err)
	}
	return keys, nil
}

// TicketKeyFile is a session ticket key file kept current: instances that
// read the same file seal and open the same tickets, so a client resumes
// its session on any of them. Give it to a tls.Config with
// UseTicketKeyFile. Its methods are safe for concurrent use.
type TicketKeyFile struct {
	path string
	log  zerolog.Logger

	mu  sync.Mutex                       // serialises reloads; the handshake path only loads cur
	cur atomic.Pointer[ticketKeyFileSet] // never nil; a published set is never mutated
}

// ticketKeyFileSet is the keys of one version of the file.
type ticketKeyFileSet struct {
	seal    *tls.Config // holds only the keys, for EncryptTicket and DecryptTicket
	derived [][32]byte  // as given to SetSessionTicketKeys, to compare reloads
}

// OpenTicketKeyFile reads the session ticket key file at path. Errors are
// *TicketKeyFileError. Reload reads it again; certs.WatchFiles can call
// TryReload on change.
func OpenTicketKeyFile(path string, log zerolog.Logger) (*TicketKeyFile, error) {
	keys, err := LoadTicketKeys(path)
	if err != nil {
		return nil, err
	}
	f := &TicketKeyFile{path: path, log: log.With().Str("session_ticket_key_file", path).Logger()}
	f.cur.Store(newTicketKeyFileSet(keys))
	return f, nil
}

func newTicketKeyFileSet(keys [][]byte) *ticketKeyFileSet {
	s := &ticketKeyFileSet{seal: &tls.Config{}}
	for _, k := range keys {
		d, err := hkdf.Key(sha256.New, k, nil, ticketKeyLabel, 32)
		if err != nil {
			panic(err) // only for a length beyond HKDF's limit; 32 is far below
		}
		s.derived = append(s.derived, [32]byte(d))
	}
	s.seal.SetSessionTicketKeys(s.derived)
	return s
}

// Path returns the file's path.
func (f *TicketKeyFile) Path() string { return f.path }

// Reload reads the file again. Changed keys are used at once (and logged
// with their count, never their value). An invalid file is logged, and
// the previous keys stay in force.
func (f *TicketKeyFile) Reload() error { return f.TryReload(true) }

// TryReload is Reload for a watcher that tries again within a settle
// window: unless final is set, an invalid file is not logged.
func (f *TicketKeyFile) TryReload(final bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys, err := LoadTicketKeys(f.path)
	if err != nil {
		if final {
			f.log.Warn().Err(err).Msg("session ticket key reload failed; the previous keys stay in force")
		}
		return err
	}
	s := newTicketKeyFileSet(keys)
	if slices.Equal(s.derived, f.cur.Load().derived) {
		return nil
	}
	f.cur.Store(s)
	f.log.Info().Int("keys", len(keys)).Msg("session ticket keys reloaded")
	return nil
}

// UseTicketKeyFile makes cfg, a ServerTLSConfig, seal session tickets
// with the first key of f and open them with any of its keys, in place of
// the keys the Config makes itself. Keys from a file are not forgotten, so
// the age of the session is checked instead: a ticket for a session
// established more than MaxTicketAge ago (by cfg.Time, read at each use)
// gets a full handshake. In TLS 1.2 that age runs from the session's
// first full handshake, since crypto/tls carries it into the tickets it
// re-issues on resumption. Call it before cfg is used; copies of cfg
// share f.
func UseTicketKeyFile(cfg *tls.Config, f *TicketKeyFile) {
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		return f.cur.Load().seal.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(ticket []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := f.cur.Load().seal.DecryptTicket(ticket, cs)
		if ss == nil || err != nil {
			return ss, err // (nil, nil): no key opens it; a full handshake
		}
		created, ok := sessionCreated(ss)
		now := time.Now()
		if cfg.Time != nil {
			now = cfg.Time()
		}
		// A creation time in the future means the encoding is not what
		// sessionCreated reads (a Go version that changed it): refuse
		// rather than resume without a limit. TestTicketKeyFileMaxTicketAge
		// fails then too.
		if !ok || now.Sub(created) > MaxTicketAge || created.After(now.Add(time.Minute)) {
			return nil, nil
		}
		return ss, nil
	}
}

// sessionCreated returns when the session's secret was made: the
// created_at field of the encoding SessionState.Bytes documents, after
// version (2 bytes), type (1) and cipher suite (2). crypto/tls keeps that
// prefix stable, since Go versions sharing a ticket key must read each
// other's tickets.
func sessionCreated(ss *tls.SessionState) (time.Time, bool) {
	b, err := ss.Bytes()
	if err != nil || len(b) < 13 {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[5:13])), 0), true
}
