package certs_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
)

const (
	keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	keyC = "cccccccccccccccccccccccccccccccc"
)

func TestParseAuthKeys(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{"one key", keyA + "\n", []string{keyA}, ""},
		{"primary and secondary", keyA + "\n" + keyB, []string{keyA, keyB}, ""},
		{"CRLF, blanks, comments and spaces", "# rotated 2026-11-28\r\n\r\n  " + keyA + "  \r\n" + keyB + "\r\n", []string{keyA, keyB}, ""},
		{"empty", "", nil, "no key in the file"},
		{"only comments", "# nothing\n\n", nil, "no key in the file"},
		{"three keys", keyA + "\n" + keyB + "\n" + keyC, nil, "line 3: more than 2 keys"},
		{"short key", "short\n", nil, "line 1: key has 5 characters, want at least 16"},
		{"space inside", keyA + " " + keyB, nil, "line 1: a key must not contain spaces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := certs.ParseAuthKeys([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, certs.ErrAuthKeyFile) {
					t.Fatalf("ParseAuthKeys(%q) error = %v, want ErrAuthKeyFile containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ParseAuthKeys(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestLoadAuthKeysNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	_, err := certs.LoadAuthKeys(path)
	var fe *certs.FileError
	if !errors.As(err, &fe) || fe.Role != certs.AuthKeyFileRole || fe.Path != path {
		t.Fatalf("LoadAuthKeys(missing) = %v, want a *FileError for the auth key file", err)
	}
	if got := err.Error(); !strings.HasPrefix(got, `auth key file "`+path+`": `) {
		t.Errorf("error = %q, want it to start with the role and path", got)
	}
}

// keysHolder records what AuthKeys applies.
type keysHolder struct {
	mu   sync.Mutex
	keys []string
}

func (h *keysHolder) store(k []string) { h.mu.Lock(); h.keys = k; h.mu.Unlock() }
func (h *keysHolder) get() []string    { h.mu.Lock(); defer h.mu.Unlock(); return h.keys }

func TestAuthKeysWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	writeFile(t, path, []byte(keyA+"\n"+keyB+"\n"))
	var h keysHolder
	a, err := certs.NewAuthKeys(path, h.store, zerolog.New(t.Output()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.get(); !slices.Equal(got, []string{keyA, keyB}) {
		t.Fatalf("applied keys = %q, want A and B", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		a.Watch(ctx, certs.WatchConfig{Debounce: testDebounce, Poll: -1, Settle: 100 * time.Millisecond, Retry: 20 * time.Millisecond})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Swap in a new secondary.
	renameInto(t, dir, "keys", []byte(keyA+"\n"+keyC+"\n"))
	waitFor(t, 2*time.Second, "keys A and C", func() bool { return slices.Equal(h.get(), []string{keyA, keyC}) })

	// A bad file keeps the previous keys and is counted.
	renameInto(t, dir, "keys", []byte("\n"))
	waitFor(t, 5*time.Second, "the refused reload to be counted", func() bool { return a.Counts().Errors == 1 })
	if got := h.get(); !slices.Equal(got, []string{keyA, keyC}) {
		t.Errorf("after an empty key file: applied keys = %q, want A and C still", got)
	}

	// Promote the secondary.
	renameInto(t, dir, "keys", []byte(keyC+"\n"))
	waitFor(t, 2*time.Second, "key C alone", func() bool { return slices.Equal(h.get(), []string{keyC}) })
	if c := a.Counts(); c.OK != 2 || c.Errors != 1 {
		t.Errorf("Counts() = %+v, want 2 applied and 1 refused", c)
	}
}

func FuzzParseAuthKeys(f *testing.F) {
	for _, s := range []string{"", keyA, keyA + "\n" + keyB, "# c\n" + keyA + "\r\n", keyA + "\n" + keyB + "\n" + keyC, "short", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := certs.ParseAuthKeys(b)
		if err != nil {
			return
		}
		if len(keys) < 1 || len(keys) > 2 {
			t.Fatalf("ParseAuthKeys(%q) = %d keys, want 1 or 2", b, len(keys))
		}
		for _, k := range keys {
			if len(k) < 16 || strings.ContainsAny(k, " \t\r\n") || strings.HasPrefix(k, "#") {
				t.Fatalf("ParseAuthKeys(%q) returned bad key %q", b, k)
			}
		}
		// Round trip: the keys, one per line, parse to themselves.
		again, err := certs.ParseAuthKeys([]byte(strings.Join(keys, "\n")))
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("round trip of %q = %q, %v", keys, again, err)
		}
	})
}

func TestSubPathMounts(t *testing.T) {
	// From a pod with the Secret mounted twice: as a directory at /tls,
	// and tls.crt alone at /etc/scoregate/tls.crt with subPath.
	const mountinfo = `1390 1301 0:417 / / rw,relatime master:370 - overlay overlay rw,lowerdir=/var/lib/containerd/l1
1391 1390 0:419 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1402 1390 0:411 / /tls ro,relatime - tmpfs tmpfs rw,size=8388608k,inode64
1403 1390 0:411 /..2026_11_28_10_00_00.123/tls.crt /etc/scoregate/tls.crt ro,relatime - tmpfs tmpfs rw,size=8388608k
1404 1390 8:1 /var/lib/kubelet/pods/x/etc-hosts /etc/my\040dir/hosts rw,relatime - ext4 /dev/sda1 rw
`
	got := certs.SubPathMounts(strings.NewReader(mountinfo), "/tls/tls.crt", "/tls/tls.key", "/etc/scoregate/tls.crt", "/etc/my dir/hosts")
	want := []string{"/etc/scoregate/tls.crt", "/etc/my dir/hosts"}
	if !slices.Equal(got, want) {
		t.Errorf("SubPathMounts = %q, want %q", got, want)
	}
}
