package proxy

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The routes of named services, as Azure ML's front end has them:
// /api/v1/service/NAME/REST goes to NAME's replicas as /REST.

// newRoutedProxy builds a Proxy for testCName with cfg, its requests on
// path. setPath needs a default service; this chooses the path for every
// service, each of which must be one the direct path serves.
func newRoutedProxy(t *testing.T, path seamPath, cfg Config) *Proxy {
	t.Helper()
	cfg.CName = testCName
	p, err := New(cfg, testLog(t), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	for _, s := range p.all {
		if !s.direct {
			t.Fatalf("service %q: an http:// backend without a path does not get the direct path", s.label)
		}
	}
	switch path {
	case pathReverseProxyH1:
		p.noDirect = true
	case pathReverseProxyNetHTTP:
		p.noDirect, p.noH1 = true, true
	}
	return p
}

// okBackend is a raw backend that answers 200 ok and records each request
// line's target as it arrived.
func okBackend(t *testing.T) *rawBackend {
	return startRawBackend(t, func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool { return answerOK(c) })
}

// route is one request and where it must arrive.
type route struct {
	name, target string // target: the request-target the client sends
	want         string // the backend that gets it, by name; "" for none (404)
	wantLine     string // "GET " and the request-target it gets
}

// checkRoutes sends each request over HTTP/1.1 and HTTP/2 and checks that
// it reached the backend named, as the request line given, and no other;
// or, with no backend named, that it got a 404 error body that names
// nothing of the configuration.
func checkRoutes(t *testing.T, p *Proxy, backends map[string]*rawBackend, routes []route) {
	t.Helper()
	front := startFront(t, p)
	for _, tt := range routes {
		for _, pr := range protos {
			t.Run(tt.name+"/"+pr.name, func(t *testing.T) {
				before := map[string]int{}
				for name, b := range backends {
					_, _, reqs := b.counts()
					before[name] = len(reqs)
				}
				req := newRequest(t, t.Context(), front, "GET", "/", testCName, nil)
				req.URL.Opaque = tt.target // sent as it is, escapes and all
				resp, body := do(t, clientFor(t, front, pr.major), req, pr.major)
				if tt.want == "" {
					if resp.StatusCode != 404 {
						t.Fatalf("GET %s: %d %q, want 404", tt.target, resp.StatusCode, body)
					}
					e := checkErrorBody(t, resp.Header, body)
					if e.Error != msgNoService {
						t.Errorf("404 error = %q, want %q", e.Error, msgNoService)
					}
					for name, b := range backends {
						host := strings.TrimPrefix(b.url, "http://")
						_, port, _ := net.SplitHostPort(host)
						for _, secret := range []string{name, host, port} {
							if strings.Contains(e.Error, secret) {
								t.Errorf("404 error %q names %q, of the configuration", e.Error, secret)
							}
						}
					}
				} else if resp.StatusCode != 200 {
					t.Fatalf("GET %s: %d %q, want 200 from %s", tt.target, resp.StatusCode, body, tt.want)
				}
				for name, b := range backends {
					_, _, reqs := b.counts()
					got := reqs[before[name]:]
					switch {
					case name == tt.want && (len(got) != 1 || got[0] != tt.wantLine):
						t.Errorf("GET %s: %s got %q, want [%q]", tt.target, name, got, tt.wantLine)
					case name != tt.want && len(got) != 0:
						t.Errorf("GET %s: %s got %q, want nothing", tt.target, name, got)
					}
				}
			})
		}
	}
}

func serviceURLs(t *testing.T, services map[string]*rawBackend) map[string][]*url.URL {
	out := map[string][]*url.URL{}
	for name, b := range services {
		out[name] = urls(t, b.url)
	}
	return out
}

// TestRouteServices: with named services and no default, a path under
// the prefix goes to its service with the prefix and name taken off,
// query and escapes kept; an unknown name, and a path outside the prefix,
// get 404.
func TestRouteServices(t *testing.T) { forTransports(t, testRouteServices) }

func testRouteServices(t *testing.T, path seamPath) {
	backends := map[string]*rawBackend{"fraud": okBackend(t), "churn": okBackend(t)}
	p := newRoutedProxy(t, path, Config{Services: serviceURLs(t, backends)})
	checkRoutes(t, p, backends, []route{
		{"path and query", "/api/v1/service/fraud/score?x=1", "fraud", "GET /score?x=1"},
		{"service root", "/api/v1/service/churn/", "churn", "GET /"},
		{"service name alone", "/api/v1/service/churn", "churn", "GET /"},
		{"deeper path", "/api/v1/service/fraud/v2/models/m1/score", "fraud", "GET /v2/models/m1/score"},
		{"escapes after the name kept", "/api/v1/service/fraud/a%2Fb%20c?q=%2F", "fraud", "GET /a%2Fb%20c?q=%2F"},
		{"escapes kept, prefix escaped", "/api/v1/%73ervice/fraud/a%2Fb", "fraud", "GET /a%2Fb"},
		{"escapes kept, name escaped", "/api/v1/service/fr%61ud/a%2Fb", "fraud", "GET /a%2Fb"},
		{"unknown service", "/api/v1/service/nope/score", "", ""},
		{"empty service name", "/api/v1/service//score", "", ""},
		{"no service name", "/api/v1/service/", "", ""},
		{"outside the prefix, no default", "/score", "", ""},
		{"prefix without its slash, no default", "/api/v1/service", "", ""},
	})
}

// TestRouteServicesWithDefault: with Backends as well, a path outside the
// prefix goes to the default service as it is; the prefix still routes,
// and an unknown name still gets 404.
func TestRouteServicesWithDefault(t *testing.T) { forTransports(t, testRouteServicesWithDefault) }

func testRouteServicesWithDefault(t *testing.T, path seamPath) {
	services := map[string]*rawBackend{"fraud": okBackend(t), "churn": okBackend(t)}
	dflt := okBackend(t)
	p := newRoutedProxy(t, path, Config{Backends: urls(t, dflt.url), Services: serviceURLs(t, services)})
	backends := map[string]*rawBackend{"fraud": services["fraud"], "churn": services["churn"], DefaultServiceLabel: dflt}
	checkRoutes(t, p, backends, []route{
		{"outside the prefix", "/score?x=1", DefaultServiceLabel, "GET /score?x=1"},
		{"root", "/", DefaultServiceLabel, "GET /"},
		{"escapes kept", "/a%2Fb", DefaultServiceLabel, "GET /a%2Fb"},
		{"prefix without its slash", "/api/v1/service", DefaultServiceLabel, "GET /api/v1/service"},
		{"service", "/api/v1/service/fraud/score", "fraud", "GET /score"},
		{"other service", "/api/v1/service/churn/score?x=2", "churn", "GET /score?x=2"},
		{"unknown service", "/api/v1/service/nope/score", "", ""},
	})
}

// TestRouteOnlyDefault: with no Services, every path goes to the default
// service as it is, the prefix included.
func TestRouteOnlyDefault(t *testing.T) { forTransports(t, testRouteOnlyDefault) }

func testRouteOnlyDefault(t *testing.T, path seamPath) {
	dflt := okBackend(t)
	p := newRoutedProxy(t, path, Config{Backends: urls(t, dflt.url)})
	checkRoutes(t, p, map[string]*rawBackend{DefaultServiceLabel: dflt}, []route{
		{"prefix kept", "/api/v1/service/fraud/score", DefaultServiceLabel, "GET /api/v1/service/fraud/score"},
		{"plain", "/score", DefaultServiceLabel, "GET /score"},
	})
}
