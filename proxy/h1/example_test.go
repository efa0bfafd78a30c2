package h1_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/scoregate/scoregate/proxy/h1"
)

// ExampleTransport puts a Transport under an httputil.ReverseProxy that
// forwards to one plain-HTTP backend.
func ExampleTransport() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s: scored %d bytes", r.Method, r.URL.Path, len(body))
	}))
	defer backend.Close()
	u, err := url.Parse(backend.URL)
	if err != nil {
		log.Fatal(err)
	}

	tr, err := h1.New(h1.Config{Addr: u.Host, ResponseHeaderTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close() // after the last request: closes idle connections, joins body writers

	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: tr,
	}
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/score", strings.NewReader(`{"x":[1,2,3]}`)))
	fmt.Println(rec.Code, rec.Body.String())
	fmt.Println("idle connections:", tr.IdleConns())
	// Output:
	// 200 POST /v1/score: scored 13 bytes
	// idle connections: 1
}
