package proxy

import (
	"net/http"
)

// closeAfter reports whether r's connection must end once r is answered,
// so that nothing the client sent after r's body is read as a request.
// Go's HTTP/1.x request parser (http.ReadRequest, under net/http's server
// and proxy/front alike) accepts these requests, and by the time the
// handler runs it has erased what would single them out:
//
//   - HTTP/1.1 with a chunked body. Given Content-Length as well, net/http
//     drops the length (transfer.go, fixLength), decodes the chunks and
//     keeps the connection, so that whatever follows the last chunk is
//     served as the next request: a request smuggled past anything in
//     front that framed the body by its Content-Length. RFC 9112 6.1
//     requires the server to close the connection after answering such a
//     request, and the handler cannot tell whether Content-Length was
//     there, so every chunked request is answered and its connection
//     closed. The cost: a client that uploads chunked opens a new
//     connection (and TLS handshake) for its next request. A body of
//     known size goes with Content-Length from Python requests (bytes or
//     json=), curl -d and Go's net/http, which keep their connections;
//     requests with a generator body, and curl -T -, upload chunked.
//   - HTTP/1.0. net/http ignores Transfer-Encoding there (and deletes it),
//     so a keep-alive HTTP/1.0 request that announces a chunked body is
//     read as having none and its chunks as the next request; RFC 9112
//     6.1 says to treat such framing as faulty and close. Only HTTP/1.0
//     clients that ask for keep-alive (ApacheBench -k) lose anything.
//
// HTTP/2 frames bodies itself and is never affected.
func closeAfter(r *http.Request) bool {
	return r.ProtoMajor == 1 && (r.ProtoMinor == 0 || len(r.TransferEncoding) > 0)
}

// closingWriter is the server's ResponseWriter for a request whose
// connection must end with its response (closeAfter): it puts
// Connection: close on the final response header as that is written.
// The server (proxy/front, or net/http's) then closes the connection once
// the response is sent, without reading (or serving) anything the client
// pipelined after it.
// Setting the header once, up front, would not do: ReverseProxy and
// forward clear the header map after relaying each 1xx response. A 101
// (a protocol switch, after which the connection is a tunnel to the
// backend) is left alone.
type closingWriter struct {
	http.ResponseWriter
	final bool // the final header was written
}

func (w *closingWriter) WriteHeader(code int) {
	if !w.final && code >= 200 {
		w.final = true
		w.Header()["Connection"] = valueClose
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(b []byte) (int, error) {
	if !w.final {
		w.WriteHeader(http.StatusOK) // as the server would, implicitly
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the server's ResponseWriter for http.ResponseController.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// headerCount is the number of r's header field lines, as
// Config.MaxHeaderCount counts them: every value of r.Header (net/http
// keeps one per field line), Host, which net/http moves to r.Host, and
// Transfer-Encoding, which it moves to r.TransferEncoding.
func headerCount(r *http.Request) int {
	n := len(r.TransferEncoding)
	if r.Host != "" {
		n++
	}
	for _, vv := range r.Header {
		n += len(vv)
	}
	return n
}
