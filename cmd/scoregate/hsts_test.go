package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// TestServeHSTS checks Strict-Transport-Security on the TLS listener's
// answers, the backend's and scoregate's own, with and without
// --hsts-max-age, and never on the plain-HTTP redirect.
func TestServeHSTS(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	be := newRecordingBackend(t)
	roots := poolOf(t, f.CAFile)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"off by default", nil, ""},
		{"a year", []string{"--hsts-max-age", "8760h"}, "max-age=31536000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServe(t, append([]string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
				"--ssl-cname", "api.example.com", "--ca-file", f.CAFile, "--backend", be.URL, "--http-listen", "127.0.0.1:0"}, tt.args...)...)
			for _, h2 := range []bool{false, true} {
				c := ts.client(t, roots, "api.example.com", h2)
				for _, r := range []struct {
					url  string
					code int
				}{
					{"https://api.example.com/score", http.StatusOK},
					{"https://evil.example.com/score", http.StatusMisdirectedRequest},
				} {
					resp, err := c.Post(r.url, "application/json", strings.NewReader("{}"))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if got := resp.Header.Values("Strict-Transport-Security"); resp.StatusCode != r.code || strings.Join(got, ",") != tt.want {
						t.Errorf("h2=%v POST %s = %d, Strict-Transport-Security %q; want %d, %q", h2, r.url, resp.StatusCode, got, r.code, tt.want)
					}
				}
			}
			plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := plain.Get("http://" + ts.addr("http-listen") + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
				t.Errorf("plain-HTTP redirect: Strict-Transport-Security %q, want none", got)
			}
		})
	}
}

func TestHSTSMaxAge(t *testing.T) {
	for _, tt := range []struct {
		maxAge time.Duration
		want   string
	}{
		{0, ""},
		{time.Second, "max-age=1"},
		{1500 * time.Millisecond, "max-age=2"}, // rounded up: max-age=0 would switch HSTS off
		{time.Millisecond, "max-age=1"},
		{180 * 24 * time.Hour, "max-age=15552000"},
	} {
		rec := httptest.NewRecorder()
		hsts(http.NotFoundHandler(), tt.maxAge).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if got := rec.Header().Get("Strict-Transport-Security"); got != tt.want {
			t.Errorf("hsts(%s): Strict-Transport-Security = %q, want %q", tt.maxAge, got, tt.want)
		}
	}
}
