package certs_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/metrics"
)

// ExampleNewACME wires an ACME source the way `scoregate serve --acme`
// does: bind both listeners, build the ACME with their addresses, serve
// the challenge handler and ServerTLSConfig (with the ACME's ALPN
// protocols added), then Start. (It is not run: it needs a public name and
// a reachable CA.)
func ExampleNewACME() {
	logger := zerolog.New(os.Stderr)
	m := metrics.New(prometheus.NewRegistry()) // served on /metrics
	httpLn, err := net.Listen("tcp", ":80")
	if err != nil {
		log.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", ":443")
	if err != nil {
		log.Fatal(err)
	}
	a, err := certs.NewACME(certs.ACMEConfig{
		CName:    "api.example.com",
		Email:    "ops@example.com",
		Storage:  "/var/lib/scoregate", // shared by every instance of the cluster
		HTTPAddr: httpLn.Addr().String(),
		TLSAddr:  tlsLn.Addr().String(),
		Metrics:  m,
	}, logger)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Stop() // after the servers have shut down (deferred calls run last in, first out)

	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	httpSrv := &http.Server{Handler: a.HTTPChallengeHandler(redirect)}
	defer httpSrv.Close()
	go httpSrv.Serve(httpLn)
	tlsCfg := certs.ServerTLSConfig(a, certs.SNIPolicy{CName: "api.example.com"}, m)
	tlsCfg.NextProtos = append(tlsCfg.NextProtos, a.ALPN()...) // "acme-tls/1" for TLS-ALPN-01
	tlsSrv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: tlsCfg}
	defer tlsSrv.Close()
	go tlsSrv.ServeTLS(tlsLn, "", "")

	if err := a.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	if st := a.Status(); st.Leaf == nil {
		logger.Info().Str("reason", st.Pending).Msg("not ready yet") // /readyz reports this
	}
}

// ExampleLeafDomainName derives the name for --leaf-domain-label model
// --region westeurope, the same across restarts and instances sharing
// the storage directory.
func ExampleLeafDomainName() {
	dir, err := os.MkdirTemp("", "scoregate-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	name, err := certs.LeafDomainName(dir, "model", "westeurope", certs.LeafDomainOptions{})
	if err != nil {
		log.Fatal(err)
	}
	again, err := certs.LeafDomainName(dir, "model", "westeurope", certs.LeafDomainOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(name.Name) == len("model")+6+len(".westeurope.cloudapp.azure.com"), name.Name == again.Name)
	// Output: true true
}
