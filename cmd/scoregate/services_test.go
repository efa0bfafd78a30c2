package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// TestServeServiceRoutes: two services behind one name, each with its own
// replicas; /readyz lists them; an unknown service is 404.
func TestServeServiceRoutes(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	fraud1, fraud2, churn := newRecordingBackend(t), newRecordingBackend(t), newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
		"--service", "fraud="+fraud1.URL, "--service", "fraud="+fraud2.URL, "--service", "churn="+churn.URL, "--health-interval", "50ms")
	c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", true)
	post := func(path string) (int, string) {
		resp, err := c.Post("https://api.example.com"+path, "application/json", strings.NewReader(`{"data":[[1]]}`))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/api/v1/service/churn/score?v=2"); code != 200 || !strings.Contains(body, `"path":"/score","query":"v=2"`) {
		t.Errorf("churn: %d %s, want 200 from the churn backend as /score?v=2", code, body)
	}
	if churn.lastHeader() == nil {
		t.Error("the churn backend got no POST")
	}
	for range 4 {
		if code, _ := post("/api/v1/service/fraud/score"); code != 200 {
			t.Fatalf("fraud: %d, want 200", code)
		}
	}
	if fraud1.lastHeader() == nil || fraud2.lastHeader() == nil {
		t.Error("four sequential requests did not reach both fraud replicas (ties go round)")
	}
	if code, body := post("/api/v1/service/nope/score"); code != 404 || !strings.Contains(body, `"error":"no such service`) {
		t.Errorf("unknown service: %d %s, want 404 with the JSON error", code, body)
	}
	if code, _ := post("/score"); code != 404 {
		t.Errorf("a path outside the routes without --backend: %d, want 404", code)
	}
	waitFor(t, 5*time.Second, "/readyz 200 with both services checked", func() bool { code, _ := readyzJSON(t, ts); return code == 200 })
	_, rd := readyzJSON(t, ts)
	got := map[string]int{}
	for _, s := range rd.Services {
		got[s.Name] = len(s.Replicas)
	}
	if got["fraud"] != 2 || got["churn"] != 1 || len(got) != 2 {
		b, _ := json.Marshal(rd.Services)
		t.Errorf("/readyz services = %s, want fraud with 2 replicas and churn with 1", b)
	}
}

func TestBackendFlags(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    int // backends
		wantSvc map[string]int
		wantErr string
	}{
		{name: "default", want: 1},
		{name: "repeated", args: []string{"--backend", "http://10.0.0.1:5001", "--backend", "http://10.0.0.2:5001"}, want: 2},
		{name: "from the environment, comma-separated", env: map[string]string{"SCOREGATE_BACKEND": "http://10.0.0.1:5001,http://10.0.0.2:5001"}, want: 2},
		{name: "services only", args: []string{"--service", "a=http://10.0.0.1:5001", "--service", "a=http://10.0.0.2:5001"}, wantSvc: map[string]int{"a": 2}},
		{name: "services and a given backend", args: []string{"--service", "a=http://10.0.0.1:5001", "--backend", "http://10.0.0.3:5001"}, want: 1, wantSvc: map[string]int{"a": 1}},
		{name: "service without a URL", args: []string{"--service", "fraud"}, wantErr: `invalid value "fraud" for flag -service: "fraud": want NAME=URL`},
		{name: "service URL with a path", args: []string{"--service", "a=http://10.0.0.1:5001/score"}, wantErr: `--service "http://10.0.0.1:5001/score": give scheme, host and port only`},
		{name: "zero concurrency", args: []string{"--max-concurrent-requests-per-replica", "0"}, wantErr: "--max-concurrent-requests-per-replica and --max-queue-length must be at least 1"},
		{name: "zero queue wait", args: []string{"--max-queue-wait", "0s"}, wantErr: "--max-queue-wait 0s: want a positive duration"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--ssl-cert-pem-file", "c.pem", "--ssl-key-pem-file", "k.pem", "--ssl-cname", "api.example.com"}, tt.args...)
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := parseServe(args, getenv, io.Discard)
			var backends, svcs int
			if err == nil {
				b, s, berr := c.backendURLs()
				err, backends, svcs = berr, len(b), len(s)
				for name, n := range tt.wantSvc {
					if len(s[name]) != n {
						t.Errorf("service %s has %d URLs, want %d", name, len(s[name]), n)
					}
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if backends != tt.want || svcs != len(tt.wantSvc) {
				t.Errorf("backends, services = %d, %d, want %d, %d", backends, svcs, tt.want, len(tt.wantSvc))
			}
		})
	}
}

// TestServeQueueRefusal: with one replica slot taken by a model that does
// not answer, the next request waits --max-queue-wait and gets 503 with
// Retry-After; the first then completes.
func TestServeQueueRefusal(t *testing.T) {
	f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
	release := make(chan struct{})
	arrived := make(chan struct{}, 8)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			arrived <- struct{}{}
			<-release
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(be.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before be.Close, should the test stop early
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
		"--backend", be.URL, "--max-concurrent-requests-per-replica", "1", "--max-queue-wait", "100ms")
	c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", true)
	first := make(chan int, 1)
	go func() {
		resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader(`{}`))
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached the model")
	}
	resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "all replicas busy") {
		t.Errorf("second request: %d, Retry-After %q, %s; want 503, Retry-After 1 and the JSON error", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	unblock()
	if code := <-first; code != 200 {
		t.Errorf("first request: %d, want 200", code)
	}
}
