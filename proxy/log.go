package proxy

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// Access log and error log field keys. The access log never carries the
// query string, the Authorization header or any body.
const (
	keyMethod           = "method"
	keyPath             = "path"
	keyStatus           = "status"
	keyBytesIn          = "bytes_in"
	keyBytesOut         = "bytes_out"
	keyDuration         = "duration_ms"          // float milliseconds, arrival to end of response
	keyUpstreamDuration = "upstream_duration_ms" // float milliseconds, the wait for the backend's response headers
	keyRequestID        = "request_id"
	keyTLSVersion       = "tls_version"
	keyTLSResumed       = "tls_resumed"
	keyClient           = "client"
	keyProto            = "proto"
	keyAborted          = "aborted"
	keyService          = "service"
	keyReplica          = "replica"
	// keySetting names the Config field behind a refusal or a timeout
	// (such as "UpstreamTimeout"), for the operator; error bodies never
	// name settings, since the API client cannot change them.
	keySetting = "setting"
)

// msgAccess is the message of every access log line.
const msgAccess = "request"

// statusRecorder is the http.ResponseWriter that both backend paths (and
// every error response) write to: it records the final status, the body
// bytes written and, for a forwarded request, how long scoregate took from
// the end of the wait for the backend to handing the final response header
// to the server. Unwrap lets http.ResponseController reach the server's
// writer for Flush, Hijack and deadlines, which ReverseProxy uses to
// stream.
type statusRecorder struct {
	http.ResponseWriter
	status int   // final status; 0 until the header is written
	bytes  int64 // body bytes written

	// upstreamEnd is when the wait for the backend ended: its response
	// headers arrived, or the round trip failed. Zero if the request was
	// not forwarded, or is still waiting.
	upstreamEnd time.Time
	// relay is the time from upstreamEnd until the final header was
	// handed to the server (the second part of the proxy overhead); 0 if
	// upstreamEnd was not set then. The server sends the header with the
	// first body bytes, so neither that send nor the body is in it.
	relay time.Duration
	// upgrade is set when the backend switched protocols (101): its
	// header reaches the client through Hijack, not WriteHeader.
	upgrade bool
}

// WriteHeader records the first final status. 1xx responses other than 101
// (100 Continue, 103 Early Hints relayed by ReverseProxy) are not final.
func (w *statusRecorder) WriteHeader(code int) {
	final := w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols)
	if final {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
	if final {
		w.headerDone()
	}
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		// An implicit WriteHeader(200): the header is handed over now,
		// and the time the client takes to accept the body is not
		// scoregate's.
		w.status = http.StatusOK
		w.headerDone()
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// headerDone measures relay, once the final header has been handed over.
func (w *statusRecorder) headerDone() {
	if !w.upstreamEnd.IsZero() {
		w.relay = time.Since(w.upstreamEnd)
	}
}

// Unwrap returns the server's ResponseWriter for http.ResponseController.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes over the client's connection, as ReverseProxy does to
// switch protocols: it writes the backend's 101 to the connection itself,
// never calling WriteHeader, so the status is recorded here, once the
// connection is ours, for the access log and scoregate_requests_total. An
// error wraps http.ErrNotSupported where the server cannot hijack (HTTP/2),
// as http.ResponseController's does.
func (w *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.upgrade && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
		w.headerDone()
	}
	return c, brw, err
}

// logAccess writes the access log line of one request. It runs deferred,
// so it also logs a request whose response was aborted mid-stream
// (ReverseProxy panics with http.ErrAbortHandler, which net/http recovers).
func (p *Proxy) logAccess(st *reqState, r *http.Request, total time.Duration) {
	e := p.log.Info()
	if e == nil {
		return
	}
	e.Str(keyMethod, r.Method).
		Str(keyPath, r.URL.Path).
		Int(keyStatus, st.rec.status).
		Int64(keyBytesIn, st.body.n.Load()).
		Int64(keyBytesOut, st.rec.bytes).
		Float64(keyDuration, milliseconds(total))
	if st.upstream > 0 {
		e.Float64(keyUpstreamDuration, milliseconds(st.upstream))
	}
	e.Str(keyRequestID, st.ids.id)
	if r.TLS != nil {
		e.Str(keyTLSVersion, metrics.TLSVersion(r.TLS.Version)).Bool(keyTLSResumed, r.TLS.DidResume)
	}
	e.Str(keyClient, r.RemoteAddr).Str(keyProto, r.Proto)
	if !st.done {
		e.Bool(keyAborted, true)
	}
	e.Msg(msgAccess)
}

// milliseconds is d in float milliseconds, the unit the access log's
// duration fields name. It does not depend on zerolog's global
// DurationFieldUnit, which Dur would.
func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// stdLogWriter turns the few lines ReverseProxy logs through its ErrorLog
// (such as a backend read error while copying a response) into zerolog
// warnings.
type stdLogWriter struct{ log zerolog.Logger }

func (w stdLogWriter) Write(b []byte) (int, error) {
	w.log.Warn().Msg(string(bytes.TrimSpace(b)))
	return len(b), nil
}
