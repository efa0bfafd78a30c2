package filewatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
)

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startWatch runs a real Watcher over files and counts OnChange calls. It
// returns once the first call (Run's initial check) has happened, with the
// count reset to zero.
func startWatch(t *testing.T, files ...string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	w, err := New(Config{Files: files, OnChange: func() { n.Add(1) }, Debounce: 20 * time.Millisecond, Poll: -1,
		OnError: func(err error) { t.Logf("watch error: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, 5*time.Second, "the initial OnChange", func() bool { return n.Load() == 1 })
	n.Store(0)
	return &n
}

func TestRealUpdates(t *testing.T) {
	for _, tt := range []struct {
		name   string
		update func(t *testing.T, file string)
	}{
		{"rewrite in place", func(t *testing.T, file string) { write(t, file, "new") }},
		{"replace by rename", func(t *testing.T, file string) {
			tmp := file + ".tmp"
			write(t, tmp, "new")
			if err := os.Rename(tmp, file); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete and re-create", func(t *testing.T, file string) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			write(t, file, "new")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "cert.pem")
			write(t, file, "old")
			n := startWatch(t, file)
			tt.update(t, file)
			waitFor(t, 5*time.Second, "OnChange after the update", func() bool { return n.Load() >= 1 })
		})
	}
}

// TestKubernetesSecretSwap reproduces the kubelet's AtomicWriter: the data
// lives in a timestamped directory, "..data" is a symlink to it, the visible
// names are symlinks into "..data", and an update writes a new directory,
// points "..data_tmp" at it, renames "..data_tmp" over "..data" and removes
// the old directory.
func TestKubernetesSecretSwap(t *testing.T) {
	vol := t.TempDir()
	mkdata := func(ts, content string) {
		dir := filepath.Join(vol, ts)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "tls.crt"), content)
	}
	mkdata("..2026_11_28_10_00_00.1", "v1")
	must(t, os.Symlink("..2026_11_28_10_00_00.1", filepath.Join(vol, "..data")))
	must(t, os.Symlink(filepath.Join("..data", "tls.crt"), filepath.Join(vol, "tls.crt")))

	n := startWatch(t, filepath.Join(vol, "tls.crt"))
	for i, ts := range []string{"..2026_11_28_11_00_00.2", "..2026_11_28_12_00_00.3", "..2026_11_28_13_00_00.4"} {
		old, err := os.Readlink(filepath.Join(vol, "..data"))
		must(t, err)
		mkdata(ts, "v"+ts)
		must(t, os.Symlink(ts, filepath.Join(vol, "..data_tmp")))
		must(t, os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")))
		must(t, os.RemoveAll(filepath.Join(vol, old)))
		want := int64(i + 1)
		waitFor(t, 5*time.Second, "OnChange after swap", func() bool { return n.Load() >= want })
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The debounce and poll logic, on a fake clock.
func TestLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "key.pem")
		write(t, file, "a")
		var changes, rewatches atomic.Int64
		var errs []error
		w, err := New(Config{Files: []string{file}, OnChange: func() { changes.Add(1) },
			OnError: func(err error) { errs = append(errs, err) }, Debounce: 250 * time.Millisecond, Poll: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		events, errc := make(chan fsnotify.Event), make(chan error)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.loop(ctx, events, errc, func() { rewatches.Add(1) }) }()

		// A burst of events with a content change: one check, one OnChange.
		write(t, file, "b")
		for range 10 {
			events <- fsnotify.Event{Name: file, Op: fsnotify.Write}
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		if got := changes.Load(); got != 0 {
			t.Fatalf("OnChange calls during the burst = %d, want 0 (debounced)", got)
		}
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		if got := changes.Load(); got != 1 {
			t.Fatalf("OnChange calls after the burst = %d, want 1", got)
		}

		// An event without a content change: checked, not reported.
		events <- fsnotify.Event{Name: file, Op: fsnotify.Chmod}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := changes.Load(); got != 1 {
			t.Errorf("OnChange calls after a no-op event = %d, want 1", got)
		}

		// A change with no event at all: the poll finds it.
		write(t, file, "c")
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := changes.Load(); got != 2 {
			t.Errorf("OnChange calls after a silent change and a poll = %d, want 2", got)
		}

		// A watch error (queue overflow) is reported and triggers a check.
		write(t, file, "d")
		errc <- fsnotify.ErrEventOverflow
		time.Sleep(time.Second)
		synctest.Wait()
		if got := changes.Load(); got != 3 || len(errs) != 1 || !errors.Is(errs[0], fsnotify.ErrEventOverflow) {
			t.Errorf("after an overflow: OnChange calls = %d, errors = %v; want 3 and the overflow", got, errs)
		}
		if rewatches.Load() < 3 {
			t.Errorf("rewatch calls = %d, want one per check", rewatches.Load())
		}

		// The file disappearing is a change too.
		must(t, os.Remove(file))
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := changes.Load(); got != 4 {
			t.Errorf("OnChange calls after the file went away = %d, want 4", got)
		}

		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("loop returned %v, want context.Canceled", err)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{OnChange: func() {}}); err == nil {
		t.Error("New without files: nil error, want one")
	}
	if _, err := New(Config{Files: []string{"x"}}); err == nil {
		t.Error("New without OnChange: nil error, want one")
	}
}
