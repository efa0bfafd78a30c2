package main

import (
	"fmt"
	"net"
)

// printDevHelp prints where the CA is and a request to copy and paste.
func (s *server) printDevHelp() {
	_, port, _ := net.SplitHostPort(s.tlsAddr())
	host := s.cfg.CName
	if port != "443" {
		host = net.JoinHostPort(host, port)
	}
	fmt.Fprintf(s.stdout, "\nscoregate --dev is serving https://%s/ (development only: self-signed CA)\n", host)
	if s.cfg.DevCAFile != "" {
		fmt.Fprintf(s.stdout, "CA certificate: %s\n", s.cfg.DevCAFile)
	}
	fmt.Fprintf(s.stdout, "Try:\n  %s\n\n", devCurl(s.cfg.CName, s.tlsAddr(), s.cfg.DevCAFile))
}

func shellQuote(s string) string {
	for _, r := range s {
		if !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "'" + s + "'"
		}
	}
	return s
}
