package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Run measures cfg's scenario and returns the result. It returns an error
// wrapping ErrInvalidConfig if cfg is unusable; failed requests are not
// errors of Run but counts in Result.Errors.
//
// For H1 and H2 the connections are opened before the clock starts (a
// failure there is left to the first request on that connection to
// report). Then the load runs for cfg.Warmup, uncounted, and for
// cfg.Duration, measured; Run returns once the requests of the measured
// window have finished, each within cfg.Timeout. If ctx ends first, Run
// stops at once and returns what was measured so far, with
// Result.Interrupted set.
//
// While it runs, Run writes a progress line to progress once a second:
// rewritten in place with a carriage return if progress is a terminal, as
// separate lines otherwise. progress may be nil.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := newTarget(cfg)
	workers, closeConns := newWorkers(ctx, cfg, t)
	defer closeConns()

	rec := newRecorder()
	now := time.Now()
	p := &plan{start: now, mStart: now.Add(cfg.Warmup), mEnd: now.Add(cfg.Warmup + cfg.Duration), rate: cfg.Rate, timeout: cfg.Timeout}
	r := &Result{
		Label:       cfg.Label,
		URL:         cfg.URL.Redacted(),
		Connect:     cfg.Connect,
		Scenario:    cfg.Scenario,
		Loop:        "closed",
		Rate:        cfg.Rate,
		Concurrency: cfg.workers(),
		Method:      cfg.Method,
		Path:        cfg.Path,
		BodyBytes:   len(t.body),
		Start:       p.mStart.UTC(), // UTC drops the monotonic reading, so the JSON round-trips
	}
	if cfg.Rate > 0 {
		r.Loop = "open"
	}
	if cfg.Scenario == H2 {
		r.H2Conns, r.H2Streams = cfg.H2Conns, cfg.H2Streams
	}

	var wg sync.WaitGroup
	stopProgress := make(chan struct{})
	if progress != nil {
		pl := &progressLine{w: progress, tty: isTerminal(progress), label: r.Label + " " + string(r.Scenario), p: p, rec: rec}
		wg.Go(func() { pl.run(stopProgress) })
	}
	runLoop(ctx, p, workers, rec)
	close(stopProgress)
	wg.Wait()

	rec.fill(r, p.mStart)
	r.Interrupted = ctx.Err() != nil
	return r, nil
}

// newWorkers returns the workers of cfg's scenario and a function that
// closes their connections. For H1 and H2 it opens the connections first,
// concurrently, each within cfg.Timeout.
func newWorkers(ctx context.Context, cfg Config, t *target) ([]worker, func()) {
	var ws []worker
	var conns []*conn
	switch cfg.Scenario {
	case Handshake, Resume:
		for range cfg.Concurrency {
			ws = append(ws, handshakeWorker{t})
		}
	case H1:
		for range cfg.Concurrency {
			c := &conn{t: t}
			conns = append(conns, c)
			ws = append(ws, keepAliveWorker{c})
		}
	case H2:
		for range cfg.H2Conns {
			c := &conn{t: t}
			conns = append(conns, c)
			for range cfg.H2Streams {
				ws = append(ws, keepAliveWorker{c})
			}
		}
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			defer cancel()
			c.get(dctx) // an error here shows again, counted, on the first request
		})
	}
	wg.Wait()
	return ws, func() {
		for _, c := range conns {
			c.close()
		}
	}
}

// progressLine prints the state of a run once a second.
type progressLine struct {
	w     io.Writer
	tty   bool
	label string
	p     *plan
	rec   *recorder

	lastAll  uint64
	lastTime time.Time
	lastLen  int
}

func (pl *progressLine) run(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	pl.lastTime = pl.p.start
	for {
		select {
		case <-stop:
			if pl.tty && pl.lastLen > 0 {
				fmt.Fprintln(pl.w)
			}
			return
		case now := <-t.C:
			pl.print(now)
		}
	}
}

func (pl *progressLine) print(now time.Time) {
	phase, at := "warm-up", now.Sub(pl.p.start)
	switch {
	case now.After(pl.p.mEnd):
		phase, at = "finishing", now.Sub(pl.p.mStart)
	case !now.Before(pl.p.mStart):
		phase, at = "measuring", now.Sub(pl.p.mStart)
	}
	all := pl.rec.all.Load()
	rate := float64(all-pl.lastAll) / now.Sub(pl.lastTime).Seconds()
	pl.lastAll, pl.lastTime = all, now
	var errs uint64
	for i := range pl.rec.errs {
		errs += pl.rec.errs[i].Load()
	}
	line := fmt.Sprintf("%s  %-9s %5.1fs  %s ok  %s errors  %s req/s", pl.label, phase, at.Seconds(),
		group(pl.rec.ok.Load()), group(errs), group(uint64(rate+0.5)))
	if !pl.tty {
		fmt.Fprintln(pl.w, line)
		return
	}
	pad := max(pl.lastLen-len(line), 0)
	pl.lastLen = len(line)
	fmt.Fprint(pl.w, "\r"+line+strings.Repeat(" ", pad))
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
