package main

import (
	"io"
	"strings"
	"testing"

	"github.com/scoregate/scoregate/proxy"
)

// TestBufferFlags: --buffer-response-bytes and --buffer-total-bytes reach
// the proxy's Config, from the command line or the environment; 0 turns
// buffering off; a total below the per-answer bound is refused in one
// line naming the flag.
func TestBufferFlags(t *testing.T) {
	for _, tt := range []struct {
		name                  string
		args                  []string
		env                   map[string]string
		wantAnswer, wantTotal int64
		wantErr               string
	}{
		{name: "defaults", wantAnswer: proxy.DefaultBufferResponseBytes, wantTotal: proxy.DefaultBufferTotalBytes},
		{name: "set", args: []string{"--buffer-response-bytes", "256KiB", "--buffer-total-bytes", "64MiB"}, wantAnswer: 256 << 10, wantTotal: 64 << 20},
		{name: "from the environment", env: map[string]string{"SCOREGATE_BUFFER_RESPONSE_BYTES": "64KiB", "SCOREGATE_BUFFER_TOTAL_BYTES": "1MiB"}, wantAnswer: 64 << 10, wantTotal: 1 << 20},
		{name: "off", args: []string{"--buffer-response-bytes", "0"}, wantAnswer: -1},
		{name: "total below one answer", args: []string{"--buffer-response-bytes", "2MiB", "--buffer-total-bytes", "1MiB"},
			wantErr: "--buffer-total-bytes 1MiB: want at least --buffer-response-bytes (2MiB)"},
		{name: "not a size", args: []string{"--buffer-total-bytes", "lots"}, wantErr: "buffer-total-bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--ssl-cert-pem-file", "c.pem", "--ssl-key-pem-file", "k.pem", "--ssl-cname", "api.example.com"}, tt.args...)
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := parseServe(args, getenv, io.Discard)
			var sc serverConfig
			if err == nil {
				sc, err = c.resolve(io.Discard)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q is more than one line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sc.Proxy.BufferResponseBytes; got != tt.wantAnswer {
				t.Errorf("BufferResponseBytes = %d, want %d", got, tt.wantAnswer)
			}
			if got := sc.Proxy.BufferTotalBytes; tt.wantAnswer > 0 && got != tt.wantTotal {
				t.Errorf("BufferTotalBytes = %d, want %d", got, tt.wantTotal)
			}
		})
	}
}
