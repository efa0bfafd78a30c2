package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/scoregate/scoregate/bench"
)

// idleSampleEvery is how often holdIdle reads the server's memory while
// the idle connections are held.
const idleSampleEvery = time.Second

// checkIdle checks --idle and the flags that only it uses.
func (c *benchConfig) checkIdle() error {
	if c.idle < 0 {
		return usagef("--idle %d: want a number of connections", c.idle)
	}
	if c.idle == 0 {
		for _, name := range []string{"server-pid", "server-metrics"} {
			if c.given[name] {
				return usagef("--%s needs --idle", name)
			}
		}
		return nil
	}
	if c.given["server-pid"] && c.serverPID <= 0 {
		return usagef("--server-pid %d: want the server's process ID", c.serverPID)
	}
	if c.serverMetrics != "" {
		u, err := url.Parse(c.serverMetrics)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--server-metrics %q: want an http:// URL such as http://127.0.0.1:9464/metrics", c.serverMetrics)
		}
	}
	return nil
}

// serverProbe reads the memory of the server that --server-pid and
// --server-metrics name; a zero pid or an empty URL is not read.
type serverProbe struct {
	pid        int
	metricsURL string
	client     *http.Client
}

func (p serverProbe) read(ctx context.Context) (bench.ServerMemory, error) {
	var m bench.ServerMemory
	if p.pid != 0 {
		rss, err := bench.ReadRSS(p.pid)
		if err != nil {
			return m, fmt.Errorf("--server-pid %d: %w", p.pid, err)
		}
		m.RSS = rss
	}
	if p.metricsURL != "" {
		g, err := bench.ReadGoMemory(ctx, p.client, p.metricsURL)
		if err != nil {
			return m, fmt.Errorf("--server-metrics: %w", err)
		}
		m.HeapInuse, m.StackInuse = g.HeapInuse, g.StackInuse
	}
	return m, nil
}

// holdIdle opens --idle connections to --url, holds them for --duration
// and closes them: the measurement of what an idle client connection costs
// a server. It reads the server's memory (--server-pid, --server-metrics)
// once before opening them, then once a second while they are held, the
// first time as soon as they are all open and the last at the end of
// --duration, and reports the median of those readings minus the one
// before, per connection.
func holdIdle(ctx context.Context, c benchConfig, cfg bench.Config, stdout, stderr io.Writer) error {
	if c.url == "" {
		return usagef("--idle needs --url")
	}
	cfg.URL, _ = url.Parse(c.url) // checked by check
	cfg.Connect = c.connect
	cfg.Method = http.MethodGet

	// One keep-alive connection to the metrics endpoint, opened by the
	// first reading: the server holds it in every reading alike.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	probe := serverProbe{pid: c.serverPID, metricsURL: c.serverMetrics, client: &http.Client{Transport: tr, Timeout: c.timeout}}
	before, err := probe.read(ctx)
	if err != nil {
		// Nothing is measured yet: the flag names no server we can read.
		return usageError{err}
	}

	rep := bench.IdleReport{URL: c.url, Connect: c.connect, Connections: c.idle, ServerPID: c.serverPID, ServerMetrics: c.serverMetrics}
	start := time.Now()
	ic, err := bench.OpenIdle(ctx, cfg, c.idle)
	if errors.Is(err, bench.ErrInvalidConfig) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	defer ic.Close()
	held := time.Now()
	rep.Opening = held.Sub(start)
	fmt.Fprintf(stderr, "%d idle connections open to %s (opened in %s); holding them for %s\n",
		ic.Len(), hostOf(c.url), rep.Opening.Round(time.Millisecond), c.duration)

	measure := c.serverPID != 0 || c.serverMetrics != ""
	var during []bench.ServerMemory
	for i := time.Duration(0); ; i++ {
		at := held.Add(min(i*idleSampleEvery, c.duration))
		if !waitUntil(ctx, at) {
			break
		}
		if measure {
			m, err := probe.read(ctx)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("while holding the idle connections: %w", err)
			}
			if err == nil {
				during = append(during, m)
			}
		}
		if at.Sub(held) >= c.duration {
			break
		}
	}
	rep.Held = time.Since(held)
	rep.Interrupted = ctx.Err() != nil
	if lost := ic.Lost(); lost > 0 {
		return fmt.Errorf("bench: %d of the %d idle connections ended while held (closed by the server: its idle timeout or connection limit, such as scoregate's --idle-timeout and --max-connections, must allow them all); no figures", lost, ic.Len())
	}
	if len(during) > 0 {
		rep.SetMemory(before, during)
	}

	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Interrupted {
		return errors.New("bench: interrupted; the figures cover the part that ran")
	}
	return nil
}

// waitUntil waits for t, and reports false if ctx ends first.
func waitUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return ctx.Err() == nil
	}
}
