// Package proxy owns scoregate's request path: everything between a
// decrypted request arriving on the TLS listener and the response bytes
// leaving it.
//
// In order, a [Proxy] checks the Host (HTTP/1.1 Host or HTTP/2 :authority)
// against the configured cname with [CheckHost] and answers 400 or 421
// before anything else; assigns request ids exactly as the Azure ML
// inference server does (x-request-id, x-ms-request-id,
// x-ms-client-request-id; see readRequestIDs); checks the bearer key;
// refuses a method that is not a token or a query with control characters
// (400); enforces the request body limit (413); routes the path to its
// service (404 for an unknown one); reads the body ahead (see below);
// admits the request to one of the service's replicas (503 with
// Retry-After when none has a slot within the queue wait); forwards it,
// streaming bodies in both directions, except that an answer of known
// length up to BufferResponseBytes is read whole first and its slot freed
// before a slow client reads it (buffered.go); maps every failure to 400, 408,
// 413, 499, 502 or 504 in one place (errorStatus); and writes one access
// log line per request with zerolog.
//
// # Services, replicas and admission
//
// A service is a set of targets (Config.Backends, or one of
// Config.Services, routed as Azure ML's front end routes
// /api/v1/service/NAME/...). A target given by a DNS name stands for every
// address it resolves to, each a replica, resolved again by [Proxy.Run].
// Each service's pool (pool.go) admits requests as azureml-fe does: at most
// MaxConcurrentPerReplica at once per replica, which also caps the
// replica's connections; the rest wait first come, first served, for at
// most MaxQueueWait. Among replicas with a slot, the one with the fewest
// outstanding requests is chosen. [Proxy.Run] checks each replica (GET /)
// every ProbeInterval; a replica failing it, or ejected after connection
// failures in a row, takes no requests until it passes again.
// [Proxy.Health] gives each service's replicas for the caller's readiness
// endpoint.
//
// # The backend seam
//
// A request reaches its replica through one of two implementations of one
// seam (forward.go says which takes what, and why):
//
//   - the direct path: the handler builds the backend's request into the
//     request's state and hands it to [h1.Transport], scoregate's own
//     goroutine-free HTTP/1.1 client, then copies the answer itself. It
//     serves plain-HTTP backends, which is what a scoring container on
//     the same node is;
//   - [net/http/httputil.ReverseProxy], over h1 for a plain-HTTP backend
//     with a path prefix, and over [net/http.Transport] for https backends
//     (HTTP/2 where offered) and protocol upgrades.
//
// Both build the backend's request with one function (outHeader: hop-by-hop
// headers and those Connection names removed, the client's Forwarded,
// X-Forwarded-*, X-Real-IP and X-Client-Cert* dropped and scoregate's own
// set, a verified client certificate's subject and SHA-256 added,
// Authorization withheld when keys are on, request trailers dropped, the
// request ids set) and one query escaper, so that the request line sent is
// one request line. An HTTP/1.0 request, or an HTTP/1.1 request with a
// chunked body (which net/http does not say whether Content-Length also
// came with), is answered with Connection: close, so that nothing after its
// body is ever read as a request (RFC 9112 section 6.1). Both relay 1xx responses and trailers,
// and both are covered by the same behaviour tests.
//
// A request reaches the model at most once: h1 sends a request again only
// as net/http does (nothing of it written, or an idempotent method or
// idempotency key with a body that can be had again), and checks a
// connection idle for 5 ms or more before reuse (one MSG_PEEK recv), so
// that a backend's keep-alive timeout, always seconds, fails no request.
// Only a request whose connection could not be made at all goes to another
// replica, once, and only with a body that can be had again
// (retryElsewhere).
//
// Client input is the client's fault. A body of known length up to 32 KiB
// is read whole before a backend connection is taken; a larger one, or one
// of unknown length, streams once its first bytes have arrived. Each read
// of the body has BodyReadTimeout; a stalled body is 408, a malformed or
// truncated one 400, and neither counts as a backend error. The upstream
// timeout runs from the end of the request to the response headers, on
// every path. When ServeHTTP returns, nothing reads the client's body any
// more (a body writer still waiting for it is ended), and [Proxy.Close]
// joins the goroutines the backend client started.
//
// Bearer keys live here too: a [KeySet] checks them in constant time, and a
// [KeyFile] loads them from a file (one or two keys, Azure ML's primary
// and secondary) and reloads it when the caller's file watcher says so; an
// invalid file keeps the previous keys in force.
//
// Every error body, from this package or its callers, is written by
// [WriteError] as {"error":"…","request_id":"…"}. Error bodies go to API
// clients: they state a limit's value ("backend sent no response headers
// within 1m0s") but name no command-line flag and no Config field, which
// the client cannot change; the failure's log line names the Config field
// (setting=UpstreamTimeout), for the operator. [Redirect] is the handler
// for the optional plain-HTTP listener: it applies the same Host policy and
// answers 308 to the https URL.
//
// Given a [metrics.Metrics], a forwarded request's proxy overhead
// (scoregate_proxy_overhead_seconds) is scoregate's own time: from its
// arrival in ServeHTTP until it is handed to the backend client, less the
// time the body read ahead waited for the client and the time it waited
// for a replica slot, plus from the backend's
// response headers (or its failure; for an answer read whole, its last
// byte) until the response header is handed to net/http. Neither the wait for the backend nor the transfer of a body in
// either direction is in it, so a client that uploads or reads slowly does
// not raise it (reqState.overhead has the details).
//
// The package does not terminate TLS itself (the caller's http.Server does)
// and knows nothing about certificates or file watching; it records into
// the metrics package's collectors when given them.
package proxy
