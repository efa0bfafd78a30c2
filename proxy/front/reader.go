package front

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
)

// reader is what the connection's read buffer reads from: the byte that
// ended the idle wait, then the TLS connection. While a request's header
// is being read it also
//
//   - holds the header to the size limit (net/http's: MaxHeaderBytes plus
//     4096; more is 431),
//   - refuses the framing net/http's parser tolerates but RFC 9112 lets a
//     server refuse, and which an intermediary in front that reads it
//     differently could use to smuggle a request: a line ending in a bare
//     LF (section 2.2), a bare CR, and obsolete line folding (section 5.2,
//     a header line starting with a space or tab),
//   - counts the Host field lines, which http.ReadRequest removes.
//
// The checks run on the bytes as they arrive, below the read buffer, and
// stop at the empty line that ends the header; a request's body is not
// inspected here (a chunked body's framing and trailer are chunkedBody's).
// Bytes of a pipelined request that the buffer already holds are run
// through them when that request starts (startHeader).
type reader struct {
	c       *conn
	first   [1]byte
	pending bool // first is still to be read

	armed     bool // the read-header deadline is set on the connection
	inHeader  bool
	remain    int  // header bytes left before 431
	lines     int  // lines completed (the request line is 0)
	lineLen   int  // bytes of the current line, CR excluded
	cr        bool // the previous byte was CR
	hostMatch bool // the current line so far matches "host:"
	hosts     int  // Host field lines
	err       error
}

// Errors of the request header, answered before any handler runs.
var (
	errHeaderTooLarge = errors.New("request header too large")
	errBareLF         = errors.New("a line of the request header ends in LF without CR")
	errBareCR         = errors.New("CR without LF in the request header")
	errObsFold        = errors.New("obsolete line folding in the request header")
	errNoHost         = errors.New("missing required Host header")
	errBadHost        = errors.New("malformed Host header")
	errHeaderName     = errors.New("invalid header name")
	errHeaderValue    = errors.New("invalid header value")
	errVersion        = errors.New("unsupported protocol version")
	errExpectation    = errors.New("unsupported Expect")
)

// startHeader resets the checks for a new request, the bytes br already
// holds being its first, and returns what they fail, if anything. Those
// bytes (a pipelined request, read with the one before) never pass
// through Read again: http.ReadRequest takes them from br's buffer.
func (r *reader) startHeader(limit int, br *bufio.Reader) error {
	*r = reader{c: r.c, first: r.first, pending: r.pending, inHeader: true, remain: limit + 4096}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		return r.scan(b)
	}
	return nil
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	if r.pending {
		p[0] = r.first[0]
		r.pending = false
		n = 1
	} else {
		if r.armed && !r.inHeader {
			r.c.tc.SetReadDeadline(time.Time{}) // the body has no read-header timeout
			r.armed = false
		}
		n, err = r.c.tc.Read(p)
	}
	if r.inHeader && n > 0 {
		if e := r.scan(p[:n]); e != nil {
			return 0, e
		}
	}
	return n, err
}

// scan runs b through the header checks, up to the header's end.
func (r *reader) scan(b []byte) error {
	for _, ch := range b {
		if !r.inHeader {
			return nil
		}
		if r.remain--; r.remain < 0 {
			r.err = errHeaderTooLarge
			return r.err
		}
		switch {
		case ch == '\n':
			if !r.cr {
				r.err = errBareLF
				return r.err
			}
			if r.lineLen == 0 && r.lines > 0 {
				r.inHeader = false
				return nil
			}
			r.lines++
			r.lineLen, r.cr = 0, false
		case r.cr:
			r.err = errBareCR
			return r.err
		case ch == '\r':
			r.cr = true
		default:
			if r.lines > 0 {
				if r.lineLen == 0 {
					if ch == ' ' || ch == '\t' {
						r.err = errObsFold
						return r.err
					}
					r.hostMatch = true
				}
				if r.hostMatch && r.lineLen < len("host:") {
					if r.lineLen < 4 {
						r.hostMatch = ch|0x20 == "host"[r.lineLen]
					} else if r.hostMatch = ch == ':'; r.hostMatch {
						r.hosts++
					}
				}
			}
			r.lineLen++
		}
	}
	return nil
}

// check holds req to what net/http's server checks after parsing, with
// the Host lines counted by scan.
func (r *reader) check(req *http.Request) error {
	if req.ProtoMajor != 1 && !isH2Preface(req) {
		return errVersion
	}
	if req.ProtoAtLeast(1, 1) && r.hosts == 0 && req.Method != http.MethodConnect && !isH2Preface(req) {
		return errNoHost
	}
	if r.hosts == 1 && req.URL.Host == "" && !httpguts.ValidHostHeader(req.Host) {
		return errBadHost
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return errHeaderName
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return errHeaderValue
			}
		}
	}
	if e := req.Header.Get("Expect"); e != "" && !expectsContinue(req) {
		return errExpectation
	}
	return nil
}

// isH2Preface reports whether req is HTTP/2's connection preface read as
// a request, which net/http's HTTP/1.1 server hands to the handler (and
// then closes the connection) so that handlers can upgrade to HTTP/2.
func isH2Preface(req *http.Request) bool {
	return req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*"
}

// expectsContinue is net/http's test of Expect: its first value has the
// token 100-continue.
func expectsContinue(req *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(req.Header["Expect"][:min(1, len(req.Header["Expect"]))], "100-continue")
}

// refuse answers a request that could not be read, as net/http does,
// and the connection ends: nothing the client sent after it is read.
func (c *conn) refuse(err error) {
	var code int
	msg := ""
	switch {
	case errors.Is(err, errHeaderTooLarge):
		code = http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, errVersion):
		code, msg = http.StatusHTTPVersionNotSupported, ": "+err.Error()
	case errors.Is(err, errExpectation):
		code = http.StatusExpectationFailed
	case fmt.Sprintf("%T", err) == "*http.unsupportedTEError":
		// RFC 9112 section 6.1: a transfer coding the server does not
		// understand is 501, as net/http answers (its error type is
		// unexported; TestRefusals pins the name).
		code = http.StatusNotImplemented
	case isNetError(err):
		return // the client left or went quiet: no answer
	default:
		code = http.StatusBadRequest
	}
	text := strconv.Itoa(code) + " " + http.StatusText(code) + msg
	c.tc.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c.tc, "HTTP/1.1 "+text+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+text)
	c.lingerClose()
}

// isNetError reports whether err is the client leaving or going quiet,
// which gets no answer (net/http's isCommonNetReadError).
func isNetError(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}
