package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scoregate/scoregate/metrics"
)

// gRPC status codes (google.golang.org/grpc/codes), for scoregate's own
// refusals of gRPC requests.
const (
	grpcUnknown           = 2
	grpcInvalidArgument   = 3
	grpcDeadlineExceeded  = 4
	grpcNotFound          = 5
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// isGRPC reports whether r is a gRPC call: its Content-Type is
// application/grpc or application/grpc+FORMAT (such as +proto). gRPC-Web
// (application/grpc-web…) is not: it is answered as any HTTP request.
func isGRPC(h http.Header) bool {
	ct := h["Content-Type"]
	if len(ct) != 1 {
		return false
	}
	rest, ok := cutPrefixFold(ct[0], "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// cutPrefixFold is strings.CutPrefix, the prefix matched without regard
// to ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// grpcCode is the gRPC status that stands for one of scoregate's HTTP
// refusals. It follows gRPC's own table for HTTP statuses
// (doc/http-grpc-status-mapping.md in grpc/grpc, which Envoy applies too)
// where that fits, and says more where scoregate knows more: a body too
// large or too many headers is RESOURCE_EXHAUSTED, a request that timed
// out DEADLINE_EXCEEDED, a malformed one INVALID_ARGUMENT.
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInvalidArgument
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound:
		return grpcNotFound
	case http.StatusMethodNotAllowed:
		return grpcUnimplemented
	case http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return grpcResourceExhausted
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return grpcDeadlineExceeded
	case http.StatusMisdirectedRequest, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	case http.StatusHTTPVersionNotSupported:
		return grpcInternal
	default:
		return grpcUnknown
	}
}

// writeGRPCError answers a gRPC call that scoregate refuses as a gRPC
// server would: HTTP 200 and a trailers-only response (one HEADERS frame
// that ends the stream) with grpc-status and grpc-message, so that the
// client sees code and message rather than a bare HTTP status. The status
// recorded for the access log and metrics stays the HTTP status the
// refusal stands for.
func writeGRPCError(w http.ResponseWriter, rec *statusRecorder, status int, msg string) {
	h := w.Header()
	h["Content-Type"] = []string{"application/grpc"}
	h["Grpc-Status"] = []string{strconv.Itoa(grpcCode(status))}
	h["Grpc-Message"] = []string{grpcEncode(msg)}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(http.StatusOK)
	rec.status = status
}

// grpcEncode percent-encodes msg as grpc-message wants (PROTOCOL-HTTP2.md):
// every byte outside printable ASCII, and '%'.
func grpcEncode(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// maxGRPCTimeout bounds a grpc-timeout: gRPC's own limit is eight digits
// of hours; scoregate takes none longer than this.
const maxGRPCTimeout = 24 * time.Hour

// grpcTimeout parses a gRPC call's grpc-timeout header (PROTOCOL-HTTP2.md:
// one to eight ASCII digits and a unit, H M S m u n); ok is false when
// there is none, and msg names what is wrong with a malformed one.
func grpcTimeout(h http.Header) (d time.Duration, ok bool, msg string) {
	v := h["Grpc-Timeout"]
	if len(v) == 0 {
		return 0, false, ""
	}
	const bad = "header grpc-timeout %q: want 1 to 8 digits and a unit (H, M, S, m, u or n), such as 500m"
	s := v[0]
	if len(v) > 1 || len(s) < 2 || len(s) > 9 {
		return 0, false, fmt.Sprintf(bad, s)
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	if err != nil { // ParseUint takes no sign
		return 0, false, fmt.Sprintf(bad, s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false, fmt.Sprintf(bad, s)
	}
	if n > uint64(maxGRPCTimeout/unit) {
		return maxGRPCTimeout, true, ""
	}
	return time.Duration(n) * unit, true, ""
}

// grpcHealthPath is the gRPC health checking protocol's method
// (grpc/grpc doc/health-checking.md), which grpc-go, Triton, KServe and
// TorchServe serve.
const grpcHealthPath = "/grpc.health.v1.Health/Check"

// grpcHealthRequest is one gRPC message, uncompressed, holding an empty
// HealthCheckRequest: the server's overall health.
var grpcHealthRequest = []byte{0, 0, 0, 0, 0}

// probeGRPC checks an h2c replica's health by grpc.health.v1.Health/Check
// over the connections requests use: ready when the call succeeds and
// says SERVING. It is a few bytes of protobuf, written and read here
// rather than through a gRPC library the proxy would otherwise not need.
func (p *Proxy) probeGRPC(ctx context.Context, rep *replica, info *metrics.BackendInfo) error {
	u := *rep.origin
	u.Path, u.RawPath, u.RawQuery = grpcHealthPath, "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(grpcHealthRequest))
	if err != nil {
		return err
	}
	req.Header["Content-Type"] = []string{"application/grpc"}
	req.Header["Te"] = []string{"trailers"}
	req.Header["User-Agent"] = []string{"scoregate-probe"}
	req.ContentLength = int64(len(grpcHealthRequest))
	resp, err := rep.tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	info.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", grpcHealthPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %s, not a gRPC answer", grpcHealthPath, resp.Status)
	}
	// A trailers-only answer has its status in the header.
	status := resp.Trailer
	if status.Get("Grpc-Status") == "" {
		status = resp.Header
	}
	code := status.Get("Grpc-Status")
	switch code {
	case "0":
	case strconv.Itoa(grpcUnimplemented):
		return fmt.Errorf("%s: the replica serves no grpc.health.v1.Health (UNIMPLEMENTED); give a --health-url it answers", grpcHealthPath)
	case "":
		return fmt.Errorf("%s: the answer has no grpc-status", grpcHealthPath)
	default:
		msg, _ := url.PathUnescape(status.Get("Grpc-Message"))
		return fmt.Errorf("%s: grpc-status %s %q", grpcHealthPath, code, msg)
	}
	serving, err := healthStatus(body)
	if err != nil {
		return fmt.Errorf("%s: %w", grpcHealthPath, err)
	}
	if serving != 1 {
		return fmt.Errorf("%s: the replica says %s, not SERVING", grpcHealthPath, healthStatusName(serving))
	}
	return nil
}

// healthStatus reads the status (field 1, an enum) of the one
// HealthCheckResponse in a gRPC answer's body; 0 (UNKNOWN) when the
// field is absent, as protobuf's default.
func healthStatus(body []byte) (uint64, error) {
	if len(body) < 5 {
		return 0, errors.New("the answer holds no gRPC message")
	}
	if body[0] != 0 {
		return 0, errors.New("the answer is compressed; scoregate asked for none")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	msg := body[5:]
	if uint64(n) != uint64(len(msg)) {
		return 0, fmt.Errorf("the answer's message says %d bytes and holds %d", n, len(msg))
	}
	var status uint64
	for len(msg) > 0 {
		tag, k := binary.Uvarint(msg)
		if k <= 0 {
			return 0, errors.New("the answer is not a HealthCheckResponse")
		}
		msg = msg[k:]
		switch tag & 7 {
		case 0: // varint
			v, k := binary.Uvarint(msg)
			if k <= 0 {
				return 0, errors.New("the answer is not a HealthCheckResponse")
			}
			msg = msg[k:]
			if tag>>3 == 1 {
				status = v
			}
		case 2: // length-delimited: a field a newer server may add
			l, k := binary.Uvarint(msg)
			if k <= 0 || l > uint64(len(msg)-k) {
				return 0, errors.New("the answer is not a HealthCheckResponse")
			}
			msg = msg[k+int(l):]
		default:
			return 0, errors.New("the answer is not a HealthCheckResponse")
		}
	}
	return status, nil
}

// healthStatusName names a HealthCheckResponse.ServingStatus.
func healthStatusName(s uint64) string {
	switch s {
	case 0:
		return "UNKNOWN"
	case 1:
		return "SERVING"
	case 2:
		return "NOT_SERVING"
	case 3:
		return "SERVICE_UNKNOWN"
	}
	return "status " + strconv.FormatUint(s, 10)
}
