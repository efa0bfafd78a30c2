package certs

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/zap"
)

func TestZapLoggerWritesZerolog(t *testing.T) {
	var buf bytes.Buffer
	zl := newZapLogger(zerolog.New(&buf)).Named("obtain").With(zap.String("identifier", "api.example.com"))
	zl.Info("acquiring lock")
	zl.Error("will retry", zap.Error(errors.New("connection refused")), zap.Duration("retrying_in", time.Minute))

	var lines []map[string]any
	for line := range bytes.Lines(buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []map[string]any{
		{"level": "debug", "certmagic": "obtain", "identifier": "api.example.com", "message": "acquiring lock"},
		{"level": "error", "certmagic": "obtain", "identifier": "api.example.com", "message": "will retry",
			"error": "connection refused", "retrying_in": "1m0s"},
	} {
		for k, v := range want {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
	}

	buf.Reset()
	quiet := newZapLogger(zerolog.New(&buf).Level(zerolog.InfoLevel))
	quiet.Info("chatty")
	if buf.Len() != 0 {
		t.Errorf("certmagic's info line at zerolog level info: %s; want it dropped (it maps to debug)", buf.String())
	}
}
