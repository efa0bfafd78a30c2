// Package proxy owns scoregate's request path: everything between a
// decrypted request arriving on the TLS listener and the response bytes
// leaving it.
//
// In order, a [Proxy] checks the Host (HTTP/1.1 Host or HTTP/2 :authority)
// against the configured cname with [CheckHost] and answers 400 or 421
// before anything else; assigns request ids the way the Azure ML inference
// server does (x-request-id, x-ms-request-id, x-ms-client-request-id);
// enforces the request body limit; forwards the request to the single
// backend, streaming bodies in both directions; maps every failure to 413,
// 499, 502 or 504 in one place; and writes one access log line per request
// with zerolog.
//
// Forwarding to a plain-HTTP backend (the scoring container on the same
// node) takes a direct path of its own (forward.go): the handler writes the
// request to a pooled keep-alive connection and reads the answer itself,
// which costs a fraction of http.Transport's per-request work (see the
// comment there for the measurements). HTTPS backends, backends with a path
// prefix and protocol upgrades go through a [net/http/httputil.ReverseProxy]
// over a tuned [net/http.Transport]. Both paths apply the same header rules;
// trailers from the backend are not forwarded by the direct path.
//
// Every error body, from this package or its callers, is written by
// [WriteError] as {"error":"…","request_id":"…"}. [Redirect] is the handler
// for the optional plain-HTTP listener: it applies the same Host policy and
// answers 308 to the https URL.
//
// The package does not terminate TLS itself (the caller's http.Server does)
// and knows nothing about certificates or file watching; it records into
// the metrics package's collectors when given them.
package proxy
