package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("newRequestID() = %q, want a UUID v4", id)
		}
		if seen[id] {
			t.Fatalf("newRequestID() repeated %q", id)
		}
		seen[id] = true
	}
}

// TestReadRequestIDs: the ids as the Azure ML inference server's
// _init_headers derives them, case by case.
func TestReadRequestIDs(t *testing.T) {
	long := strings.Repeat("x", 101)
	for _, tt := range []struct {
		name                     string
		reqID, legacy, clientID  string // sent: x-request-id, x-ms-request-id, x-ms-client-request-id
		wantStatus               int
		wantMsg                  string
		wantID, wantMSID, wantCl string // "" for wantID: generated; "id" for wantMSID: the x-request-id
	}{
		{"none", "", "", "", 0, "", "", "id", ""},
		{"x-request-id kept", "r1", "", "", 0, "", "r1", "id", ""},
		{"client id becomes x-ms-request-id", "", "", "c1", 0, "", "", "c1", "c1"},
		{"x-request-id and client id", "r1", "", "c1", 0, "", "r1", "c1", "c1"},
		{"legacy x-ms-request-id kept and used as client id", "", "L1", "", 0, "", "", "L1", "L1"},
		{"legacy x-ms-request-id kept beside client id", "", "L1", "c1", 0, "", "", "L1", "c1"},
		{"all three", "r1", "L1", "c1", 0, "", "r1", "L1", "c1"},
		{"100 characters allowed", long[:100], long[:100], long[:100], 0, "", long[:100], long[:100], long[:100]},
		{"x-request-id too long", long, "", "c1", 431, msgRequestIDTooLong, "", "c1", "c1"},
		{"client id too long", "r1", "", long, 431, msgClientRequestIDTooLong, "r1", "id", ""},
		{"legacy id too long", "r1", long, "", 431, msgClientRequestIDTooLong, "r1", "id", ""},
		{"legacy id too long beside a client id", "r1", long, "c1", 431, msgClientRequestIDTooLong, "r1", "id", ""},
		{"all too long", long, long, long, 431, msgRequestIDTooLong, "", "id", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range map[string]string{"x-request-id": tt.reqID, "x-ms-request-id": tt.legacy, "x-ms-client-request-id": tt.clientID} {
				if v != "" {
					h.Set(k, v)
				}
			}
			ids, status, msg := readRequestIDs(h)
			if status != tt.wantStatus || msg != tt.wantMsg {
				t.Errorf("status, msg = %d, %q; want %d, %q", status, msg, tt.wantStatus, tt.wantMsg)
			}
			if tt.wantID == "" {
				if !uuidV4.MatchString(ids.id) {
					t.Errorf("id = %q, want a generated UUID", ids.id)
				}
			} else if ids.id != tt.wantID {
				t.Errorf("id = %q, want %q", ids.id, tt.wantID)
			}
			wantMSID := tt.wantMSID
			if wantMSID == "id" {
				wantMSID = ids.id
			}
			out := http.Header{"X-Ms-Client-Request-Id": {"stale"}, "X-Ms-Request-Id": {"stale"}}
			ids.set(out)
			got := [3]string{out.Get("X-Request-Id"), out.Get("X-Ms-Request-Id"), out.Get("X-Ms-Client-Request-Id")}
			if want := [3]string{ids.id, wantMSID, tt.wantCl}; got != want {
				t.Errorf("echoed x-request-id, x-ms-request-id, x-ms-client-request-id = %q, want %q", got, want)
			}
			if _, ok := out["X-Ms-Client-Request-Id"]; ok != (tt.wantCl != "") {
				t.Errorf("x-ms-client-request-id present = %v, want %v", ok, tt.wantCl != "")
			}
		})
	}
}

func BenchmarkRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newRequestID()
	}
}
