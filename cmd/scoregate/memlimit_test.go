package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainerMemoryLimit reads memory limits as cgroup v2 and v1 write
// them, from real files.
func TestContainerMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		v2, v1  string // file contents; "" = no such file
		want    int64
		wantOK  bool
		wantErr string
	}{
		{name: "cgroup v2, the shipped 256Mi", v2: "268435456\n", want: 256 << 20, wantOK: true},
		{name: "cgroup v2, no limit", v2: "max\n"},
		{name: "cgroup v1 only", v1: "1073741824\n", want: 1 << 30, wantOK: true},
		{name: "cgroup v1, unlimited", v1: "9223372036854771712\n"},
		{name: "v2 wins over v1", v2: "536870912", v1: "1073741824", want: 512 << 20, wantOK: true},
		{name: "neither: not in a container"},
		{name: "garbage", v2: "lots\n", wantErr: `memory.max: not a memory limit: "lots"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := []string{filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.limit_in_bytes")}
			for i, content := range []string{tt.v2, tt.v1} {
				if content != "" {
					if err := os.WriteFile(files[i], []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			got, ok, err := containerMemoryLimit(os.ReadFile, files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || ok != tt.wantOK {
				t.Fatalf("= %d, %v, %v; want %d, %v", got, ok, err, tt.want, tt.wantOK)
			}
		})
	}
	if got := softMemoryLimit(256 << 20); got != 228170137 {
		t.Errorf("soft limit of 256 MiB = %d, want 85 %% of it", got)
	}
}
