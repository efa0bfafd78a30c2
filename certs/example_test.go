package certs_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/metrics"
)

// ExampleLoadPair validates a certificate chain and key before serving
// them, and shows how callers branch on what went wrong.
func ExampleLoadPair() {
	dir, err := os.MkdirTemp("", "scoregate-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dev, err := certs.WriteDev(dir, "api.example.com")
	if err != nil {
		log.Fatal(err)
	}
	roots, err := certs.LoadRoots(dev.CAFile) // what --ca-file would hold
	if err != nil {
		log.Fatal(err)
	}

	p, err := certs.LoadPair(dev.CertFile, dev.KeyFile, certs.LoadOptions{CName: "api.example.com", Roots: roots})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("serving", p.Leaf.DNSNames, "with", len(p.Warnings), "warnings")

	_, err = certs.LoadPair(dev.CertFile, dev.KeyFile, certs.LoadOptions{CName: "www.example.com"})
	var fe *certs.FileError
	if errors.Is(err, certs.ErrNameNotCovered) && errors.As(err, &fe) {
		fmt.Printf("%s: %v\n", fe.Role, fe.Err)
	}
	// Output:
	// serving [api.example.com] with 0 warnings
	// certificate file: certificate does not cover "www.example.com"; its DNS names are "api.example.com"
}

// ExampleSource serves a certificate over TLS, refusing other server names
// with the unrecognized_name alert, and shows what the metrics counted.
func ExampleSource() {
	dir, err := os.MkdirTemp("", "scoregate-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dev, err := certs.WriteDev(dir, "api.example.com")
	if err != nil {
		log.Fatal(err)
	}
	roots, err := certs.LoadRoots(dev.CAFile)
	if err != nil {
		log.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src, err := certs.NewSource(certs.SourceConfig{
		CertFile: dev.CertFile,
		KeyFile:  dev.KeyFile,
		CName:    "api.example.com",
		Metrics:  m,
	}, zerolog.Nop())
	if err != nil {
		log.Fatal(err)
	}
	policy := certs.SNIPolicy{CName: "api.example.com"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", certs.ServerTLSConfig(src, policy, m))
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	})

	for _, name := range []string{"api.example.com", "other.example.com"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"h2"}})
		if err != nil {
			fmt.Println(name+":", err)
			continue
		}
		fmt.Println(name+":", c.ConnectionState().NegotiatedProtocol)
		c.Close()
	}
	ln.Close()
	wg.Wait()

	// What /metrics shows of the refusal: the server counted it before
	// sending the alert.
	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "scoregate_tls_handshake_errors_total{") {
			fmt.Print(line)
		}
	}
	// Output:
	// api.example.com: h2
	// other.example.com: remote error: tls: unrecognized name
	// scoregate_tls_handshake_errors_total{reason="missing_sni"} 0
	// scoregate_tls_handshake_errors_total{reason="unrecognized_name"} 1
}

// ExampleSNIPolicy_Check shows which server names the policy accepts.
func ExampleSNIPolicy_Check() {
	p := certs.SNIPolicy{CName: "api.example.com"}
	for _, name := range []string{"api.example.com", "API.Example.com.", "www.example.com", ""} {
		fmt.Printf("%q: %v\n", name, p.Check(name))
	}
	// Output:
	// "api.example.com": <nil>
	// "API.Example.com.": <nil>
	// "www.example.com": unrecognized server name
	// "": missing server name (SNI)
}
