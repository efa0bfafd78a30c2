package main

import (
	"fmt"
	"net"
	"strings"
)

// devPortRoles says what each listener printDevHelp names serves.
var devPortRoles = []struct{ flag, role string }{
	{"listen", "HTTPS"},
	{"metrics-listen", "health and metrics"},
	{"http-listen", "plain-HTTP redirect"},
}

// printDevHelp prints where the CA is, the ports in use and how to move
// them, and a request to copy and paste.
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
	var ports []string
	for _, p := range devPortRoles {
		if a := s.addr(p.flag); a != "" {
			ports = append(ports, fmt.Sprintf("%s %s (--%s)", p.role, a, p.flag))
		}
	}
	if s.addr("metrics-listen") == "" {
		ports = append(ports, "no health and metrics (--metrics-listen '')")
	}
	fmt.Fprintf(s.stdout, "Ports: %s\n", strings.Join(ports, ", "))
	fmt.Fprintf(s.stdout, "Other ports: --listen 127.0.0.1:PORT --metrics-listen 127.0.0.1:PORT (or %s, %s)\n", envName("listen"), envName("metrics-listen"))
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
