package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const okBody = `{"result":[0.5]}`

func okResponse(r *http.Request) *http.Response {
	return &http.Response{
		StatusCode:    200,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(okBody)),
		ContentLength: int64(len(okBody)),
		Request:       r,
	}
}

// memoryProxy is a Proxy whose backend answers okBody in memory (a
// roundTripFunc in place of its transports): no sockets, for fuzzing and
// benchmarks.
func memoryProxy(tb testing.TB, cfg Config) *Proxy {
	p := newTestProxy(tb, "http://127.0.0.1:5001", cfg, zerolog.Nop())
	p.noDirect = true // the in-memory transport serves the ReverseProxy path
	p.rp.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				return nil, err
			}
		}
		return okResponse(r), nil
	})
	return p
}

// FuzzServeHTTP: whatever the Host, path, ids and body, the handler does not
// panic and answers one of its statuses, errors as JSON.
func FuzzServeHTTP(f *testing.F) {
	f.Add("api.example.com", "/score", "", "", "{}", int64(2))
	f.Add("API.example.com.:443", "/a%2Fb", "id", "client", "", int64(0))
	f.Add("evil.example.com", "/", "", "", "", int64(0))
	f.Add("a..b", "*", "", "", "", int64(-1))
	f.Add("api.example.com", "/score", strings.Repeat("x", 101), "", "", int64(0))
	f.Add("api.example.com", "/score", "", "", strings.Repeat("b", 40), int64(-1))
	f.Add("api.example.com", "/score", "", "", strings.Repeat("b", 40), int64(40))
	f.Add("0", "0", "\xcc", "", "0", int64(91)) // an id that is not UTF-8, on an error
	p := memoryProxy(f, Config{CName: testCName, MaxBodyBytes: 32})
	f.Fuzz(func(t *testing.T, host, path, reqID, clientID, body string, contentLength int64) {
		r := &http.Request{
			Method:        "POST",
			URL:           &url.URL{Path: path},
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Host:          host,
			Header:        http.Header{"X-Request-Id": {reqID}, "X-Ms-Client-Request-Id": {clientID}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: contentLength,
			RemoteAddr:    "192.0.2.1:1234",
		}
		if contentLength == 0 {
			r.Body = http.NoBody
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			if w.Body.String() != okBody {
				t.Fatalf("body = %q, want %q", w.Body, okBody)
			}
		case 400, 413, 421, 431:
			checkErrorBody(t, w.Header(), w.Body.String())
		default:
			t.Fatalf("status = %d; body %s", w.Code, w.Body)
		}
	})
}

// discardWriter is a reusable ResponseWriter for benchmarks.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkServeHTTPDirect is one request through the direct path to a
// real backend on 127.0.0.1.
func BenchmarkServeHTTPDirect(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, okBody)
	}))
	b.Cleanup(backend.Close)
	p := newTestProxy(b, backend.URL, Config{CName: testCName}, zerolog.Nop())
	const body = `{"data":[[1,2,3,4]]}`
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "https://api.example.com/score", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		clear(w.h)
		w.status = 0
		p.ServeHTTP(w, r)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkServeHTTP is one request through the ReverseProxy path with an
// in-memory backend.
func BenchmarkServeHTTP(b *testing.B) {
	p := memoryProxy(b, Config{CName: testCName})
	const body = `{"data":[[1,2,3,4]]}`
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "https://api.example.com/score", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		clear(w.h)
		p.ServeHTTP(w, r)
	}
}
