package certs_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
)

// ticketKey returns n random bytes.
func ticketKey(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// keyLines is a key file of keys, one base64 line each.
func keyLines(keys ...[]byte) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	return b.Bytes()
}

// writeKeys replaces the key file at path by rename, as a Secret update
// does.
func writeKeys(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := certstest.WriteFile(t, filepath.Dir(path), filepath.Base(path)+".tmp", data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestLoadTicketKeys(t *testing.T) {
	k32, k48, k80 := ticketKey(32), ticketKey(48), ticketKey(80)
	// A binary key with a byte no text holds, as `openssl rand 48` makes.
	bin48, bin80 := append([]byte{0}, ticketKey(47)...), append([]byte{0xff}, ticketKey(79)...)
	b64 := base64.StdEncoding.EncodeToString
	for _, tt := range []struct {
		name    string
		data    []byte
		want    [][]byte
		wantErr string // a substring; "" for none
	}{
		{"base64 32 bytes", keyLines(k32), [][]byte{k32}, ""},
		{"base64 48 bytes", keyLines(k48), [][]byte{k48}, ""},
		{"base64 80 bytes", keyLines(k80), [][]byte{k80}, ""},
		{"several lines in order", keyLines(k48, k32, k80), [][]byte{k48, k32, k80}, ""},
		{"comments, blank lines, CRLF", []byte("# rotated today\n\n" + b64(k48) + "\r\n  # previous\r\n" + b64(k32) + "\n"), [][]byte{k48, k32}, ""},
		{"binary 48 bytes", bin48, [][]byte{bin48}, ""},
		{"binary 80 bytes", bin80, [][]byte{bin80}, ""},
		{"bad base64", []byte("# c\n" + b64(k48) + "\n" + b64(k48)[:10] + "!" + b64(k48)[11:] + "\n"), nil, "line 3: bad base64 at character 11"},
		{"wrong length", []byte(b64(k48) + "\n" + b64(ticketKey(40)) + "\n"), nil, "line 2: a 40-byte key; want 32, 48 or 80 bytes"},
		{"empty file", nil, nil, "no keys"},
		{"only comments", []byte("# none yet\n\n"), nil, "no keys"},
		{"binary of another length", append([]byte{0}, ticketKey(63)...), nil, "line 1: bad base64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := certstest.WriteFile(t, t.TempDir(), "ticket.keys", tt.data)
			got, err := certs.LoadTicketKeys(path)
			if tt.wantErr != "" {
				var te *certs.TicketKeyFileError
				if !errors.As(err, &te) || te.Path != path || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadTicketKeys = %v, want a *TicketKeyFileError for %q containing %q", err, path, tt.wantErr)
				}
				for _, k := range [][]byte{k48, bin48} {
					if strings.Contains(err.Error(), b64(k)) || bytes.Contains([]byte(err.Error()), k) {
						t.Errorf("error %q holds a key", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadTicketKeys: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("key %d differs from the file's", i)
				}
			}
		})
	}
	if _, err := certs.LoadTicketKeys(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v, want no such file", err)
	}
}

// ticketServer is a ServerTLSConfig with keys from path, served on
// 127.0.0.1.
type ticketServer struct {
	addr string
	keys *certs.TicketKeyFile
	cfg  *tls.Config
}

func newTicketServer(t *testing.T, f certstest.Files, path string, clock *testClock) ticketServer {
	t.Helper()
	keys, err := certs.OpenTicketKeyFile(path, zerolog.New(t.Output()))
	if err != nil {
		t.Fatalf("OpenTicketKeyFile: %v", err)
	}
	cfg := certs.ServerTLSConfig(newSource(t, f, nil), certs.SNIPolicy{CName: cname}, nil)
	certs.UseTicketKeyFile(cfg, keys)
	if clock != nil {
		cfg.Time = clock.Now
	}
	return ticketServer{addr: serve(t, cfg), keys: keys, cfg: cfg}
}

// TestTicketKeyFileSharedAndRotated checks that servers reading one key
// file resume each other's sessions, that a rotated file ("new key first,
// old key second") still opens old tickets while sealing new ones with the
// new key, and that a ticket stops resuming once its key leaves the file.
func TestTicketKeyFileSharedAndRotated(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			oldKey, newKey := ticketKey(48), ticketKey(48)
			path := certstest.WriteFile(t, t.TempDir(), "ticket.keys", keyLines(oldKey))
			a, b := newTicketServer(t, f, path, nil), newTicketServer(t, f, path, nil)
			// Each client keeps one ticket; a resumption may replace it.
			client := func() *tls.Config {
				c := clientConfig(f, cname)
				c.MaxVersion = version
				c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				return c
			}
			resumed := func(addr string, c *tls.Config) bool {
				t.Helper()
				cs, err := dial(addr, c)
				if err != nil {
					t.Fatalf("handshake with %s: %v", addr, err)
				}
				return cs.DidResume
			}

			shared, oldTicket, dropped := client(), client(), client()
			for _, c := range []*tls.Config{shared, oldTicket, dropped} {
				resumed(a.addr, c) // tickets sealed with the old key
			}
			if !resumed(b.addr, shared) {
				t.Fatal("a session from server A did not resume on server B with the same key file")
			}

			writeKeys(t, path, keyLines(newKey, oldKey))
			for _, s := range []ticketServer{a, b} {
				if err := s.keys.Reload(); err != nil {
					t.Fatalf("Reload: %v", err)
				}
			}
			if !resumed(b.addr, oldTicket) {
				t.Error("after rotation, a ticket sealed with the old (second) key did not resume")
			}
			newTicket := client()
			resumed(a.addr, newTicket)
			// A server that knows only the new key tells which key sealed it.
			c := newTicketServer(t, f, certstest.WriteFile(t, t.TempDir(), "new.keys", keyLines(newKey)), nil)
			if !resumed(c.addr, newTicket) {
				t.Error("after rotation, a new ticket was not sealed with the new (first) key")
			}

			writeKeys(t, path, keyLines(newKey))
			if err := a.keys.Reload(); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			if resumed(a.addr, dropped) {
				t.Error("a ticket sealed with a key no longer in the file resumed; want a full handshake")
			}
		})
	}
}

