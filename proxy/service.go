package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scoregate/scoregate/proxy/h1"
)

// RoutePrefix is where Azure ML's front end routes a service's requests:
// /api/v1/service/NAME/REST goes to the service NAME as /REST.
const RoutePrefix = "/api/v1/service/"

// DefaultServiceLabel names the unnamed service (Config.Backends) in
// metrics and /readyz.
const DefaultServiceLabel = "default"

// resolveTimeout bounds one resolution of a service's names.
const resolveTimeout = 5 * time.Second

// service is one scoring service: its targets, the replicas they resolve
// to, and the pool that admits requests to them.
type service struct {
	px      *Proxy
	name    string     // "" for the default service
	label   string     // name, or DefaultServiceLabel
	targets []*url.URL // as configured; one scheme and one path among them
	https   bool
	h2c     bool     // HTTP/2 with prior knowledge to plain-HTTP replicas (h2c:// targets; gRPC)
	prefix  string   // the targets' path, prefixed to every request path; "" or "/" for none
	health  *url.URL // the health URL (its scheme, port, path, query); nil: GET / on the replica's port
	direct  bool     // plain HTTP and no prefix: the direct path serves it (forward.go)
	named   bool     // some target is a DNS name, to be re-resolved
	// resolved is set after the first refresh, which runs in New; the
	// others run on Run's goroutine, one at a time.
	resolved bool
	pool     pool
}

// newService checks a service's targets.
func (p *Proxy) newService(name string, targets []*url.URL, cfg *Config) (*service, error) {
	label := name
	if name == "" {
		label = DefaultServiceLabel
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("proxy: service %q has no backend", label)
	}
	s := &service{px: p, name: name, label: label}
	s.pool = pool{label: label, maxPer: cfg.MaxConcurrentPerReplica, maxQueue: cfg.MaxQueueLength, maxWait: cfg.MaxQueueWait,
		busyFor: cfg.UpstreamTimeout, m: p.metrics}
	for i, u := range targets {
		if err := checkBackend(u); err != nil {
			return nil, err
		}
		t := *u // the caller keeps its URL
		if i > 0 && (t.Scheme != s.targets[0].Scheme || t.Path != s.targets[0].Path) {
			return nil, fmt.Errorf("proxy: service %q: backends %q and %q differ in scheme or path; give a service's replicas one scheme and one path", label, s.targets[0].Redacted(), t.Redacted())
		}
		if net.ParseIP(t.Hostname()) == nil {
			s.named = true
		}
		s.targets = append(s.targets, &t)
	}
	first := s.targets[0]
	s.https = first.Scheme == "https"
	if first.Scheme == "h2c" {
		// An h2c target is an http URL to net/http's Transport, which
		// speaks HTTP/2 to it with prior knowledge (newReplica).
		s.h2c = true
		for _, t := range s.targets {
			t.Scheme = "http"
		}
	}
	s.prefix = first.Path
	s.direct = !s.https && !s.h2c && (first.Path == "" || first.Path == "/") && first.RawQuery == ""
	field, health := "HealthURL", cfg.HealthURL
	if name != "" {
		field, health = fmt.Sprintf("ServiceHealthURLs[%q]", name), cfg.ServiceHealthURLs[name]
	}
	if health != nil {
		if err := checkHealthURL(health, s.targets); err != nil {
			return nil, fmt.Errorf("proxy: %s %q: %w", field, health.Redacted(), err)
		}
		h := *health
		if h.Path == "" {
			h.Path = "/"
		}
		h.Fragment, h.RawFragment = "", ""
		s.health = &h
	}
	return s, nil
}

// checkHealthURL checks a service's health URL. A replica is an address
// (a target given by name stands for every address it resolves to), so the
// check asks each replica at its own address: the URL gives the scheme,
// port, path and query, and its host is either empty or the host of one of
// the targets.
func checkHealthURL(u *url.URL, targets []*url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("want an http:// or https:// URL")
	}
	if u.User != nil {
		return fmt.Errorf("user information in a health URL is not sent; drop it")
	}
	if n, err := strconv.Atoi(portOf(u)); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1 to 65535", portOf(u))
	}
	host := u.Hostname()
	if host == "" {
		return nil
	}
	for _, t := range targets {
		if strings.EqualFold(strings.TrimSuffix(t.Hostname(), "."), strings.TrimSuffix(host, ".")) {
			return nil
		}
	}
	return fmt.Errorf("host %q is none of the service's backends; each replica is asked at its own address, so give a backend's host or none (such as http://:5000/)", host)
}

