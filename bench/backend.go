package bench

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// BackendConfig configures the synthetic scoring backend.
type BackendConfig struct {
	// Latency is added to every POST /score before it answers; if zero, none.
	Latency time.Duration
	// ResponseBytes is the size of the POST /score response body; if zero,
	// 200 bytes (the size the peers benchmark kit uses). Sizes below the
	// fixed JSON envelope are rounded up to it.
	ResponseBytes int
}

// Backend is a synthetic scoring backend. It is safe for concurrent use.
type Backend struct {
	cfg BackendConfig
}

// NewBackend returns a Backend. A negative Latency or ResponseBytes is
// treated as zero.
func NewBackend(cfg BackendConfig) *Backend {
	cfg.Latency = max(cfg.Latency, 0)
	if cfg.ResponseBytes <= 0 {
		cfg.ResponseBytes = 200
	}
	return &Backend{cfg: cfg}
}

const swagger = `{"swagger":"2.0","info":{"title":"scoregate demo model","version":"1.0"},` +
	`"paths":{"/score":{"post":{"consumes":["application/json"],"produces":["application/json"],` +
	`"responses":{"200":{"description":"the model's prediction"}}}},` +
	`"/":{"get":{"responses":{"200":{"description":"Healthy once the model is loaded"}}}}}}`

// ServeHTTP answers POST /score, GET / and GET /swagger.json.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/score":
		b.score(w, r)
	case "/":
		if !getOrHead(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Healthy")
	case "/swagger.json":
		if !getOrHead(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, swagger)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"not found"}`+"\n")
	}
}

func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	io.WriteString(w, `{"error":"use GET"}`+"\n")
	return false
}

func (b *Backend) score(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if r.Method != http.MethodPost {
		h.Set("Allow", "POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
		io.WriteString(w, `{"error":"use POST"}`+"\n")
		return
	}
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"reading the request body failed"}`+"\n")
		return
	}
	if b.cfg.Latency > 0 {
		t := time.NewTimer(b.cfg.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	body := scoreBody(n, b.cfg.ResponseBytes)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// scoreBody returns a JSON prediction that echoes the request length, padded
// to size bytes (or the envelope's own size, if that is larger).
func scoreBody(requestBytes int64, size int) []byte {
	const tail = "\"}\n"
	body := make([]byte, 0, size)
	body = append(body, `{"model":"scoregate-demo","version":"1.0","score":0.7312,"label":"positive","request_bytes":`...)
	body = strconv.AppendInt(body, requestBytes, 10)
	body = append(body, `,"pad":"`...)
	for len(body)+len(tail) < size {
		body = append(body, 'x')
	}
	return append(body, tail...)
}
