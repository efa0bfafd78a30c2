package certs_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/scoregate/scoregate/certs"
)

func TestLeafDomainNameValidates(t *testing.T) {
	for _, tt := range []struct {
		name, label, region string
		want                *regexp.Regexp // nil: an error is wanted
		wantField           string         // the *ConfigError's Field
	}{
		{"simple", "model", "westeurope", regexp.MustCompile(`^model[a-z0-9]{6}\.westeurope\.cloudapp\.azure\.com$`), ""},
		{"lowercased", "Scoring-API", "WestEurope", regexp.MustCompile(`^scoring-api[a-z0-9]{6}\.westeurope\.cloudapp\.azure\.com$`), ""},
		{"digits", "m0del2", "eastus2", regexp.MustCompile(`^m0del2[a-z0-9]{6}\.eastus2\.cloudapp\.azure\.com$`), ""},
		{"57 characters", strings.Repeat("a", 57), "eastus", regexp.MustCompile(`^a{57}[a-z0-9]{6}\.eastus\.`), ""},
		{"58 characters", strings.Repeat("a", 58), "eastus", nil, "Label"},
		{"empty label", "", "eastus", nil, "Label"},
		{"leading hyphen", "-model", "eastus", nil, "Label"},
		{"trailing hyphen", "model-", "eastus", nil, "Label"},
		{"underscore", "my_model", "eastus", nil, "Label"},
		{"dot", "my.model", "eastus", nil, "Label"},
		{"empty region", "model", "", nil, "Region"},
		{"region with dot", "model", "west.europe", nil, "Region"},
		{"region trailing hyphen", "model", "eastus-", nil, "Region"},
		{"region too long", "model", strings.Repeat("r", 64), nil, "Region"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := certs.LeafDomainName(t.TempDir(), tt.label, tt.region, false)
			if tt.want == nil {
				var ce *certs.ConfigError
				if !errors.As(err, &ce) || ce.Field != tt.wantField {
					t.Errorf("LeafDomainName(%q, %q) = %q, %v; want a *certs.ConfigError for %s", tt.label, tt.region, got, err, tt.wantField)
				}
				return
			}
			if err != nil || !tt.want.MatchString(got) {
				t.Errorf("LeafDomainName(%q, %q) = %q, %v; want a match for %s", tt.label, tt.region, got, err, tt.want)
			}
		})
	}
}

func TestLeafDomainNamePersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage") // created on demand
	first, err := certs.LeafDomainName(dir, "model", "eastus", false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := certs.LeafDomainName(dir, "MODEL", "EastUS", false)
	if err != nil || again != first {
		t.Errorf("second call = %q, %v; want the stored %q", again, err, first)
	}
	b, err := os.ReadFile(filepath.Join(dir, "leaf-domain-name"))
	if err != nil || string(b) != first+"\n" {
		t.Errorf("stored file = %q, %v; want %q", b, err, first+"\n")
	}

	if got, err := certs.LeafDomainName(dir, "other", "eastus", false); !errors.Is(err, certs.ErrLeafDomainMismatch) {
		t.Errorf("another label over a stored name = %q, %v; want ErrLeafDomainMismatch", got, err)
	}

	renamed, err := certs.LeafDomainName(dir, "model", "eastus", true)
	if err != nil {
		t.Fatal(err)
	}
	if renamed == first {
		// 36^6 suffixes: a repeat is a bug, not luck.
		t.Errorf("overwrite kept the name %q, want a new suffix", renamed)
	}
	if !strings.HasPrefix(renamed, "model") || !strings.HasSuffix(renamed, ".eastus.cloudapp.azure.com") {
		t.Errorf("overwrite = %q, want model??????.eastus.cloudapp.azure.com", renamed)
	}
	after, err := certs.LeafDomainName(dir, "model", "eastus", false)
	if err != nil || after != renamed {
		t.Errorf("after overwrite = %q, %v; want %q", after, err, renamed)
	}
	relabeled, err := certs.LeafDomainName(dir, "other", "westus", true)
	if err != nil || !strings.HasPrefix(relabeled, "other") || !strings.HasSuffix(relabeled, ".westus.cloudapp.azure.com") {
		t.Errorf("overwrite with a new label = %q, %v; want other??????.westus.cloudapp.azure.com", relabeled, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("storage holds %v (%v); want only the name file, no temporary files", entries, err)
	}
}

func TestLeafDomainNameConcurrentInstancesAgree(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		const instances = 8
		names := make([]string, instances)
		errs := make([]error, instances)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range instances {
			wg.Go(func() {
				<-start
				names[i], errs[i] = certs.LeafDomainName(dir, "model", "eastus", false)
			})
		}
		close(start)
		wg.Wait()
		for i := range instances {
			if errs[i] != nil || names[i] != names[0] {
				t.Fatalf("round %d: instance %d got %q, %v; instance 0 got %q", round, i, names[i], errs[i], names[0])
			}
		}
	}
}

func TestLeafDomainNameRejectsDamagedFile(t *testing.T) {
	for _, tt := range []struct{ name, content string }{
		{"empty", ""},
		{"no newline", "modelabc123.eastus.cloudapp.azure.com"},
		{"two lines", "a\nb\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "leaf-domain-name"), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := certs.LeafDomainName(dir, "model", "eastus", false); !errors.Is(err, certs.ErrLeafDomainIncomplete) {
				t.Errorf("LeafDomainName over %q = %q, %v; want ErrLeafDomainIncomplete", tt.content, got, err)
			}
			if got, err := certs.LeafDomainName(dir, "model", "eastus", true); err != nil {
				t.Errorf("overwrite over %q = %q, %v; want a new name", tt.content, got, err)
			}
		})
	}
}
