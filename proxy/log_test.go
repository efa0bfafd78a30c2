package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAccessLogDurationsInMilliseconds checks the unit the access log's
// duration fields name: a backend that takes at least backendDelay makes
// both at least that many milliseconds, and neither exceeds what the
// client measured. A field in seconds would be under the first bound, one
// in microseconds or nanoseconds over the second.
func TestAccessLogDurationsInMilliseconds(t *testing.T) {
	forTransports(t, func(t *testing.T, path seamPath) {
		const backendDelay = 30 * time.Millisecond
		backend := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
			// A known latency to measure, not a synchronisation.
			<-time.After(backendDelay)
			w.Write([]byte("scored"))
		})
		logs := newLogSink()
		front := startFront(t, newProxyVia(t, path, backend.URL, Config{}, logs.logger()))
		for _, pr := range protos {
			t.Run(pr.name, func(t *testing.T) {
				start := time.Now()
				resp, _ := do(t, clientFor(t, front, pr.major), newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader("{}")), pr.major)
				clientMS := float64(time.Since(start)) / float64(time.Millisecond)
				line := logs.accessLine(t, resp.Header.Get("X-Request-Id"))
				for _, old := range []string{"duration", "upstream_duration"} {
					if v, ok := line[old]; ok {
						t.Errorf("access log has %s = %v, want it renamed to %s_ms", old, v, old)
					}
				}
				for _, k := range []string{keyDuration, keyUpstreamDuration} {
					ms, ok := line[k].(float64)
					if !ok {
						t.Errorf("access log %s = %v (%T), want a number", k, line[k], line[k])
						continue
					}
					if low := float64(backendDelay / time.Millisecond); ms < low || ms > clientMS {
						t.Errorf("access log %s = %v, want milliseconds between the backend's %v and the client's %.3f", k, ms, low, clientMS)
					}
				}
				if total, up := line[keyDuration].(float64), line[keyUpstreamDuration].(float64); up > total {
					t.Errorf("access log %s = %v > %s = %v", keyUpstreamDuration, up, keyDuration, total)
				}
			})
		}
	})
}
