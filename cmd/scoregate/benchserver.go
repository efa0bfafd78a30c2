package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/bench"
	"github.com/scoregate/scoregate/certs"
)

// inProcess is a scoregate started by `bench` without --url, in front of
// the synthetic backend, both on 127.0.0.1.
type inProcess struct {
	url, tlsAddr string         // https://localhost:<port>/score and 127.0.0.1:<port>
	backendURL   string         // http://127.0.0.1:<port>/score: HTTP/1.1 and h2c
	roots        *x509.CertPool // the --dev CA
	cleanups     []func()       // in reverse order
}

// startInProcess starts the synthetic backend and, in front of it, a
// scoregate built by newServer from a Go config (no flags), with development
// certificates in a temporary directory. The caller must call stop.
func startInProcess(c benchConfig, stderr io.Writer) (_ *inProcess, err error) {
	ip := &inProcess{}
	defer func() {
		if err != nil {
			ip.stop()
		}
	}()
	dir, err := os.MkdirTemp("", "scoregate-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ip.cleanups = append(ip.cleanups, func() { os.RemoveAll(dir) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: starting the synthetic backend: %w", err)
	}
	backend := &http.Server{
		Handler:           bench.NewBackend(bench.BackendConfig{Latency: c.backendLatency}),
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         new(http.Protocols),
	}
	backend.Protocols.SetHTTP1(true)
	backend.Protocols.SetUnencryptedHTTP2(true) // for the direct h2 run
	var backendWG sync.WaitGroup
	backendWG.Go(func() { backend.Serve(ln) })
	ip.cleanups = append(ip.cleanups, func() {
		backend.Close() // the runs are over: nothing in flight to wait for
		backendWG.Wait()
	})
	ip.backendURL = "http://" + ln.Addr().String() + "/score"

	// A server built from a Go config, as `serve --dev` would make it: a
	// development certificate for localhost, no metrics listener, and only
	// errors logged.
	files, err := certs.WriteDev(filepath.Join(dir, "dev"), "localhost")
	if err != nil {
		return nil, fmt.Errorf("bench: the in-process scoregate's certificate: %w", err)
	}
	if ip.roots, err = certs.LoadRoots(files.CAFile); err != nil {
		return nil, fmt.Errorf("bench: the in-process scoregate's CA: %w", err)
	}
	s, err := newServer(serverConfig{
		Listen:            "127.0.0.1:0",
		Backends:          []*url.URL{{Scheme: "http", Host: ln.Addr().String()}},
		CName:             "localhost",
		CertFile:          files.CertFile,
		KeyFile:           files.KeyFile,
		Roots:             ip.roots,
		ReadHeaderTimeout: 10 * time.Second,
		ShutdownTimeout:   5 * time.Second,
		Log:               zerolog.New(stderr).Level(zerolog.ErrorLevel).With().Timestamp().Logger(),
	}, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("bench: starting the in-process scoregate: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var serverWG sync.WaitGroup
	serverWG.Go(func() {
		if err := s.run(ctx); err != nil {
			fmt.Fprintf(stderr, "scoregate: in-process scoregate: %v\n", err)
		}
	})
	ip.cleanups = append(ip.cleanups, func() {
		cancel()
		serverWG.Wait()
	})
	_, port, _ := net.SplitHostPort(s.tlsAddr())
	ip.url = "https://" + net.JoinHostPort("localhost", port) + "/score"
	ip.tlsAddr = s.tlsAddr()
	return ip, nil
}

// stop shuts the scoregate down, then the backend, and removes the
// certificates.
func (ip *inProcess) stop() {
	for i := len(ip.cleanups) - 1; i >= 0; i-- {
		ip.cleanups[i]()
	}
	ip.cleanups = nil
}
