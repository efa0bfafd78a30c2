package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/scoregate/scoregate/bench"
	"github.com/scoregate/scoregate/certs"
)

// setupDev makes the --dev certificate (unless files were given) and starts
// the demo scoring backend (unless --backend was given).
func (s *server) setupDev() error {
	if s.cfg.certFile == "" {
		files, err := certs.WriteDev(s.cfg.devDir, s.cfg.cname)
		if err != nil {
			return usagef("--dev-dir %q: %w", s.cfg.devDir, err)
		}
		s.cfg.certFile, s.cfg.keyFile = files.CertFile, files.KeyFile
		s.devCAFile = files.CAFile
	}
	if !s.cfg.given["backend"] {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("--dev: starting the demo backend: %w", err)
		}
		srv := &http.Server{Handler: bench.NewBackend(bench.BackendConfig{}), ReadHeaderTimeout: 10 * time.Second}
		s.devBackend = &listener{name: "dev-backend", srv: srv, ln: ln}
	}
	return nil
}

// printDevHelp prints where the CA is and a request to copy and paste.
func (s *server) printDevHelp() {
	_, port, _ := net.SplitHostPort(s.tlsAddr())
	host := s.cfg.cname
	if port != "443" {
		host = net.JoinHostPort(host, port)
	}
	fmt.Fprintf(s.stdout, "\nscoregate --dev is serving https://%s/ (development only: self-signed CA)\n", host)
	if s.devCAFile == "" {
		fmt.Fprintf(s.stdout, "Try:\n  curl -H 'Content-Type: application/json' -d '{\"data\":[[1,2,3,4]]}' https://%s/score\n\n", host)
		return
	}
	fmt.Fprintf(s.stdout, "CA certificate: %s\n", s.devCAFile)
	fmt.Fprintf(s.stdout, "Try:\n  curl --cacert %s -H 'Content-Type: application/json' -d '{\"data\":[[1,2,3,4]]}' https://%s/score\n\n",
		shellQuote(s.devCAFile), host)
}

func shellQuote(s string) string {
	for _, r := range s {
		if !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "'" + s + "'"
		}
	}
	return s
}
