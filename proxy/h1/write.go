package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// BodyReadError is the error RoundTrip (or a response body read) returns
// when reading the request body failed: the fault lies with whoever
// supplies the body, not with the backend.
type BodyReadError struct{ Err error }

func (e *BodyReadError) Error() string { return "h1: reading the request body: " + e.Err.Error() }
func (e *BodyReadError) Unwrap() error { return e.Err }

// ErrBodyTooShort is wrapped in a BodyReadError when the request body ends
// before its ContentLength.
var ErrBodyTooShort = errors.New("request body shorter than its Content-Length")

// checkRequest refuses a request that cannot be written as it is without
// changing its meaning: a method that is not a token, a request target with
// a byte outside RFC 9112's request-target (spaces, controls, non-ASCII),
// or a header field that is not a token or holds a control character.
func checkRequest(req *http.Request) error {
	if req.URL == nil {
		return errors.New("h1: request has no URL")
	}
	if req.Method == "" || !httpguts.ValidHeaderFieldName(req.Method) {
		return fmt.Errorf("h1: method %q is not a token", req.Method)
	}
	if target := req.URL.RequestURI(); !validTarget(target) {
		return fmt.Errorf("h1: request target %q has a byte not allowed in a request line", target)
	}
	if h := host(req); !httpguts.ValidHostHeader(h) || h == "" {
		return fmt.Errorf("h1: Host %q is not valid", h)
	}
	for _, hdr := range []http.Header{req.Header, req.Trailer} {
		for k, vv := range hdr {
			if !httpguts.ValidHeaderFieldName(k) {
				return fmt.Errorf("h1: header field name %q is not a token", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					return fmt.Errorf("h1: header field %s has a control character in its value", k)
				}
			}
		}
	}
	return nil
}

// validTarget reports whether every byte of a request target is a visible
// ASCII character (RFC 9112 3.2: the request-target is made of URI
// characters, with no whitespace).
func validTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func host(req *http.Request) string {
	if req.Host != "" {
		return req.Host
	}
	return req.URL.Host
}

// ownHeader reports whether writeHead writes the field k itself, in
// whatever case k is spelled: a "transfer-encoding" copied beside the
// Content-Length writeHead sets would let one request smuggle another.
func ownHeader(k string) bool {
	switch len(k) {
	case len("Host"):
		return strings.EqualFold(k, "Host")
	case len("Trailer"):
		return strings.EqualFold(k, "Trailer")
	case len("Content-Length"):
		return strings.EqualFold(k, "Content-Length")
	case len("Transfer-Encoding"):
		return strings.EqualFold(k, "Transfer-Encoding")
	}
	return false
}

// writeHead writes the request line and header block of req, with the body
// framing that hasBody and length call for. Write errors show at Flush.
func writeHead(bw *bufio.Writer, req *http.Request, hasBody bool, length int64) {
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host(req))
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if ownHeader(k) {
			continue
		}
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				continue // as net/http: an empty User-Agent means none
			}
			writeField(bw, k, v)
		}
	}
	switch {
	case hasBody && length >= 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), length, 10))
		bw.WriteString("\r\n")
	case hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			keys := make([]string, 0, len(req.Trailer))
			for k := range req.Trailer {
				keys = append(keys, k)
			}
			writeField(bw, "Trailer", strings.Join(keys, ", "))
		}
	case req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH":
		// As net/http: a body-carrying method says it has none.
		bw.WriteString("Content-Length: 0\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// chunkBuffers are the read buffers of chunked bodies.
var chunkBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// copyBody writes body to bw: exactly length bytes, or chunked until EOF
// when length is negative. A body of unknown length is flushed after every
// read, so that what the client streams reaches the backend as it comes.
func copyBody(bw *bufio.Writer, body io.Reader, length int64) error {
	if body == nil {
		return nil
	}
	if length >= 0 {
		// Straight into bw's buffer: no copy buffer, no allocation.
		for left := length; left > 0; {
			if bw.Available() == 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
			}
			buf := bw.AvailableBuffer()
			buf = buf[:min(int64(cap(buf)), left)]
			n, err := body.Read(buf)
			bw.Write(buf[:n])
			left -= int64(n)
			switch {
			case err == io.EOF && left > 0:
				return &BodyReadError{ErrBodyTooShort}
			case err != nil && err != io.EOF:
				return &BodyReadError{err}
			}
		}
		return nil
	}
	buf := chunkBuffers.Get().(*[32 << 10]byte)
	defer chunkBuffers.Put(buf)
	cw := httputil.NewChunkedWriter(bw)
	for {
		n, rerr := body.Read(buf[:])
		if n > 0 {
			if _, err := cw.Write(buf[:n]); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return cw.Close() // the last chunk; the trailer follows
		}
		if rerr != nil {
			return &BodyReadError{rerr}
		}
	}
}

// writeTrailer ends a chunked body: the trailer fields, then CRLF.
func writeTrailer(bw *bufio.Writer, trailer http.Header) error {
	for k, vv := range trailer {
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}
