package proxy

import (
	"net/http"
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

func TestReadRequestIDs(t *testing.T) {
	long := string(make([]byte, 101))
	for _, tt := range []struct {
		name             string
		reqID, clientID  string
		wantStatus       int
		wantMsg          string
		wantID, wantMSID string // "" means generated
		wantClientEchoed string
	}{
		{"none", "", "", 0, "", "", "", ""},
		{"request id", "r1", "", 0, "", "r1", "r1", ""},
		{"client id", "", "c1", 0, "", "", "c1", "c1"},
		{"both", "r1", "c1", 0, "", "r1", "c1", "c1"},
		{"request id too long", long, "c1", 431, msgRequestIDTooLong, "", "c1", "c1"},
		{"client id too long", "r1", long, 431, msgClientRequestIDTooLong, "r1", "r1", ""},
		{"both too long", long, long, 431, msgRequestIDTooLong, "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.reqID != "" {
				h.Set("x-request-id", tt.reqID)
			}
			if tt.clientID != "" {
				h.Set("x-ms-client-request-id", tt.clientID)
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
			if wantMSID == "" {
				wantMSID = ids.id
			}
			if ids.msID != wantMSID {
				t.Errorf("msID = %q, want %q", ids.msID, wantMSID)
			}
			out := http.Header{"X-Ms-Client-Request-Id": {"stale"}}
			ids.set(out)
			if got := out.Get("X-Ms-Client-Request-Id"); got != tt.wantClientEchoed {
				t.Errorf("echoed x-ms-client-request-id = %q, want %q", got, tt.wantClientEchoed)
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
