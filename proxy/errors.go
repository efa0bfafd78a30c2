package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"unicode/utf8"

	"github.com/scoregate/scoregate/metrics"
)

// ErrMalformedHost is wrapped by the error [CheckHost] returns with status
// 400: the Host is empty or not a well-formed host[:port].
var ErrMalformedHost = errors.New("malformed host")

// ErrMisdirectedHost is the error [CheckHost] returns with status 421: the
// Host is well formed but names something other than the cname.
var ErrMisdirectedHost = errors.New("host is not this server's name")

// The reasons behind a 400. They are package-level values so that
// CheckHost does not allocate; none of them quotes the offending Host.
var (
	errHostEmpty      = fmt.Errorf("%w: empty", ErrMalformedHost)
	errHostTooLong    = fmt.Errorf("%w: name longer than %d bytes", ErrMalformedHost, maxNameLen)
	errHostBracket    = fmt.Errorf("%w: '[' without ']'", ErrMalformedHost)
	errHostIPv6       = fmt.Errorf("%w: bad IPv6 literal", ErrMalformedHost)
	errHostPort       = fmt.Errorf("%w: bad port", ErrMalformedHost)
	errHostEmptyName  = fmt.Errorf("%w: empty name", ErrMalformedHost)
	errHostEmptyLabel = fmt.Errorf("%w: empty label", ErrMalformedHost)
	errHostLabel      = fmt.Errorf("%w: label longer than %d bytes", ErrMalformedHost, maxLabelLen)
	errHostChar       = fmt.Errorf("%w: character not allowed in a name", ErrMalformedHost)
)

// StatusClientClosedRequest is the status recorded, as nginx does, when the
// client goes away before the backend answers. It is logged, never meant to
// be read by the departed client.
const StatusClientClosedRequest = 499

// Messages of the error bodies that do not depend on the Config.
const (
	msgBadGateway      = "backend unavailable"
	msgClientClosed    = "client closed request"
	msgGRPCDeadline    = "the call's grpc-timeout passed before the backend answered"
	msgGRPCOverHTTP1   = "gRPC needs HTTP/2: this call came over HTTP/1.1 (Content-Type application/grpc); let the client negotiate h2 by ALPN"
	msgBadBody         = "request body malformed or cut short"
	msgBadMethod       = "request method is not a token"
	msgControlInTarget = "request target contains a control character"
	msgMethodConnect   = "CONNECT is not supported"
	msgUnauthorized    = "missing or invalid key: send Authorization: Bearer <key>"
	msgNoService       = "no such service: scoring paths are " + RoutePrefix + "<service>/..."
	msgQueueTimeout    = "all replicas busy: no slot within the queue wait; retry later"
	msgQueueFull       = "all replicas busy and the queue is full; retry later"
	msgNoReplicas      = "the service has no replicas; retry later"
)

// errorStatus is the one place that maps an error from the backend round
// trip (as given to ReverseProxy.ErrorHandler) to the status and message the
// client gets:
//
//   - the request body went over MaxBodyBytes (*http.MaxBytesError): 413
//     stating the limit;
//   - reading the client's body failed (a *clientError): 408 if it
//     stalled past BodyReadTimeout, 499 if the client went away, else 400
//     (malformed or truncated); never a backend error;
//   - the client went away (context.Canceled, or r's context is canceled):
//     499, not a backend error;
//   - connecting timed out: 504 stating DialTimeout's value;
//   - context.DeadlineExceeded or any net.Error timeout, such as the
//     transport's ResponseHeaderTimeout: 504 stating UpstreamTimeout's;
//   - anything else, including a refused connection: 502.
//
// msg never names a Config field or a command-line flag: it goes to API
// clients, who can change neither. setting is the Config field behind the
// status, for the log line (such as "UpstreamTimeout"), or "" if none is.
// reason is the scoregate_upstream_errors_total label, or "" when the
// backend is not to blame (400, 408, 413, 499).
func (p *Proxy) errorStatus(r *http.Request, err error) (status int, msg, reason, setting string) {
	var tooLarge *http.MaxBytesError
	var opErr *net.OpError
	var ce *clientError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, p.msgTooLarge, "", "MaxBodyBytes"
	case errors.As(err, &ce):
		switch {
		case isTimeout(ce.err):
			// Before the context check: net/http's HTTP/1 server
			// cancels the request's context on any failed read.
			return http.StatusRequestTimeout, p.msgBodyTimeout, "", "BodyReadTimeout"
		case errors.Is(ce.err, errBodyShut) || r.Context().Err() != nil:
			return StatusClientClosedRequest, msgClientClosed, "", ""
		default:
			return http.StatusBadRequest, msgBadBody, "", ""
		}
	case errors.Is(err, context.Canceled) || errors.Is(r.Context().Err(), context.Canceled):
		return StatusClientClosedRequest, msgClientClosed, "", ""
	case errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Timeout():
		return http.StatusGatewayTimeout, p.msgDialTimeout, metrics.UpstreamDialTimeout, "DialTimeout"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return http.StatusGatewayTimeout, p.msgUpstreamTimeout, metrics.UpstreamTimeout, "UpstreamTimeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return http.StatusBadGateway, msgBadGateway, metrics.UpstreamRefused, ""
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return http.StatusBadGateway, msgBadGateway, metrics.UpstreamReset, ""
	default:
		return http.StatusBadGateway, msgBadGateway, metrics.UpstreamOther, ""
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// WriteError writes every error response of scoregate: status and the JSON
// body {"error":msg,"request_id":requestID} with Content-Type
// application/json. msg and requestID may hold any bytes; they are escaped,
// and invalid UTF-8 becomes U+FFFD as encoding/json does. Headers already
// set on w (such as the request id headers) are kept. WriteError must be
// called before anything else is written to w.
func WriteError(w http.ResponseWriter, status int, msg, requestID string) {
	b := make([]byte, 0, len(`{"error":"","request_id":""}`)+len(msg)+len(requestID)+8)
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, requestID)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Control characters, '"' and
// '\' are escaped; so are '<', '>' and '&' (as encoding/json does, so that
// the body is safe if a browser sniffs it) and U+2028/U+2029.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
