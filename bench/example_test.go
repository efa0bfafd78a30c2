package bench_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/scoregate/scoregate/bench"
)

// ExampleRun measures resumed TLS handshakes against a server, connecting
// to its address but naming it example.com (its certificate's name) in SNI
// and Host, and checks that every handshake did resume.
func ExampleRun() {
	srv := httptest.NewTLSServer(bench.NewBackend(bench.BackendConfig{}))
	defer srv.Close()

	r, err := bench.Run(context.Background(), bench.Config{
		URL:         &url.URL{Scheme: "https", Host: "example.com", Path: "/score"},
		Connect:     srv.Listener.Addr().String(),
		RootCAs:     srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Scenario:    bench.Resume,
		Concurrency: 2,
		Warmup:      20 * time.Millisecond,
		Duration:    100 * time.Millisecond,
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("succeeded:", r.Requests > 0)
	fmt.Println("errors:", r.Errors.Total())
	fmt.Println("resumed share:", r.ResumedShare)
	// Output:
	// succeeded: true
	// errors: 0
	// resumed share: 1
}