// TestTicketKeyFileBadReloadKeepsKeys checks that a file that no longer
// parses leaves the previous keys in force.
func TestTicketKeyFileBadReloadKeepsKeys(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	path := certstest.WriteFile(t, t.TempDir(), "ticket.keys", keyLines(ticketKey(48)))
	a := newTicketServer(t, f, path, nil)
	c := clientConfig(f, cname)
	c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	if _, err := dial(a.addr, c); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, path, []byte("not base64\n"))
	var te *certs.TicketKeyFileError
	if err := a.keys.Reload(); !errors.As(err, &te) {
		t.Fatalf("Reload of a bad file = %v, want a *TicketKeyFileError", err)
	}
	if cs, err := dial(a.addr, c); err != nil || !cs.DidResume {
		t.Errorf("after a bad reload: resumed %v, %v; want resumed with the previous keys", cs.DidResume, err)
	}
}

// TestTicketKeyFileMaxTicketAge checks that keys from a file, which are
// never forgotten, still resume a session for at most
// certs.MaxTicketAge after it was established.
func TestTicketKeyFileMaxTicketAge(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), cname)
	path := certstest.WriteFile(t, t.TempDir(), "ticket.keys", keyLines(ticketKey(80)))
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			start := time.Now()
			clock := &testClock{now: start}
			a := newTicketServer(t, f, path, clock)
			client := func() *tls.Config {
				c := clientConfig(f, cname)
				c.MaxVersion = version
				c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				return c
			}
			young, old := client(), client()
			for _, c := range []*tls.Config{young, old} {
				if _, err := dial(a.addr, c); err != nil {
					t.Fatal(err)
				}
			}
			for _, tt := range []struct {
				name   string
				at     time.Duration
				client *tls.Config
				want   bool
			}{
				{"just before MaxTicketAge", certs.MaxTicketAge - time.Minute, young, true},
				{"just after MaxTicketAge", certs.MaxTicketAge + time.Minute, old, false},
			} {
				clock.Set(start.Add(tt.at))
				cs, err := dial(a.addr, tt.client)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if cs.DidResume != tt.want {
					t.Errorf("%s (+%s): resumed = %v, want %v", tt.name, tt.at, cs.DidResume, tt.want)
				}
			}
		})
	}
}
