package bench

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBackend(t *testing.T) {
	srv := httptest.NewServer(NewBackend(BackendConfig{ResponseBytes: 300}))
	t.Cleanup(srv.Close)

	for _, tt := range []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string // substring
	}{
		{"health", "GET", "/", "", 200, "Healthy"},
		{"swagger", "GET", "/swagger.json", "", 200, `"swagger":"2.0"`},
		{"score echoes length", "POST", "/score", `{"data":[[1,2,3]]}`, 200, `"request_bytes":18`},
		{"score needs POST", "GET", "/score", "", 405, "use POST"},
		{"health needs GET", "POST", "/", "x", 405, "use GET"},
		{"unknown path", "GET", "/nope", "", 404, "not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("%s %s: status = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.wantStatus)
			}
			if !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("%s %s: body = %q, want it to contain %q", tt.method, tt.path, b, tt.wantBody)
			}
		})
	}
}

func TestScoreBodySizeAndJSON(t *testing.T) {
	for _, size := range []int{0, 1, 200, 4096} {
		b := scoreBody(1040, size)
		if size > 150 && len(b) != size {
			t.Errorf("scoreBody(1040, %d): len = %d, want %d", size, len(b), size)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("scoreBody(1040, %d) = %q: not JSON: %v", size, b, err)
		}
	}
}
