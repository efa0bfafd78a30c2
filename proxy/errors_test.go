package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// timeoutErr is a net.Error that timed out, as a dial or read deadline
// gives.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorStatus(t *testing.T) {
	p := newTestProxy(t, "http://127.0.0.1:5001", Config{MaxBodyBytes: 10, UpstreamTimeout: 2 * time.Second, DialTimeout: time.Second, BodyReadTimeout: 3 * time.Second}, zerolog.Nop())
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name        string
		err         error
		ctx         context.Context
		wantStatus  int
		wantMsg     string
		wantReason  string
		wantSetting string
	}{
		{"body over the limit", &http.MaxBytesError{Limit: 10}, nil, 413, "request body larger than 10 bytes", "", "MaxBodyBytes"},
		{"body over the limit, wrapped", fmt.Errorf("write: %w", &http.MaxBytesError{Limit: 10}), nil, 413, "request body larger than 10 bytes", "", "MaxBodyBytes"},
		{"body stalled", &clientError{errBodyStalled}, nil, 408, "request body stalled: nothing received for 3s", "", "BodyReadTimeout"},
		{"body malformed", &clientError{errors.New("invalid chunk")}, nil, 400, msgBadBody, "", ""},
		{"client canceled", context.Canceled, nil, 499, msgClientClosed, "", ""},
		{"client canceled, wrapped", fmt.Errorf("net/http: %w", context.Canceled), nil, 499, msgClientClosed, "", ""},
		{"any error once the client left", io.ErrUnexpectedEOF, canceled, 499, msgClientClosed, "", ""},
		{"response header timeout", timeoutErr{}, nil, 504, "backend sent no response headers within 2s", metrics.UpstreamTimeout, "UpstreamTimeout"},
		{"deadline exceeded", context.DeadlineExceeded, nil, 504, "backend sent no response headers within 2s", metrics.UpstreamTimeout, "UpstreamTimeout"},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, nil, 504, "backend connection not established within 1s", metrics.UpstreamDialTimeout, "DialTimeout"},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, nil, 502, msgBadGateway, metrics.UpstreamRefused, ""},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, nil, 502, msgBadGateway, metrics.UpstreamReset, ""},
		{"unexpected EOF", io.ErrUnexpectedEOF, nil, 502, msgBadGateway, metrics.UpstreamReset, ""},
		{"anything else", errors.New("boom"), nil, 502, msgBadGateway, metrics.UpstreamOther, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/score", nil)
			if tt.ctx != nil {
				r = r.WithContext(tt.ctx)
			}
			status, msg, reason, setting := p.errorStatus(r, tt.err)
			if status != tt.wantStatus || msg != tt.wantMsg || reason != tt.wantReason || setting != tt.wantSetting {
				t.Errorf("errorStatus(%v) = %d, %q, %q, %q; want %d, %q, %q, %q", tt.err, status, msg, reason, setting,
					tt.wantStatus, tt.wantMsg, tt.wantReason, tt.wantSetting)
			}
			if name := namedSetting(msg); name != "" {
				t.Errorf("errorStatus(%v) message %q names %s; API clients must not see settings", tt.err, msg, name)
			}
		})
	}
}

// TestErrorBodiesNameNoSettings: no message an API client can get names a
// command-line flag or a Config field, whatever the Config.
func TestErrorBodiesNameNoSettings(t *testing.T) {
	p := newTestProxy(t, "http://127.0.0.1:5001", Config{}, zerolog.Nop())
	for _, msg := range []string{
		p.msgTooLarge, p.msgUpstreamTimeout, p.msgDialTimeout, p.msgBodyTimeout,
		msgBadGateway, msgClientClosed, msgBadBody, msgBadMethod, msgControlInTarget, msgMethodConnect, msgUnauthorized,
	} {
		if name := namedSetting(msg); name != "" {
			t.Errorf("error message %q names %s; API clients must not see settings", msg, name)
		}
	}
}

// namedSetting returns the flag or Config field that msg names, or "".
func namedSetting(msg string) string {
	if i := strings.Index(msg, "--"); i >= 0 {
		return "a flag (" + msg[i:] + ")"
	}
	words := strings.FieldsFunc(msg, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	cfg := reflect.TypeFor[Config]()
	for i := range cfg.NumField() {
		if f := cfg.Field(i).Name; slices.Contains(words, f) {
			return "Config." + f
		}
	}
	return ""
}

func TestWriteError(t *testing.T) {
	for _, tt := range []struct{ name, msg, id string }{
		{"plain", "backend unavailable", "0f8fad5b-d9cb-469f-a165-70867728950e"},
		{"quotes and backslash", `say "hi" \ bye`, `id"\`},
		{"control characters", "a\nb\tc\rd\x00e\x1f", "\x7f"},
		{"HTML", "<script>&</script>", ""},
		{"line separators", "a\u2028b\u2029c", "é"},
		{"invalid UTF-8", "a\xffb\xc3", "\xed\xa0\x80"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, 502, tt.msg, tt.id)
			if w.Code != 502 {
				t.Errorf("status = %d, want 502", w.Code)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got, want := w.Header().Get("Content-Length"), fmt.Sprint(w.Body.Len()); got != want {
				t.Errorf("Content-Length = %s, want %s", got, want)
			}
			var got errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if want := (errorBody{strings.ToValidUTF8(tt.msg, "\ufffd"), strings.ToValidUTF8(tt.id, "\ufffd")}); utf8.ValidString(tt.msg+tt.id) && got != want {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
			if strings.ContainsAny(w.Body.String(), "<>&") {
				t.Errorf("body %q has unescaped HTML characters", w.Body)
			}
		})
	}
}

// FuzzWriteError: whatever the message and id, the body is valid JSON and
// decodes to them (as encoding/json would encode them).
func FuzzWriteError(f *testing.F) {
	f.Add("backend unavailable", "0f8fad5b-d9cb-469f-a165-70867728950e")
	f.Add("a\"\\\n\x00<>&\u2028", "\xff\xfe")
	f.Fuzz(func(t *testing.T, msg, id string) {
		w := httptest.NewRecorder()
		WriteError(w, 400, msg, id)
		var got errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("WriteError(%q, %q) wrote invalid JSON %q: %v", msg, id, w.Body, err)
		}
		ref, _ := json.Marshal(errorBody{msg, id})
		var want errorBody
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("WriteError(%q, %q) decodes to %+v, want %+v", msg, id, got, want)
		}
	})
}
