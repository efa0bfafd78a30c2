package filewatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Config configures a Watcher.
type Config struct {
	// Files are the paths to watch; required. They need not exist yet.
	Files []string
	// OnChange is called after the content of any file changed (or a file
	// appeared or went away). Calls come from Run's goroutine, one at a
	// time. One of OnChange and Reload is required.
	OnChange func()
	// Reload, in place of OnChange, reloads the files and says whether
	// they were valid. A refused change is tried again every Retry until
	// Reload accepts it or Settle has passed since the change; the last
	// try is called with final set, and only that one should report the
	// failure: a certificate and its key are often written a moment apart,
	// and the pair in between does not match. Calls come from Run's
	// goroutine, one at a time.
	Reload func(final bool) error
	// Settle is how long a refused change is retried; if zero, 5s.
	Settle time.Duration
	// Retry is the interval between tries within Settle; if zero, 100ms.
	Retry time.Duration
	// OnError, if not nil, is told about watch problems that the poll
	// covers for (a directory that cannot be watched, an event-queue
	// overflow). Calls come from Run's goroutine.
	OnError func(error)
	// Debounce is how long the directories must stay quiet after an event
	// before the files are checked; if zero, 250ms.
	Debounce time.Duration
	// Poll is how often the files are checked without any event; if zero,
	// 10s; if negative, never.
	Poll time.Duration
}

// Watcher watches files for content changes. Create it with New and start
// it with Run.
type Watcher struct {
	cfg Config

	// Owned by Run's goroutine.
	ctx       context.Context // Run's
	last      []digest        // what the files held at the last check; nil before the first
	unwatched map[string]bool // directories whose watch failed, reported once
}

// digest is a file's content hash, or the error reading it.
type digest struct {
	sum [sha256.Size]byte
	err string
}

// New returns a Watcher for cfg.
func New(cfg Config) (*Watcher, error) {
	if len(cfg.Files) == 0 {
		return nil, errors.New("filewatch: no files to watch")
	}
	if (cfg.OnChange == nil) == (cfg.Reload == nil) {
		return nil, errors.New("filewatch: give exactly one of OnChange and Reload")
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 100 * time.Millisecond
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 250 * time.Millisecond
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Second
	}
	cfg.Files = slices.Clone(cfg.Files)
	return &Watcher{cfg: cfg, unwatched: map[string]bool{}}, nil
}

// Run watches until ctx is done and returns ctx's error. It returns another
// error only if no watch can be set up at all (then nothing is polled
// either).
//
// Run calls OnChange once as soon as its watches are in place: the caller
// loaded the files at some earlier point, and a change made between then
// and now raised no event. OnChange must therefore be idempotent, as a
// reload that compares content is.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	w.ctx = ctx
	w.addDirs(fw)
	w.check() // the first check always reports: w.last is nil
	return w.loop(ctx, fw.Events, fw.Errors, func() { w.addDirs(fw) })
}

// loop is the debounce and poll logic, apart from fsnotify so that it can be
// tested with a fake clock. rewatch runs before each check, because a
// directory that was removed and created again needs a new watch.
func (w *Watcher) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error, rewatch func()) error {
	w.ctx = ctx
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var pollC <-chan time.Time
	if w.cfg.Poll > 0 {
		poll := time.NewTicker(w.cfg.Poll)
		defer poll.Stop()
		pollC = poll.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-events:
			if !ok {
				events = nil // closed: the poll still works
				continue
			}
			debounce.Reset(w.cfg.Debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.report(err)
			// An overflow means events were lost: check now.
			debounce.Reset(w.cfg.Debounce)
		case <-debounce.C:
			rewatch()
			w.check()
		case <-pollC:
			rewatch()
			w.check()
		}
	}
}

// check calls OnChange if the files' content differs from the last check.
func (w *Watcher) check() {
	now := w.snapshot()
	if slices.Equal(now, w.last) {
		return
	}
	w.last = now
	if w.cfg.OnChange != nil {
		w.cfg.OnChange()
		return
	}
	w.settle()
}

// settle calls Reload until it succeeds, Run's context is done, or Settle
// has passed, waiting Retry between tries; the last try is final.
func (w *Watcher) settle() {
	deadline := time.Now().Add(w.cfg.Settle)
	t := time.NewTimer(w.cfg.Retry)
	defer t.Stop()
	for {
		final := !time.Now().Add(w.cfg.Retry).Before(deadline)
		if w.cfg.Reload(final) == nil || final {
			return
		}
		t.Reset(w.cfg.Retry)
		select {
		case <-w.ctx.Done():
			return // shutting down: nothing to report
		case <-t.C:
		}
	}
}

func (w *Watcher) snapshot() []digest {
	d := make([]digest, len(w.cfg.Files))
	for i, name := range w.cfg.Files {
		d[i] = hashFile(name)
	}
	return d
}

func hashFile(name string) digest {
	f, err := os.Open(name) // follows symlinks, as the kubelet's layout needs
	if err != nil {
		return digest{err: err.Error()}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return digest{err: err.Error()}
	}
	var d digest
	h.Sum(d.sum[:0])
	return d
}

// addDirs watches each file's directory, and the directory its symlinks
// resolve to, when that differs. Adding a watched directory again is
// harmless.
func (w *Watcher) addDirs(fw *fsnotify.Watcher) {
	var dirs []string
	for _, name := range w.cfg.Files {
		dirs = append(dirs, filepath.Dir(name))
		if real, err := filepath.EvalSymlinks(name); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	slices.Sort(dirs)
	for _, dir := range slices.Compact(dirs) {
		if slices.Contains(fw.WatchList(), dir) {
			continue
		}
		if err := fw.Add(dir); err != nil {
			if !w.unwatched[dir] {
				w.unwatched[dir] = true
				w.report(fmt.Errorf("watching directory %s: %w; relying on the poll until it can be watched", dir, err))
			}
			continue
		}
		delete(w.unwatched, dir)
	}
}

func (w *Watcher) report(err error) {
	if w.cfg.OnError != nil {
		w.cfg.OnError(err)
	}
}
