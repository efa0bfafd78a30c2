package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestNewValidates(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	ok := mustURL("http://127.0.0.1:5001")
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr string // "" for success; else a substring naming the field
	}{
		{"minimal", Config{CName: "api.example.com", Backend: ok}, ""},
		{"https backend", Config{CName: "api.example.com", Backend: mustURL("https://backend:443/prefix")}, ""},
		{"trailing dot cname", Config{CName: "api.example.com.", Backend: ok}, ""},
		{"no cname", Config{Backend: ok}, "CName"},
		{"cname with port", Config{CName: "api.example.com:443", Backend: ok}, "CName"},
		{"cname with a bad character", Config{CName: "api example.com", Backend: ok}, "CName"},
		{"no backend", Config{CName: "api.example.com"}, "Backend"},
		{"relative backend", Config{CName: "api.example.com", Backend: mustURL("/score")}, "Backend"},
		{"backend without host", Config{CName: "api.example.com", Backend: mustURL("http:///score")}, "Backend"},
		{"backend scheme", Config{CName: "api.example.com", Backend: mustURL("ftp://127.0.0.1:5001")}, "Backend"},
		{"backend password redacted", Config{CName: "api.example.com", Backend: mustURL("ftp://u:hunter2@h")}, "xxxxx"},
		{"negative upstream timeout", Config{CName: "api.example.com", Backend: ok, UpstreamTimeout: -time.Second}, "UpstreamTimeout"},
		{"negative dial timeout", Config{CName: "api.example.com", Backend: ok, DialTimeout: -time.Second}, "DialTimeout"},
		{"negative idle conns", Config{CName: "api.example.com", Backend: ok, MaxIdleConns: -1}, "MaxIdleConns"},
		{"negative body limit is no limit", Config{CName: "api.example.com", Backend: ok, MaxBodyBytes: -1}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg, zerolog.Nop(), nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v, want success", err)
				}
				p.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("New error %q leaks the backend password", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	p := newTestProxy(t, "http://127.0.0.1:5001", Config{}, zerolog.Nop())
	tr := p.dflt.pool.replicas[0].tr
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"ResponseHeaderTimeout", tr.ResponseHeaderTimeout, DefaultUpstreamTimeout},
		{"MaxIdleConns", tr.MaxIdleConns, DefaultMaxIdleConns},
		{"MaxIdleConnsPerHost", tr.MaxIdleConnsPerHost, DefaultMaxIdleConns},
		{"IdleConnTimeout", tr.IdleConnTimeout, 90 * time.Second},
		{"DisableCompression", tr.DisableCompression, true},
		{"ForceAttemptHTTP2", tr.ForceAttemptHTTP2, false},
		{"Proxy from the environment", tr.Proxy == nil, true},
		{"body limit", p.maxBodyBytes, int64(DefaultMaxBodyBytes)},
		{"cname", p.cname, "api.example.com"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestNewCopiesBackend: changing the caller's URL after New changes
// nothing.
func TestNewCopiesBackend(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:5001")
	p, err := New(Config{CName: testCName, Backend: u}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u.Host = "evil.example.com"
	p.noDirect = true // the in-memory transport below serves the ReverseProxy path
	got := make(chan string, 1)
	p.rp.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got <- r.URL.Host
		return okResponse(r), nil
	})
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = testCName
	p.ServeHTTP(httptest.NewRecorder(), r)
	if h := <-got; h != "127.0.0.1:5001" {
		t.Errorf("backend host = %q, want 127.0.0.1:5001", h)
	}
}
