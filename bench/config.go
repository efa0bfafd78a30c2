package bench

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Scenario names what one request of a run is.
type Scenario string

// The scenarios. Handshake and Resume open a new connection per request and
// need an https URL; H1 and H2 keep their connections open.
const (
	// Handshake is a new TCP connection and a full TLS handshake per
	// request (no client session cache), then one request sent with
	// "Connection: close": the whole connection lifecycle.
	Handshake Scenario = "handshake"
	// Resume is Handshake with a shared client session cache, so every
	// handshake after the first resumes a session from a ticket. The share
	// that did resume is measured (tls.ConnectionState.DidResume).
	Resume Scenario = "resume"
	// H1 is keep-alive HTTP/1.1: one connection per worker, reused.
	H1 Scenario = "h1"
	// H2 is HTTP/2: H2Conns connections with H2Streams concurrent streams
	// each. Over http:// it is HTTP/2 with prior knowledge (h2c).
	H2 Scenario = "h2"
)

// Scenarios lists every Scenario, in the order help texts show them.
var Scenarios = []Scenario{Handshake, Resume, H1, H2}

// Defaults that Config's zero values stand for.
const (
	DefaultConcurrency = 32 // wrk -c32 and hsload -c 32 in the peers kit
	DefaultH2Conns     = 16 // h2load -c16 -m10 in the peers kit
	DefaultH2Streams   = 10
	DefaultDuration    = 10 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultBodyBytes   = 1040 // the peers kit's lua/score.lua body
	DefaultPath        = "/score"
)

// Config describes one run. The zero value of each field but URL has a
// useful meaning, given with the field.
type Config struct {
	// URL is the target: https://host[:port][/path]. Its host is the TLS
	// server name (SNI) and the HTTP Host; its path, if any, is the
	// request path. An http:// URL targets a plain-HTTP server such as the
	// scoring backend itself: H1 is then HTTP/1.1 and H2 is HTTP/2 with
	// prior knowledge (h2c); Handshake and Resume need https. Required.
	URL *url.URL
	// Connect is the host:port to dial; if empty, the URL's host and port
	// (or the scheme's default port). SNI and Host stay the URL's, so a
	// server that checks both can be measured at any address.
	Connect string
	// RootCAs verifies the server's certificate chain; if nil, the system
	// roots do.
	RootCAs *x509.CertPool
	// Insecure skips certificate verification, as wrk and h2load do; it
	// keeps the client's cost per full handshake low.
	Insecure bool

	// Scenario is what each request is; if empty, H1.
	Scenario Scenario
	// Concurrency is the number of workers for Handshake, Resume and H1:
	// each runs one request at a time (H1: on its own keep-alive
	// connection). If zero, DefaultConcurrency. H2 uses H2Conns ×
	// H2Streams workers instead.
	Concurrency int
	// Rate, if positive, makes the run open-loop: request i is scheduled
	// at i/Rate seconds after the start, whatever happened to the
	// requests before it, and its latency is measured from that scheduled
	// time, so a stall delays (and is charged to) every request scheduled
	// during it instead of silently thinning the load (coordinated
	// omission). The workers pick the scheduled requests up in turn; when
	// all are busy, requests wait, and the wait counts. If zero, the run
	// is closed-loop: each worker sends its next request as soon as its
	// last one is answered.
	Rate float64
	// H2Conns and H2Streams shape H2: H2Conns connections, each with
	// H2Streams workers sending one request at a time (so H2Streams
	// concurrent streams). If zero, DefaultH2Conns and DefaultH2Streams.
	H2Conns, H2Streams int

	// Duration is the measured window; if zero, DefaultDuration.
	Duration time.Duration
	// Warmup runs the same load before the measured window, not counted.
	// If zero, there is none; connections for H1 and H2 are still opened
	// before the clock starts.
	Warmup time.Duration
	// Timeout bounds each request, its dial and handshake included; a
	// request that takes longer counts as a timeout error. If zero,
	// DefaultTimeout.
	Timeout time.Duration

	// Method is the request method; if empty, POST.
	Method string
	// Path is the request path (and query); if empty, the URL's path, or
	// DefaultPath if the URL has none.
	Path string
	// BodyBytes is the size of the JSON body sent with every request
	// whose method is not GET or HEAD; if zero, DefaultBodyBytes (the
	// peers kit's 110-feature scoring request). Sizes below the JSON
	// envelope's (59 bytes) are rounded up to it.
	BodyBytes int

	// Label names the result in tables and plots; if empty, the URL's
	// host.
	Label string
}

// withDefaults returns c with zero values replaced and checks it. The
// error wraps ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	if c.URL == nil {
		return c, invalidf("no URL")
	}
	switch c.URL.Scheme {
	case "https":
	case "http":
		if c.Scenario == Handshake || c.Scenario == Resume {
			return c, invalidf("scenario %s needs an https URL, not %q", c.Scenario, c.URL.Redacted())
		}
	default:
		return c, invalidf("URL %q: want https:// (or http:// for a plain-HTTP server)", c.URL.Redacted())
	}
	if c.URL.Hostname() == "" {
		return c, invalidf("URL %q: no host", c.URL.Redacted())
	}
	if c.Connect == "" {
		port := c.URL.Port()
		if port == "" {
			port = map[string]string{"https": "443", "http": "80"}[c.URL.Scheme]
		}
		c.Connect = net.JoinHostPort(c.URL.Hostname(), port)
	} else if _, _, err := net.SplitHostPort(c.Connect); err != nil {
		return c, invalidf("connect address %q: want host:port", c.Connect)
	}
	if c.Scenario == "" {
		c.Scenario = H1
	}
	known := false
	for _, s := range Scenarios {
		known = known || c.Scenario == s
	}
	if !known {
		return c, invalidf("scenario %q: want handshake, resume, h1 or h2", c.Scenario)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"concurrency", &c.Concurrency, DefaultConcurrency}, {"H2 connections", &c.H2Conns, DefaultH2Conns}, {"H2 streams", &c.H2Streams, DefaultH2Streams}, {"body size", &c.BodyBytes, DefaultBodyBytes}} {
		if *f.v < 0 {
			return c, invalidf("%s %d: want a positive number (or zero for the default)", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.Rate < 0 || c.Rate != c.Rate {
		return c, invalidf("rate %v: want requests per second, or zero for a closed loop", c.Rate)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"duration", &c.Duration, DefaultDuration}, {"warm-up", &c.Warmup, 0}, {"timeout", &c.Timeout, DefaultTimeout}} {
		if *d.v < 0 {
			return c, invalidf("%s %s: must not be negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Rate > 0 && c.Rate*(c.Warmup+c.Duration).Seconds() > 1e9 {
		return c, invalidf("rate %v over %s: more than a billion requests", c.Rate, c.Warmup+c.Duration)
	}
	if c.Method == "" {
		c.Method = "POST"
	}
	if c.Path == "" {
		c.Path = c.URL.RequestURI()
		if c.URL.Path == "" || (c.URL.Path == "/" && c.URL.RawQuery == "") {
			c.Path = DefaultPath
		}
	}
	if c.Path[0] != '/' {
		return c, invalidf("path %q: must start with /", c.Path)
	}
	if c.Label == "" {
		c.Label = c.URL.Host
	}
	return c, nil
}

// workers is the number of concurrent requests a run keeps going.
func (c Config) workers() int {
	if c.Scenario == H2 {
		return c.H2Conns * c.H2Streams
	}
	return c.Concurrency
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
