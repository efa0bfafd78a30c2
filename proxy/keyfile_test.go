package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

const (
	keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	keyC = "cccccccccccccccccccccccccccccccc"
)

func TestParseKeys(t *testing.T) {
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
		{"old Mac line endings (CR only)", keyA + "\r" + keyB, nil, "line 1: a key must not contain control characters"},
		{"NUL inside", keyA + "\x00", nil, "line 1: a key must not contain control characters"},
		{"byte order mark", "\uFEFF" + keyA + "\n", []string{keyA}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeys([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrKeyFile) {
					t.Fatalf("ParseKeys(%q) error = %v, want ErrKeyFile containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ParseKeys(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestLoadKeysNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	writeKeys(t, big, strings.Repeat("#", maxKeyFileSize+1))
	for _, path := range []string{filepath.Join(dir, "missing"), big} {
		_, err := LoadKeys(path)
		var fe *KeyFileError
		if !errors.As(err, &fe) || fe.Path != path {
			t.Fatalf("LoadKeys(%s) = %v, want a *KeyFileError naming the file", path, err)
		}
		if got := err.Error(); !strings.HasPrefix(got, `key file "`+path+`": `) {
			t.Errorf("error = %q, want it to start with the path", got)
		}
	}
}

func writeKeys(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeyFileReload: valid files are stored in the KeySet, an invalid one
// keeps the previous keys, only final tries are counted, and the metrics
// are the count.
func TestKeyFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, keyA+"\n"+keyB+"\n")
	reg := prometheus.NewRegistry()
	f, err := OpenKeyFile(path, zerolog.New(t.Output()), metrics.New(reg))
	if err != nil {
		t.Fatal(err)
	}
	authorized := func(key string) bool { return f.Keys().Authorized("Bearer " + key) }
	if !authorized(keyA) || !authorized(keyB) || authorized(keyC) {
		t.Fatal("after OpenKeyFile: want A and B authorized, C not")
	}
	reloads := func(result string) float64 {
		t.Helper()
		n, err := counterValue(reg, "scoregate_auth_key_reloads_total", map[string]string{"result": result})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	writeKeys(t, path, keyA+"\n"+keyC+"\n")
	if err := f.TryReload(false); err != nil {
		t.Fatalf("TryReload: %v", err)
	}
	if !authorized(keyC) || authorized(keyB) {
		t.Error("after a rotation: want C authorized and B not")
	}
	writeKeys(t, path, "\n")
	if err := f.TryReload(false); err == nil {
		t.Fatal("TryReload(empty file) = nil, want an error")
	}
	if got := reloads("error"); got != 0 {
		t.Errorf("errors counted after a try that was not final = %v, want 0", got)
	}
	if err := f.TryReload(true); err == nil {
		t.Fatal("TryReload(empty file, final) = nil, want an error")
	}
	if !authorized(keyA) || !authorized(keyC) {
		t.Error("after an empty key file: want A and C still authorized")
	}
	writeKeys(t, path, keyC+"\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err != nil { // unchanged: not counted
		t.Fatal(err)
	}
	if ok, errs := reloads("ok"), reloads("error"); ok != 2 || errs != 1 {
		t.Errorf("reloads ok, error = %v, %v; want 2, 1", ok, errs)
	}
	if authorized(keyA) || !authorized(keyC) {
		t.Error("after promoting the secondary: want only C authorized")
	}
}

// counterValue reads one series of a counter from reg.
func counterValue(reg *prometheus.Registry, name string, labels map[string]string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue(), nil
		}
	}
	return 0, nil
}

func FuzzParseKeys(f *testing.F) {
	for _, s := range []string{"", keyA, keyA + "\n" + keyB, "# c\n" + keyA + "\r\n", keyA + "\n" + keyB + "\n" + keyC, "short", "\x00", "000000\r000000000", "\uFEFF" + keyA} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseKeys(b)
		if err != nil {
			return
		}
		if len(keys) < 1 || len(keys) > 2 {
			t.Fatalf("ParseKeys(%q) = %d keys, want 1 or 2", b, len(keys))
		}
		for _, k := range keys {
			if len(k) < 16 || strings.ContainsAny(k, " \uFEFF") || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f }) || strings.HasPrefix(k, "#") {
				t.Fatalf("ParseKeys(%q) returned bad key %q", b, k)
			}
		}
		// Round trip: the keys, one per line, parse to themselves.
		again, err := ParseKeys([]byte(strings.Join(keys, "\n")))
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("round trip of %q = %q, %v", keys, again, err)
		}
	})
}
