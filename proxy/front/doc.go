// Package front is scoregate's client side: it accepts TLS connections,
// completes the handshake, serves HTTP/1.1 itself and hands HTTP/2
// (chosen by ALPN) to net/http's server.
//
// The HTTP/1.1 path exists for cost. net/http's server reads ahead on
// every connection in the background while a request is served (a
// goroutine that parks, and an extra read that meets EAGAIN, per
// request) and keeps a 4 KiB read and a 4 KiB write buffer on every
// connection, idle or not. Here one goroutine serves a connection, a
// fresh one after the handshake (whose stack grew for crypto): it waits
// for the next request by reading one byte, takes the buffers from pools
// only while a request is in flight, and writes the response head and a
// small body in one TLS record. Requests are parsed by
// http.ReadRequest, with net/http's server-side checks (Host, header
// names and values, Expect, versions, the header size limit as 431),
// and stricter framing (bare LF, bare CR and obsolete line folding are
// 400, in the header of every request, pipelined or not, and in a chunked
// body's trailer, which is decoded here). A connection that ends while
// the client may still be sending (an answer given before the body was
// read) ends with a lingering close, so that the client reads the answer
// instead of a reset. What this costs: a client that leaves is noticed only once its
// request has run for 10 ms with its body read (the connection is then
// watched by one read), or when its response is written.
package front
