package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/scoregate/scoregate/metrics"
)

// roundTripFunc is a function that is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip is the ReverseProxy's transport: the request's replica, and
// once another one if the first could not be reached (see retryElsewhere).
func (p *Proxy) roundTrip(r *http.Request) (*http.Response, error) {
	st := stateOf(r)
	resp, err := p.replicaRoundTrip(st.rep, r)
	if err != nil && p.retryElsewhere(st, r, err) {
		r2 := r.Clone(r.Context())
		r2.URL.Host = st.rep.origin.Host
		if r.GetBody != nil {
			if r2.Body, err = r.GetBody(); err != nil {
				return nil, err
			}
		}
		resp, err = p.replicaRoundTrip(st.rep, r2)
	}
	return resp, err
}

// replicaRoundTrip sends r to rep: a plain-HTTP replica gets h1's
// goroutine-free client, except for protocol upgrades, which need
// net/http's (it hands back a connection to copy both ways); an https
// replica gets net/http's, with HTTP/2 where the replica offers it.
func (p *Proxy) replicaRoundTrip(rep *replica, r *http.Request) (*http.Response, error) {
	if rep.h1 != nil && !p.noH1 && !isUpgrade(r.Header) {
		return rep.h1.RoundTrip(r)
	}
	return rep.tr.RoundTrip(r)
}

// release gives the request's replica slot back.
func (p *Proxy) release(st *reqState) {
	if st.rep != nil {
		st.svc.pool.release(st.rep, st.outcome)
		st.rep = nil
	}
}

// refused answers a request the admission queue did not admit: 503 with
// Retry-After, or 499 for a client that left while it waited.
func (p *Proxy) refused(st *reqState, r *http.Request, err error) {
	if st.grpcDeadline && errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		p.fail(st, http.StatusGatewayTimeout, msgGRPCDeadline)
		return
	}
	if r.Context().Err() != nil {
		st.rec.status = StatusClientClosedRequest
		p.log.Debug().Str(keyService, st.svc.label).Str(keyRequestID, st.ids.id).Msg("client left while waiting for a replica")
		return
	}
	msg := msgQueueTimeout
	if ae := (*errAdmission)(nil); errors.As(err, &ae) {
		switch ae.reason {
		case metrics.RefusedQueueFull:
			msg = msgQueueFull
		case metrics.RefusedNoReplicas:
			msg = msgNoReplicas
		}
	}
	st.rec.Header().Set("Retry-After", p.retryAfter)
	p.fail(st, http.StatusServiceUnavailable, msg)
}

// retryElsewhere decides, after a failed attempt, whether the request goes
// once more to another replica of its service, and if so admits it there
// (st.rep changes; the caller resends). Only a request that reached no
// replica at all qualifies, one whose connection could not be made, and
// only with a body that is absent or can be had again: nothing is sent
// twice that a replica may have started to work on. h1 has already retried
// on a new connection to the same replica where net/http would.
func (p *Proxy) retryElsewhere(st *reqState, r *http.Request, err error) bool {
	var opErr *net.OpError
	if st.retried || r.Context().Err() != nil || !errors.As(err, &opErr) || opErr.Op != "dial" ||
		(r.Body != nil && r.Body != http.NoBody && r.GetBody == nil) || !st.svc.pool.hasOther(st.rep) {
		return false
	}
	st.retried = true
	failed := st.rep
	st.outcome = outcomeConnFailed
	p.release(st)
	st.outcome = outcomeNone
	rep, aerr := st.svc.pool.acquire(r.Context(), failed)
	if aerr != nil {
		return false
	}
	p.log.Debug().Err(err).Str(keyService, st.svc.label).Str(keyReplica, failed.addr).Str("to", rep.addr).
		Str(keyRequestID, st.ids.id).Msg("replica unreachable; sending the request to another")
	st.rep = rep
	return true
}
