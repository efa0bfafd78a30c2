package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/scoregate/scoregate/metrics"
)

// maxProbeTimeout bounds one health check.
const maxProbeTimeout = 5 * time.Second

// probe asks rep GET / (where the Azure ML inference server answers
// "Healthy" once the model's init() is done) over the connections requests
// use, or the service's health URL over connections of its own, and
// returns the outcome; timedOut reports a check that got no answer (or no
// connection slot) before ctx's deadline, which setCheck may count as
// busy.
func (p *Proxy) probe(ctx context.Context, rep *replica) (info metrics.BackendInfo, timedOut bool) {
	info = metrics.BackendInfo{URL: rep.origin.Redacted(), Address: rep.addr, Service: rep.svc.label}
	var what string // the check, for its error
	var err error
	if rep.svc.h2c && rep.probeTr == nil {
		what = grpcHealthPath
		err = p.probeGRPC(ctx, rep, &info)
	} else {
		what, err = p.probeHTTP(ctx, rep, &info)
	}
	info.Ready, info.CheckedAt = err == nil, time.Now()
	if err != nil {
		if timedOut = probeTimedOut(err); timedOut {
			err = fmt.Errorf("%s: no answer within the check's %v", what, p.probeTimeout())
		}
		info.Error = err.Error()
	}
	return info, timedOut
}

// probeHTTP is the check of a replica by GET (its probe URL); what names
// it, as "GET /path".
func (p *Proxy) probeHTTP(ctx context.Context, rep *replica, info *metrics.BackendInfo) (what string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rep.probeURL, nil)
	if err != nil {
		return "GET " + rep.probeURL, err
	}
	what = "GET " + req.URL.RequestURI()
	req.Header.Set("User-Agent", "scoregate-probe")
	var resp *http.Response
	if rep.probeTr != nil {
		resp, err = rep.probeTr.RoundTrip(req)
	} else {
		resp, err = p.replicaRoundTrip(rep, req)
	}
	if err != nil {
		return what, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
	resp.Body.Close()
	info.Status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return what, fmt.Errorf("%s answered %s", what, resp.Status)
	}
	return what, nil
}

// probeTimedOut reports whether a check failed for want of an answer in
// time, rather than because the replica refused it: the context's deadline
// or a timeout after the connection was made. A connection that could not
// be made is down, even when that took until the deadline: a busy server's
// kernel still accepts connections.
func probeTimedOut(err error) bool {
	if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne := net.Error(nil)
	return errors.As(err, &ne) && ne.Timeout()
}

// probeTimeout is how long one health check may take.
func (p *Proxy) probeTimeout() time.Duration { return min(p.probeInterval, maxProbeTimeout) }

// Run keeps the services current until ctx is done: it checks every
// replica's health (GET /, or the service's health URL) at once and then
// every Config.ProbeInterval, and resolves the targets given by name every
// Config.ResolveInterval. A replica failing its check takes no requests
// (unless every replica of its service fails), and an ejected one returns
// when it passes. A check that times out while the replica is working is
// busy, not failed (see pool.setCheck). Run logs each change. The caller
// owns the goroutine that runs it.
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
				pctx, cancel := context.WithTimeout(ctx, p.probeTimeout())
				info, timedOut := p.probe(pctx, rep)
				cancel()
				if ctx.Err() != nil {
					return
				}
				info, readyChanged, busyChanged := s.pool.setCheck(rep, info, timedOut)
				switch {
				case readyChanged:
					ev := p.log.Info()
					if !info.Ready {
						ev = p.log.Warn().Str("error", info.Error)
					}
					ev.Bool("ready", info.Ready).Str(keyService, s.label).Str(keyReplica, rep.addr).Str("backend", info.URL).Msg("backend health changed")
				case busyChanged:
					// A one-worker model is busy with every long
					// request: not worth a line at info.
					p.log.Debug().Bool("busy", info.Busy).Str(keyService, s.label).Str(keyReplica, rep.addr).Str("error", info.Error).
						Msg("replica busy or not: a health check that times out while the replica works leaves it in rotation")
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
// answered its last check or is busy. A replica is busy (Ready and Busy)
// when its check timed out while it was working: it had requests
// outstanding, or answered one since the check before, and it answered
// something within Config.UpstreamTimeout. A one-worker model server
// answers nothing else while it scores. A timeout while the replica is
// idle, a connection that cannot be made, and an answer other than 2xx
// are down. Before its first check a replica has no CheckedAt.
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
