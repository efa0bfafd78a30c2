package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// The request id headers of the Azure ML inference server, in canonical
// form so that they index http.Header directly.
const (
	headerRequestID       = "X-Request-Id"
	headerMSRequestID     = "X-Ms-Request-Id"
	headerClientRequestID = "X-Ms-Client-Request-Id"
)

// maxRequestIDLen is the longest request id accepted, as in the Azure ML
// inference server (HEADER_LIMIT); longer gets 431.
const maxRequestIDLen = 100

// Messages for 431, the inference server's own.
const (
	msgRequestIDTooLong       = "x-request-id must not exceed 100 characters"
	msgClientRequestIDTooLong = "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"
)

// requestIDs are one request's ids.
type requestIDs struct {
	id       string // x-request-id: the client's, or generated
	msID     string // x-ms-request-id: see readRequestIDs
	clientID string // x-ms-client-request-id, or ""

	// What the client sent of the two legacy ids (setOut).
	sentMSID, sentClientID bool

	// vals backs the header values that set stores, so that setting the
	// ids on the backend request and on the response allocates nothing.
	// Neither net/http nor ReverseProxy modifies header values in place.
	vals [3]string
}

// readRequestIDs derives the ids from h exactly as the Azure ML inference
// server's _init_headers does (routes.py):
//
//   - x-request-id is the client's, or a new UUID; over 100 characters is
//     431;
//   - a client-sent x-ms-request-id (the legacy client request id) is
//     kept, and is also the client request id when x-ms-client-request-id
//     is absent;
//   - otherwise x-ms-request-id is x-ms-client-request-id if given, else
//     x-request-id;
//   - either of those two over 100 characters is 431.
//
// One difference: an x-request-id sent empty gets a new UUID (the server
// would answer without one), since every scoregate log line and error body
// carries the id.
//
// status is 0, or 431 with msg; the ids are then usable for the error
// response, and no oversized value is among them.
func readRequestIDs(h http.Header) (ids requestIDs, status int, msg string) {
	ids.id = first(h, headerRequestID)
	if len(ids.id) > maxRequestIDLen {
		ids.id = ""
		status, msg = http.StatusRequestHeaderFieldsTooLarge, msgRequestIDTooLong
	}
	if ids.id == "" {
		ids.id = newRequestID()
	}
	legacy, client := first(h, headerMSRequestID), first(h, headerClientRequestID)
	switch {
	case legacy != "" && client == "":
		client = legacy
	case legacy == "" && client != "":
		legacy = client
	case legacy == "":
		legacy = ids.id
	}
	if len(legacy) > maxRequestIDLen || len(client) > maxRequestIDLen {
		legacy, client = ids.id, ""
		if status == 0 {
			status, msg = http.StatusRequestHeaderFieldsTooLarge, msgClientRequestIDTooLong
		}
	}
	ids.msID, ids.clientID = legacy, client
	ids.sentMSID = status == 0 && first(h, headerMSRequestID) != ""
	ids.sentClientID = status == 0 && first(h, headerClientRequestID) != ""
	ids.vals = [3]string{ids.id, ids.msID, ids.clientID}
	return ids, status, msg
}

// set writes the ids into h, replacing any value there: on the request to
// the backend and on every response.
// The slices have capacity 1, so that an append elsewhere copies instead
// of writing into vals.
func (ids *requestIDs) set(h http.Header) {
	h[headerRequestID] = ids.vals[0:1:1]
	h[headerMSRequestID] = ids.vals[1:2:2]
	if ids.clientID != "" {
		h[headerClientRequestID] = ids.vals[2:3:3]
	} else {
		delete(h, headerClientRequestID)
	}
}

// setOut writes the ids the backend gets into h: x-request-id always, and
// x-ms-request-id and x-ms-client-request-id only as the client sent them.
// The inference server derives the rest from these exactly as
// readRequestIDs does, so it logs and answers the same ids that scoregate
// echoes; an x-ms-request-id scoregate made up would instead make it log a
// deprecation warning for every request, for a header no client used.
func (ids *requestIDs) setOut(h http.Header) {
	h[headerRequestID] = ids.vals[0:1:1]
	if ids.sentMSID {
		h[headerMSRequestID] = ids.vals[1:2:2]
	} else {
		delete(h, headerMSRequestID) // an empty one, say
	}
	if ids.sentClientID {
		h[headerClientRequestID] = ids.vals[2:3:3]
	} else {
		delete(h, headerClientRequestID)
	}
}

// first returns the first value of the canonical key in h, or "".
func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// newRequestID returns a random (version 4) UUID in its 36-character text
// form, as the inference server generates. It allocates only the string.
func newRequestID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])  // crypto/rand.Read never returns an error
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}
