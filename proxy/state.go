package proxy

import (
	"net/http"
	"net/url"
	"time"
)

// reqState is one request's state, shared by ServeHTTP, the ReverseProxy
// hooks (through the request context) and the access log.
type reqState struct {
	rec           statusRecorder
	body          clientBody
	ctl           http.ResponseController // the body's
	whole         bytesBody               // the body, when it was read whole before forwarding
	prefixed      prefixedBody            // the body, when only its first bytes were
	buf           *[copyBufferSize]byte   // holds the body read ahead; back to the pool at the end if set
	out           http.Request            // the direct path's request to the backend
	outURL        url.URL
	forwarded     [2]string // backs X-Forwarded-For and -Host (see outHeader)
	ids           requestIDs
	start         time.Time
	bodyWait      time.Duration // readAhead's wait for the client's body: the client's time, not scoregate's
	queueWait     time.Duration // the wait for a replica slot: the service's time, not scoregate's
	svc           *service      // the request's service
	rep           *replica      // its replica; nil when none is held
	path, rawPath string        // the path the service gets (see route)
	outcome       outcome       // what the request says about rep, for its release
	retried       bool          // sent to a second replica (retryElsewhere)
	upstreamStart time.Time     // when the request was handed to the backend client; zero if it was not
	upstream      time.Duration // until response headers or error; 0 if not sent
	done          bool          // ServeHTTP returned normally
	held          heldAnswer    // the backend's answer, when it was read whole (buffered.go)
	idle          *idleBody     // a streamed answer's body under the idle limit (streamidle.go); nil if none
	grpc          bool          // a gRPC call: refusals are answered as gRPC (grpc.go)
	grpcDeadline  bool          // its grpc-timeout bounds the request's context
}

// upstreamDone ends the wait for the backend, when its response headers
// arrive or the round trip fails: it measures upstream and starts the
// clock of the overhead's second part (statusRecorder.relay).
func (st *reqState) upstreamDone() {
	now := time.Now()
	st.upstream = now.Sub(st.upstreamStart)
	st.rec.upstreamEnd = now
}

// overhead is the time a forwarded request spent in scoregate itself,
// scoregate_proxy_overhead_seconds. It has two parts:
//
//   - from the request's arrival in ServeHTTP until it is handed to the
//     backend client (upstreamStart): the Host, request id and key checks
//     and the body read ahead, less the time readAhead waited for the
//     client's body to arrive (bodyWait), which is the client's;
//   - from the end of the wait for the backend (its response headers, or
//     the failure; for an answer read whole before it is written, see
//     buffered.go, the end of its body) until the final response header
//     is handed to the server (statusRecorder.relay): copying the header,
//     or mapping the failure and writing the error.
//
// The transfer of bodies in either direction is in neither part: a large
// upload streams while the backend client writes the request, which
// upstream counts, a response body read whole from the backend is the
// backend's time, and a response body read slowly by its client goes
// after the header. On the ReverseProxy path, ReverseProxy's own work
// between the hand-off and the round trip counts as upstream. An upgrade
// (101) hands its header over once the client's connection is hijacked
// (statusRecorder.Hijack), and the second part ends there.
func (st *reqState) overhead() time.Duration {
	return st.upstreamStart.Sub(st.start) - st.bodyWait - st.queueWait + st.rec.relay
}

type stateKey struct{}

// stateOf returns the reqState that ServeHTTP put into r's context.
func stateOf(r *http.Request) *reqState {
	return r.Context().Value(stateKey{}).(*reqState)
}
