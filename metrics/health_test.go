package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestHealthEndpoints(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(NewMux(HealthConfig{Ready: func(context.Context) Readiness {
		if !ready.Load() {
			return Readiness{Reason: "no certificate yet"}
		}
		return Readiness{Ready: true, Certificate: &CertInfo{Subject: "CN=api", Source: "file"}}
	}}))
	t.Cleanup(srv.Close)

	get := func(path string) (int, Readiness) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rd Readiness
		if path == "/readyz" {
			if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
				t.Fatalf("GET %s: body is not JSON: %v", path, err)
			}
		}
		return resp.StatusCode, rd
	}

	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
	if code, rd := get("/readyz"); code != 503 || rd.Reason != "no certificate yet" {
		t.Errorf("GET /readyz before ready = %d %+v, want 503 with the reason", code, rd)
	}
	ready.Store(true)
	if code, rd := get("/readyz"); code != 200 || !rd.Ready || rd.Certificate.Subject != "CN=api" {
		t.Errorf("GET /readyz when ready = %d %+v, want 200 with the certificate", code, rd)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}
