package proxy

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

const (
	primaryKey   = "primary-key-0123456789abcdef"
	secondaryKey = "secondary-key-0123456789abcdef"
)

func TestAuth(t *testing.T) {
	var sawAuth atomic.Value
	sawAuth.Store("")
	backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		sawAuth.Store(r.Header.Get("Authorization"))
		w.Write([]byte("Healthy"))
	})
	keys := NewKeySet([]string{primaryKey, secondaryKey})
	p := newTestProxy(t, backend.URL, Config{Auth: keys, AuthExemptHealth: true}, zerolog.Nop())
	front := startFront(t, p)

	for _, tt := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"primary key", "POST", "/score", "Bearer " + primaryKey, 200},
		{"secondary key", "POST", "/score", "Bearer " + secondaryKey, 200},
		{"scheme in any case", "POST", "/score", "bearer " + primaryKey, 200},
		{"no header", "POST", "/score", "", 401},
		{"wrong key", "POST", "/score", "Bearer " + primaryKey + "x", 401},
		{"key prefix", "POST", "/score", "Bearer " + primaryKey[:10], 401},
		{"basic scheme", "POST", "/score", "Basic " + primaryKey, 401},
		{"scheme only", "POST", "/score", "Bearer ", 401},
		{"health probe exempt", "GET", "/", "", 200},
		{"HEAD health probe exempt", "HEAD", "/", "", 200},
		{"POST / not exempt", "POST", "/", "", 401},
		{"swagger not exempt", "GET", "/swagger.json", "", 401},
	} {
		for _, pr := range protos {
			t.Run(tt.name+"/"+pr.name, func(t *testing.T) {
				req := newRequest(t, t.Context(), front, tt.method, tt.path, testCName, strings.NewReader("{}"))
				if tt.auth != "" {
					req.Header.Set("Authorization", tt.auth)
				}
				resp, body := do(t, clientFor(t, front, pr.major), req, pr.major)
				if resp.StatusCode != tt.want {
					t.Fatalf("%s %s with Authorization %q: status = %d, want %d", tt.method, tt.path, tt.auth, resp.StatusCode, tt.want)
				}
				if tt.want == 401 {
					if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
						t.Errorf("WWW-Authenticate = %q, want Bearer", got)
					}
					checkErrorBody(t, resp.Header, body)
				}
				if tt.want == 200 && tt.auth != "" {
					if got := sawAuth.Load().(string); got != "" {
						t.Errorf("backend saw Authorization %q, want it removed", got)
					}
				}
			})
		}
	}
}

func TestKeySetStore(t *testing.T) {
	k := NewKeySet([]string{primaryKey})
	if !k.Authorized("Bearer " + primaryKey) {
		t.Fatal("primary key refused")
	}
	k.Store([]string{secondaryKey})
	if k.Authorized("Bearer "+primaryKey) || !k.Authorized("Bearer "+secondaryKey) {
		t.Errorf("after Store(secondary): primary %v, secondary %v; want false, true",
			k.Authorized("Bearer "+primaryKey), k.Authorized("Bearer "+secondaryKey))
	}
	k.Store(nil)
	if k.Authorized("Bearer " + secondaryKey) {
		t.Error("empty key set authorized a request")
	}
}

func BenchmarkKeySetAuthorized(b *testing.B) {
	k := NewKeySet([]string{primaryKey, secondaryKey})
	h := "Bearer " + secondaryKey
	b.ReportAllocs()
	for b.Loop() {
		if !k.Authorized(h) {
			b.Fatal("refused")
		}
	}
}
