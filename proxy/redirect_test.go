package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRedirect(t *testing.T) {
	for _, tt := range []struct {
		name, cname, port string
		method, target    string
		host              string
		wantStatus        int
		wantLocation      string
	}{
		{"default port", "api.example.com", "443", "GET", "/score?a=1&b=2", "api.example.com", 308, "https://api.example.com/score?a=1&b=2"},
		{"empty port", "api.example.com", "", "GET", "/", "api.example.com:80", 308, "https://api.example.com/"},
		{"other port", "api.example.com", "8443", "POST", "/score", "API.example.com.", 308, "https://api.example.com:8443/score"},
		{"escaped path kept", "api.example.com", "443", "GET", "/a%20b/c%2Fd", "api.example.com", 308, "https://api.example.com/a%20b/c%2Fd"},
		{"double slash stays on the cname", "api.example.com", "443", "GET", "//evil.example.com/x", "api.example.com", 308, "https://api.example.com//evil.example.com/x"},
		{"cname normalised", "API.Example.com.", "443", "GET", "/", "api.example.com", 308, "https://api.example.com/"},
		{"other name", "api.example.com", "443", "GET", "/", "evil.example.com", 421, ""},
		{"IPv6 literal", "api.example.com", "443", "GET", "/", "[::1]", 421, ""},
		{"empty Host", "api.example.com", "443", "GET", "/", "", 400, ""},
		{"malformed Host", "api.example.com", "443", "GET", "/", "a..b", 400, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			Redirect(tt.cname, tt.port).ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if got := w.Header().Get("Location"); got != tt.wantLocation {
				t.Errorf("Location = %q, want %q", got, tt.wantLocation)
			}
			if tt.wantStatus != 308 {
				checkErrorBody(t, w.Header(), w.Body.String())
			}
		})
	}
}

// TestRedirectOverHTTP runs the handler on a real plain-HTTP listener, as
// --http-listen does, with a client that does not follow redirects.
func TestRedirectOverHTTP(t *testing.T) {
	srv := httptest.NewServer(Redirect(testCName, "8443"))
	defer srv.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req := newRequest(t, t.Context(), srv, "POST", "/score?x=1", testCName, nil)
	resp, _ := do(t, c, req, 1)
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("status = %d, want 308", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Location"), "https://api.example.com:8443/score?x=1"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}
