package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/proxy"
)

// ExampleNew puts a Proxy in front of a scoring backend and serves it over
// TLS with HTTP/2, as scoregate does.
func ExampleNew() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"result":[0.5]}`)
	}))
	defer backend.Close()
	u, _ := url.Parse(backend.URL)

	p, err := proxy.New(proxy.Config{CName: "api.example.com", Backend: u}, zerolog.Nop(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	front := httptest.NewUnstartedServer(p)
	front.EnableHTTP2 = true
	front.StartTLS()
	defer front.Close()

	for _, host := range []string{"api.example.com", "other.example.com"} {
		req, _ := http.NewRequest("POST", front.URL+"/score", strings.NewReader(`{"data":[[1,2]]}`))
		req.Host = host
		resp, err := front.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Proto, resp.StatusCode, strings.Split(string(body), `,"request_id"`)[0])
	}
	// Output:
	// HTTP/2.0 200 {"result":[0.5]}
	// HTTP/2.0 421 {"error":"host is not this server's name"
}

func ExampleCheckHost() {
	for _, host := range []string{"API.example.com.:443", "other.example.com", "api..example.com"} {
		status, err := proxy.CheckHost(host, "api.example.com")
		fmt.Println(host, status, err)
	}
	// Output:
	// API.example.com.:443 0 <nil>
	// other.example.com 421 host is not this server's name
	// api..example.com 400 malformed host: empty label
}

func ExampleRedirect() {
	h := proxy.Redirect("api.example.com", "8443")
	r := httptest.NewRequest("GET", "http://api.example.com/score?x=1", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Header().Get("Location"))
	// Output:
	// 308 https://api.example.com:8443/score?x=1
}

func ExampleWriteError() {
	w := httptest.NewRecorder()
	proxy.WriteError(w, http.StatusBadGateway, "backend unavailable", "0f8fad5b-d9cb-469f-a165-70867728950e")
	fmt.Print(w.Code, " ", w.Header().Get("Content-Type"), " ", w.Body)
	// Output:
	// 502 application/json {"error":"backend unavailable","request_id":"0f8fad5b-d9cb-469f-a165-70867728950e"}
}
