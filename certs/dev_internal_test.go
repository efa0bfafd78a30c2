package certs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteDevRenewsExpiringCA(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name        string
		notAfter    time.Time
		wantReplace bool
	}{
		{"10 days left", now.Add(10 * 24 * time.Hour), true},
		{"expired", now.Add(-time.Hour), true},
		{"60 days left", now.Add(60 * 24 * time.Hour), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certPEM, keyPEM, err := newDevCA(now.Add(-365*24*time.Hour), tt.notAfter)
			if err != nil {
				t.Fatal(err)
			}
			caFile := filepath.Join(dir, "ca.pem")
			if err := errors.Join(writeFileAtomic(caFile, certPEM, 0o644), writeFileAtomic(filepath.Join(dir, "ca-key.pem"), keyPEM, 0o600)); err != nil {
				t.Fatal(err)
			}
			if _, err := WriteDev(dir, "localhost"); err != nil {
				t.Fatalf("WriteDev: %v", err)
			}
			got, err := os.ReadFile(caFile)
			if err != nil {
				t.Fatal(err)
			}
			if replaced := !bytes.Equal(got, certPEM); replaced != tt.wantReplace {
				t.Errorf("CA with NotAfter %s: replaced = %v, want %v", tt.notAfter.Format(time.RFC3339), replaced, tt.wantReplace)
			}
		})
	}
}
