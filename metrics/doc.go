// Package metrics owns scoregate's operational endpoints: the scoregate_*
// Prometheus collectors ([Metrics], built by [New] on a caller's registry),
// and the /metrics, /healthz and /readyz mux of the metrics listener
// ([NewMux]).
//
// scoregate_proxy_overhead_seconds ([Metrics.Overhead]) is the time a
// forwarded request spends in scoregate itself, to compare with Azure ML's
// front end (3 ms mean, 15 ms p99): from the request's arrival until it is
// handed to the backend client, less the time spent waiting for the
// client's request body, plus from the backend's response headers (or its
// failure) until the response header is handed to the client's
// connection. It leaves out the wait for the backend
// (scoregate_upstream_duration_seconds) and the transfer of bodies in
// either direction, so that slow clients and large answers do not show up
// as scoregate's cost; scoregate_request_duration_seconds has the
// request's whole time.
//
// It imports only the standard library and the Prometheus client, so every
// other package may depend on it.
package metrics
