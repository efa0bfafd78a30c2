package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// fail answers a request that is refused before reaching the backend.
func (p *Proxy) fail(st *reqState, status int, msg string) {
	st.ids.set(st.rec.Header())
	if st.grpc {
		writeGRPCError(&st.rec, &st.rec, status, msg)
		return
	}
	WriteError(&st.rec, status, msg, st.ids.id)
}

// modifyResponse runs when the backend's response headers arrive. An
// answer that readWhole takes is read whole here, its replica slot
// released, and ReverseProxy then copies it from memory; a body that
// breaks off is an error, which ReverseProxy hands to handleError before
// anything is written to the client.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	st := stateOf(resp.Request)
	st.upstreamDone()
	st.outcome = outcomeAnswered
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The 101 is written after ReverseProxy hijacks the
		// connection, not through WriteHeader.
		st.rec.upgrade = true
	}
	// Ours replace any the backend sent, so the client sees one of each.
	st.ids.set(resp.Header)
	held, err := p.readWhole(st, resp)
	if err != nil {
		return err
	}
	if held {
		resp.Body = &st.held
	} else {
		p.watchStream(st, resp)
	}
	return nil
}

// handleError is the ReverseProxy's ErrorHandler: the round trip failed
// before any response header was written.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	p.failed(w, r, stateOf(r), err)
}

// failed answers a request that failed before any response header was
// written: reading the client's body, or the round trip to the backend.
func (p *Proxy) failed(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	if !st.upstreamStart.IsZero() && st.rec.upstreamEnd.IsZero() {
		st.upstreamDone()
	}
	status, msg, reason, setting := p.errorStatus(r, err)
	if reason != "" {
		p.metrics.UpstreamError(reason)
	}
	switch reason {
	case metrics.UpstreamRefused, metrics.UpstreamDialTimeout, metrics.UpstreamReset:
		st.outcome = outcomeConnFailed
	}
	if status == StatusClientClosedRequest {
		// Not a backend failure: the client left.
		p.log.Debug().Err(err).Str(keyRequestID, st.ids.id).Msg("client closed the request before the backend answered")
	} else {
		level, what := zerolog.ErrorLevel, "backend request failed"
		if reason == "" {
			level, what = zerolog.DebugLevel, "request body refused"
		}
		e := p.log.WithLevel(level).Err(err).Int(keyStatus, status)
		if setting != "" {
			// The error body states the value; the operator gets
			// the Config field that sets it.
			e.Str(keySetting, setting)
		}
		e.Str(keyRequestID, st.ids.id).Msg(what)
	}
	if st.grpcDeadline && status == http.StatusGatewayTimeout && errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		msg = msgGRPCDeadline
	}
	st.ids.set(w.Header())
	if st.grpc {
		writeGRPCError(w, &st.rec, status, msg)
		return
	}
	WriteError(w, status, msg, st.ids.id)
}