// portOf is u's port, or its scheme's.
func portOf(u *url.URL) string {
	_, port, _ := net.SplitHostPort(hostPort(u))
	return port
}

// hostPort is u's host with the scheme's port when it has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// resolve returns the addresses the service's targets stand for, each
// with the target it came from: an IP address as it is, a name as every
// address it resolves to now.
func (s *service) resolve(ctx context.Context) (map[string]*url.URL, error) {
	out := map[string]*url.URL{}
	var errs []string
	for _, t := range s.targets {
		host, port, _ := net.SplitHostPort(hostPort(t))
		if net.ParseIP(host) != nil {
			out[net.JoinHostPort(host, port)] = t
			continue
		}
		ips, err := s.px.resolver.LookupHost(ctx, host)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, ip := range ips {
			out[net.JoinHostPort(ip, port)] = t
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// refresh resolves the service's targets and makes the addresses its
// replicas. A failed lookup keeps the replicas of the targets it could not
// resolve: a DNS hiccup must not empty a service.
func (s *service) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := s.resolve(ctx)
	if err != nil {
		s.px.log.Warn().Err(err).Str(keyService, s.label).Msg("resolving the service's backends failed; keeping their last addresses")
		// Keep every replica whose target failed: those of the
		// targets that resolved are as DNS says.
		for _, r := range s.pool.snapshot() {
			if !resolvedTarget(addrs, r.origin) {
				addrs[r.addr] = r.origin
			}
		}
	}
	want := make([]string, 0, len(addrs))
	for a := range addrs {
		want = append(want, a)
	}
	slices.Sort(want)
	added, removed := s.pool.setReplicas(want, func(addr string) *replica { return s.newReplica(addr, addrs[addr]) })
	first := !s.resolved
	s.resolved = true
	if len(added)+len(removed) > 0 && (!first || s.named) {
		s.px.log.Info().Str(keyService, s.label).Strs("added", added).Strs("removed", removed).Int("replicas", len(want)).Msg("service replicas changed")
	}
}

// resolvedTarget reports whether some address in addrs came from t.
func resolvedTarget(addrs map[string]*url.URL, t *url.URL) bool {
	for _, u := range addrs {
		if u == t {
			return true
		}
	}
	return false
}

// newReplica makes the replica for addr, from target t.
func (s *service) newReplica(addr string, t *url.URL) *replica {
	p := s.px
	r := &replica{svc: s, addr: addr, origin: t}
	dialer := &net.Dialer{Timeout: p.dialTimeout, KeepAlive: tcpKeepAlive}
	r.tr = &http.Transport{
		// No Proxy: HTTP_PROXY in the container's environment must not
		// divert traffic meant for the sidecar's backend. The URL keeps
		// the target's name (Host, TLS server name); the replica's
		// address is what is dialed.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        p.maxIdleConns,
		MaxIdleConnsPerHost: p.maxIdleConns,
		// The pool admits at most maxPer requests at once; the health
		// check is one more.
		MaxConnsPerHost:       s.pool.maxPer + 1,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: p.upstreamTimeout, // from the end of the request, as h1's
		ExpectContinueTimeout: expectContinue,
		TLSHandshakeTimeout:   tlsHandshakeLimit,
		// Bodies pass through as they are; the client negotiated its
		// own Content-Encoding with the backend.
		DisableCompression: true,
		// HTTP/2 where TLS can negotiate it; the Azure ML server
		// speaks HTTP/1.1 on plain http, and an h2c target HTTP/2 with
		// prior knowledge (below).
		ForceAttemptHTTP2: s.https,
	}
	if s.h2c {
		// HTTP/2 alone, over plain TCP: gRPC servers (grpc-go, Triton,
		// TorchServe, KServe) speak nothing else there. One connection
		// carries many streams; MaxConnsPerHost still bounds the
		// connections, and the pool the requests.
		r.tr.Protocols = new(http.Protocols)
		r.tr.Protocols.SetUnencryptedHTTP2(true)
	}
	if s.https && p.backendTLS != nil {
		r.tr.TLSClientConfig = p.backendTLS.Clone()
	}
	r.probeURL = s.probeURL(t)
	if s.health != nil {
		r.probeTr = s.newProbeTransport(addr)
	}
	if !s.https && !s.h2c {
		// New fails only on a malformed address, which addr is not.
		r.h1, _ = h1.New(h1.Config{
			Addr:                  addr,
			DialTimeout:           p.dialTimeout,
			ResponseHeaderTimeout: p.upstreamTimeout,
			MaxIdleConns:          min(p.maxIdleConns, s.pool.maxPer+1),
			IdleConnTimeout:       idleConnTimeout,
			CheckIdleAfter:        checkIdleAfter,
		})
	}
	return r
}

// probeURL is what the health check of a replica of target t asks: GET /
// on the target, or the service's health URL with t's host.
func (s *service) probeURL(t *url.URL) string {
	if s.health == nil {
		u := *t
		u.Path, u.RawPath, u.RawQuery = "/", "", ""
		return u.String()
	}
	u := *s.health
	u.Host = net.JoinHostPort(t.Hostname(), portOf(s.health))
	return u.String()
}

// newProbeTransport makes the connections of the health checks of the
// replica at addr, for a health URL: they dial addr's host at the health
// URL's port, whatever the URL's host says.
func (s *service) newProbeTransport(addr string) *http.Transport {
	p := s.px
	host, _, _ := net.SplitHostPort(addr)
	dst := net.JoinHostPort(host, portOf(s.health))
	dialer := &net.Dialer{Timeout: p.dialTimeout, KeepAlive: tcpKeepAlive}
	tr := &http.Transport{
		// No Proxy, as for requests.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, dst)
		},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     idleConnTimeout,
		TLSHandshakeTimeout: tlsHandshakeLimit,
		DisableCompression:  true,
	}
	if s.health.Scheme == "https" && p.backendTLS != nil {
		tr.TLSClientConfig = p.backendTLS.Clone()
	}
	return tr
}

// route returns the service for r's path and the path the service gets:
// with named services, /api/v1/service/NAME/REST goes to NAME as /REST;
// every other path goes to the default service. svc is nil when there is
// none for the path (404).
func (p *Proxy) route(r *http.Request) (svc *service, path, rawPath string) {
	path, rawPath = r.URL.Path, r.URL.RawPath
	if len(p.services) == 0 {
		return p.dflt, path, rawPath
	}
	rest, ok := strings.CutPrefix(path, RoutePrefix)
	if !ok {
		return p.dflt, path, rawPath
	}
	name, sub, _ := strings.Cut(rest, "/")
	svc = p.services[name]
	if svc == nil {
		return nil, "", ""
	}
	return svc, "/" + sub, routedRawPath(rawPath, path[:len(path)-len(sub)], sub)
}

// routedRawPath is the escaped form of the routed path "/"+sub, cut from
// the request's escaped path raw, whose decoded head (the prefix and the
// service name, escaped or not) is head; "" when raw is empty or does not
// line up, and the URL escapes the path itself.
func routedRawPath(raw, head, sub string) string {
	if raw == "" {
		return ""
	}
	// The head is "/api/v1/service/NAME/": five '/' in raw too, unless
	// one of them was escaped, which the checks below catch.
	at := 0
	for range 5 {
		i := strings.IndexByte(raw[at:], '/')
		if i < 0 {
			return ""
		}
		at += i + 1
	}
	rawHead, rawSub := raw[:at], raw[at:]
	if h, err := url.PathUnescape(rawHead); err != nil || h != head {
		return ""
	}
	if u, err := url.PathUnescape(rawSub); err != nil || u != sub {
		return ""
	}
	return "/" + rawSub
}
