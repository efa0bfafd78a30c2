// Package h1 is an HTTP/1.1 client transport for one plain-HTTP backend:
// the scoring container on the same node.
//
// A [Transport] is an [net/http.RoundTripper]. It keeps a pool of keep-alive
// connections to one address and does on the caller's goroutine what
// [net/http.Transport] does with two goroutines per connection: it writes
// the request, then reads the response. Only a request body that is large
// or of unknown length is written by a goroutine of its own, so that the
// backend may answer while the body is still streaming; the Transport
// counts those goroutines and [Transport.Close] joins them.
//
// It knows nothing of the proxy above it: the request it is given is sent
// as it is (method, request target, Host, headers, body framing), after a
// check that each of them is well formed, so that no byte of the request can
// change the meaning of the request line or the header block.
//
// Retries follow net/http's rule. A request is sent again, once, on a new
// connection only when the connection it went out on had carried requests
// before (the backend may have closed it while it sat idle) and either
// nothing of the request reached the socket, or the request is replayable:
// GET, HEAD, OPTIONS or TRACE, or carrying Idempotency-Key or
// X-Idempotency-Key, with a body that is absent or can be had again from
// GetBody. A scoring POST therefore reaches the backend at most once. To
// keep idle closes from failing requests at all, an idle connection is
// checked before reuse with a non-blocking MSG_PEEK read (about 0.4 µs
// alone, see BenchmarkPeerClosed; 1.2-1.7 µs as one more system call of
// a loaded request), every time or, with Config.CheckIdleAfter, once it
// has been idle for longer than a connection under load ever is.
//
// Clocks: DialTimeout bounds connecting; ResponseHeaderTimeout runs from
// the moment the whole request has been written until the response
// headers have arrived, as net/http.Transport's does; the response body
// may then take as long as it needs. The request's context cancels any of
// these waits.
package h1
