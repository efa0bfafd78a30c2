package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/scoregate/scoregate/metrics"
)

// maxProbeTimeout bounds one health check.
const maxProbeTimeout = 5 * time.Second

// probe asks rep GET / (where the Azure ML inference server answers
// "Healthy" once the model's init() is done) over the connections requests
// use, and returns the outcome.
func (p *Proxy) probe(ctx context.Context, rep *replica) metrics.BackendInfo {
	info := metrics.BackendInfo{URL: rep.origin.Redacted(), Address: rep.addr, Service: rep.svc.label}
	u := *rep.origin
	u.Path, u.RawPath, u.RawQuery = "/", "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err == nil {
		req.Header.Set("User-Agent", "scoregate-probe")
		var resp *http.Response
		if resp, err = p.replicaRoundTrip(rep, req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
			resp.Body.Close()
			info.Status = resp.StatusCode
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				err = fmt.Errorf("GET / answered %s", resp.Status)
			}
		}
	}
	info.Ready, info.CheckedAt = err == nil, time.Now()
	if err != nil {
		info.Error = err.Error()
	}
	return info
}

// Run keeps the services current until ctx is done: it checks every
// replica's health (GET /) at once and then every Config.ProbeInterval,
// and resolves the targets given by name every Config.ResolveInterval. A
// replica failing its check takes no requests (unless every replica of its
// service fails), and an ejected one returns when it passes. Run logs each
// change. The caller owns the goroutine that runs it.
func (p *Proxy) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range p.all {
		wg.Go(func() { s.checkLoop(ctx) })
		if s.named {
			wg.Go(func() { s.resolveLoop(ctx) })
		}
	}
	wg.Wait()
}

func (s *service) resolveLoop(ctx context.Context) {
	t := time.NewTicker(s.px.resolveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.refresh(ctx)
	}
}

func (s *service) checkLoop(ctx context.Context) {
	p := s.px
	t := time.NewTicker(p.probeInterval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, rep := range s.pool.snapshot() {
			wg.Go(func() {
				pctx, cancel := context.WithTimeout(ctx, min(p.probeInterval, maxProbeTimeout))
				info := p.probe(pctx, rep)
				cancel()
				if ctx.Err() != nil {
					return
				}
				if s.pool.setCheck(rep, info) {
					ev := p.log.Info()
					if !info.Ready {
						ev = p.log.Warn().Str("error", info.Error)
					}
					ev.Bool("ready", info.Ready).Str(keyService, s.label).Str(keyReplica, rep.addr).Str("backend", info.URL).Msg("backend health changed")
				}
			})
		}
		wg.Wait()
		p.metrics.BackendReady(p.ready())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ready reports whether every service has a replica that passed its last
// check.
func (p *Proxy) ready() bool {
	for _, si := range p.Health() {
		if !si.Ready {
			return false
		}
	}
	return true
}

// Health returns each service's replicas and their last checks, the
// default service first: a service is ready when at least one replica
// answered its last check. Before its first check a replica has no
// CheckedAt.
func (p *Proxy) Health() []metrics.ServiceInfo {
	out := make([]metrics.ServiceInfo, 0, len(p.all))
	for _, s := range p.all {
		si := metrics.ServiceInfo{Name: s.label, Replicas: []metrics.BackendInfo{}}
		s.pool.mu.Lock()
		for _, r := range s.pool.replicas {
			info := r.check
			info.URL, info.Address, info.Service = r.origin.Redacted(), r.addr, s.label
			info.Outstanding, info.Ejected = r.outstanding, r.ejected
			si.Replicas = append(si.Replicas, info)
			if info.Ready {
				si.Ready = true
			}
		}
		s.pool.mu.Unlock()
		out = append(out, si)
	}
	return out
}
