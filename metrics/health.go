package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Readiness is the /readyz answer.
type Readiness struct {
	Ready       bool          `json:"ready"`
	Reason      string        `json:"reason,omitempty"` // why not ready; empty when ready
	Certificate *CertInfo     `json:"certificate,omitempty"`
	LastReload  *ReloadInfo   `json:"last_reload,omitempty"`
	Services    []ServiceInfo `json:"services,omitempty"`
}

// ReloadInfo is the outcome of the last certificate load.
type ReloadInfo struct {
	Result string    `json:"result"` // "ok" or "error"
	At     time.Time `json:"at"`
	Error  string    `json:"error,omitempty"`
}

// BackendInfo is one replica and the outcome of its last health check
// (GET /, or the service's health URL).
type BackendInfo struct {
	Service string `json:"service,omitempty"` // the service's name; "default" for the unnamed one
	URL     string `json:"url"`               // the configured target
	Address string `json:"address,omitempty"` // the address dialed: the target's, or one it resolved to
	Ready   bool   `json:"ready"`
	// Busy is set, with Ready, when the check timed out while the replica
	// was working (requests outstanding, or one answered since the check
	// before): a one-worker model server cannot answer its health check
	// while it scores. Error then says what timed out.
	Busy        bool      `json:"busy,omitempty"`
	Status      int       `json:"status,omitempty"` // the backend's HTTP status, if it answered
	Error       string    `json:"error,omitempty"`
	CheckedAt   time.Time `json:"checked_at,omitzero"`
	Outstanding int       `json:"outstanding"` // requests sent to it and not yet done
	Ejected     bool      `json:"ejected,omitempty"`
}

// ServiceInfo is one scoring service's replicas.
type ServiceInfo struct {
	Name     string        `json:"name"`
	Ready    bool          `json:"ready"` // a replica answered its last check
	Replicas []BackendInfo `json:"replicas"`
}

// CertInfo describes the certificate being served.
type CertInfo struct {
	Subject  string    `json:"subject"`
	DNSNames []string  `json:"dns_names"`
	NotAfter time.Time `json:"not_after"`
	Source   string    `json:"source"` // "file" or "acme"
}

// HealthConfig configures the operational endpoints.
type HealthConfig struct {
	// Ready reports readiness for /readyz. It is called once per request
	// with the request's context. If nil, /readyz always answers ready.
	Ready func(context.Context) Readiness
	// Gatherer is served on /metrics. If nil, there is no /metrics.
	Gatherer prometheus.Gatherer
	// Pprof serves Go's profiler under /debug/pprof/ (--debug-pprof).
	Pprof bool
}

// NewMux returns a mux that serves /healthz (200 while the process runs),
// /readyz (200 with a JSON Readiness when ready, 503 otherwise) and
// /metrics.
func NewMux(cfg HealthConfig) *http.ServeMux {
	mux := http.NewServeMux()
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", Handler(cfg.Gatherer))
	}
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := Readiness{Ready: true}
		if cfg.Ready != nil {
			rd = cfg.Ready(r.Context())
		}
		code := http.StatusOK
		if !rd.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rd)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
