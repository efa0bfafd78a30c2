package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/proxy"
)

// backendOptions are serve's flags about checking and trusting the
// backends, beside the --backend and --service lists themselves.
type backendOptions struct {
	healthURL     string            // --health-url
	serviceHealth serviceHealthList // --service-health NAME=URL
	caFile        string            // --backend-ca-file
}

func (o *backendOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.healthURL, "health-url", "", "`URL` the health check asks instead of GET / on the --backend replicas' port: its scheme, port, path and query, at each replica's own address, so its host is a --backend host or none (http://:5000/). For the Azure ML inference server run with SEPERATE_HEALTH_ENDPOINT=true: http://:5000/")
	fs.Var(&o.serviceHealth, "service-health", "`NAME=URL`: --health-url for the replicas of --service NAME; repeat for each service")
	fs.StringVar(&o.caFile, "backend-ca-file", "", "PEM `file` of the root certificates that verify https:// backends (default: the system's roots, which SSL_CERT_FILE replaces)")
}

// apply checks the options against the default service's targets
// (backends) and the named services, and sets them in pc. Errors name the
// flag.
func (o *backendOptions) apply(backends []*url.URL, services map[string][]*url.URL, pc *proxy.Config) error {
	if o.healthURL != "" {
		if len(backends) == 0 {
			return usagef("--health-url is for the --backend replicas, and with only --service there are none: give --service-health NAME=URL")
		}
		u, err := parseHealthURL("health-url", o.healthURL, "--backend", backends)
		if err != nil {
			return err
		}
		pc.HealthURL = u
	}
	for _, name := range o.serviceHealth.names {
		v := o.serviceHealth.urls[name]
		targets, ok := services[name]
		if !ok {
			return usagef("--service-health %q: no --service %s", name+"="+v, name)
		}
		u, err := parseHealthURL("service-health", v, "--service "+name, targets)
		if err != nil {
			return err
		}
		if pc.ServiceHealthURLs == nil {
			pc.ServiceHealthURLs = map[string]*url.URL{}
		}
		pc.ServiceHealthURLs[name] = u
	}
	if o.caFile != "" {
		roots, err := certs.LoadRoots(o.caFile)
		if err != nil {
			if fe := (*certs.FileError)(nil); errors.As(err, &fe) {
				return usagef("--backend-ca-file %q: %v", fe.Path, fe.Err)
			}
			return usagef("--backend-ca-file %q: %v", o.caFile, err)
		}
		pc.BackendTLS = &tls.Config{RootCAs: roots}
	}
	return nil
}

// parseHealthURL checks a health URL given to flag for the replicas of
// targets (what names them for the operator): each replica is an address,
// asked at the URL's port and path, so the host must be one of the
// targets' or none.
func parseHealthURL(flag, v, what string, targets []*url.URL) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" {
		return nil, usagef("--%s %q: want an http:// or https:// URL such as http://:5000/", flag, v)
	}
	host := u.Hostname()
	if host == "" {
		return u, nil
	}
	for _, t := range targets {
		if strings.EqualFold(t.Hostname(), host) {
			return u, nil
		}
	}
	return nil, usagef("--%s %q: host %q is not that of %s; each replica is asked at its own address, so give its host or none, as in http://:5000/", flag, v, host, what)
}

// serviceHealthList is the repeatable --service-health NAME=URL flag.
// SCOREGATE_SERVICE_HEALTH takes a comma-separated list.
type serviceHealthList struct {
	names []string // in the order given
	urls  map[string]string
}

func (s *serviceHealthList) String() string {
	if s == nil {
		return ""
	}
	parts := make([]string, 0, len(s.names))
	for _, n := range s.names {
		parts = append(parts, n+"="+s.urls[n])
	}
	return strings.Join(parts, ",")
}

func (s *serviceHealthList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok || name == "" || u == "" {
			return fmt.Errorf("%q: want NAME=URL, such as fraud=http://:5000/", part)
		}
		if _, seen := s.urls[name]; seen {
			return fmt.Errorf("%q: a health URL for %s is already given; one per service", part, name)
		}
		if s.urls == nil {
			s.urls = map[string]string{}
		}
		s.names = append(s.names, name)
		s.urls[name] = u
	}
	return nil
}
