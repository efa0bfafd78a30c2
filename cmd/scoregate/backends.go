package main

import (
	"fmt"
	"net/url"
	"strings"
)

// defaultBackend is --backend's default: the Azure ML scoring container on
// the same node.
const defaultBackend = "http://127.0.0.1:5001"

// backendList is the repeatable --backend flag: each value one replica's
// URL, or a DNS name standing for every address it resolves to. The first
// value given replaces the default; SCOREGATE_BACKEND takes a
// comma-separated list.
type backendList struct {
	vals  []string
	given bool
}

func (b *backendList) String() string {
	if b == nil || len(b.vals) == 0 {
		return ""
	}
	return strings.Join(b.vals, ",")
}

func (b *backendList) Set(v string) error {
	if !b.given {
		b.vals, b.given = nil, true
	}
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			b.vals = append(b.vals, part)
		}
	}
	return nil
}

// serviceList is the repeatable --service NAME=URL flag; the same NAME
// again adds a replica. SCOREGATE_SERVICE takes a comma-separated list.
type serviceList struct {
	names []string // in the order first given
	urls  map[string][]string
}

func (s *serviceList) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	for _, n := range s.names {
		for _, u := range s.urls[n] {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

func (s *serviceList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok || name == "" || u == "" {
			return fmt.Errorf("%q: want NAME=URL, such as fraud=http://10.0.0.7:5001", part)
		}
		if s.urls == nil {
			s.urls = map[string][]string{}
		}
		if _, seen := s.urls[name]; !seen {
			s.names = append(s.names, name)
		}
		s.urls[name] = append(s.urls[name], u)
	}
	return nil
}

// parseBackend checks one backend URL; flag names the flag it came from.
func parseBackend(flag, v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "h2c") || u.Host == "" {
		return nil, usagef("--%s %q: want an http://, https:// or h2c:// (HTTP/2 without TLS, for gRPC) URL such as %s", flag, v, defaultBackend)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, usagef("--%s %q: give scheme, host and port only; the request path is forwarded as is", flag, v)
	}
	return u, nil
}

// backendURLs parses --backend and --service. Without --service, --backend
// (or its default) is the one service; with it, --backend serves the paths
// outside /api/v1/service/ only when it was given.
func (c *serveConfig) backendURLs() (backends []*url.URL, services map[string][]*url.URL, err error) {
	vals := c.backends.vals
	if !c.backends.given {
		vals = []string{defaultBackend}
	}
	if len(c.services.names) == 0 || c.backends.given {
		for _, v := range vals {
			u, err := parseBackend("backend", v)
			if err != nil {
				return nil, nil, err
			}
			backends = append(backends, u)
		}
	}
	for _, name := range c.services.names {
		if services == nil {
			services = map[string][]*url.URL{}
		}
		for _, v := range c.services.urls[name] {
			u, err := parseBackend("service", v)
			if err != nil {
				return nil, nil, err
			}
			services[name] = append(services[name], u)
		}
	}
	return backends, services, nil
}
