package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/scoregate/scoregate/metrics"
)

// maxProbeTimeout bounds one health check.
const maxProbeTimeout = 5 * time.Second

// ProbeBackend asks the backend GET / (where the Azure ML inference server
// answers "Healthy" once the model's init() is done) over the connections
// requests use. It returns the status, and an error unless it is 2xx.
func (p *Proxy) ProbeBackend(ctx context.Context) (int, error) {
	u := *p.backend
	u.Path, u.RawPath, u.RawQuery = "/", "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "scoregate-probe")
	resp, err := p.roundTrip(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("GET / answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// RunProbes checks the backend's health at once and then every
// Config.ProbeInterval until ctx is done, for BackendHealth and
// scoregate_backend_ready. It logs each change. The caller owns the
// goroutine that runs it.
func (p *Proxy) RunProbes(ctx context.Context) {
	t := time.NewTicker(p.probeInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, min(p.probeInterval, maxProbeTimeout))
		status, err := p.ProbeBackend(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		st := &metrics.BackendInfo{URL: p.backend.Redacted(), Ready: err == nil, Status: status, CheckedAt: time.Now()}
		if err != nil {
			st.Error = err.Error()
		}
		if prev := p.health.Load(); prev == nil || prev.Ready != st.Ready {
			ev := p.log.Info()
			if !st.Ready {
				ev = p.log.Warn().Str("error", st.Error)
			}
			ev.Bool("ready", st.Ready).Str("backend", st.URL).Msg("backend health changed")
		}
		p.health.Store(st)
		p.metrics.BackendReady(st.Ready)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// BackendHealth returns the result of the last health check, or a
// not-ready BackendInfo without CheckedAt before the first. The value is
// shared: do not modify it.
func (p *Proxy) BackendHealth() *metrics.BackendInfo {
	if st := p.health.Load(); st != nil {
		return st
	}
	return &metrics.BackendInfo{URL: p.backend.Redacted()}
}
