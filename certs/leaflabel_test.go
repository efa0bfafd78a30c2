package certs_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/scoregate/scoregate/certs"
)

var (
	keep         = certs.LeafDomainOptions{}
	replaceOther = certs.LeafDomainOptions{Overwrite: certs.LeafReplaceOtherLabel}
	drawNew      = certs.LeafDomainOptions{Overwrite: certs.LeafDrawNew}
)

// leafName calls LeafDomainName and fails the test on an error.
func leafName(t *testing.T, dir, label, region string, opts certs.LeafDomainOptions) certs.LeafDomain {
	t.Helper()
	d, err := certs.LeafDomainName(dir, label, region, opts)
	if err != nil {
		t.Fatalf("LeafDomainName(%q, %q, %+v): %v", label, region, opts, err)
	}
	return d
}

// storedName returns the content of dir's leaf-domain-name.
func storedName(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "leaf-domain-name"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// storageFiles lists dir's file names.
func storageFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestLeafDomainNameValidates(t *testing.T) {
	allowUnknown := certs.LeafDomainOptions{AllowUnknownRegion: true}
	for _, tt := range []struct {
		name, label, region string
		opts                certs.LeafDomainOptions
		want                *regexp.Regexp // nil: an error is wanted
		wantField           string         // the *ConfigError's Field
		wantErr             error          // if not nil, the error must wrap it
	}{
		{"simple", "model", "westeurope", keep, regexp.MustCompile(`^model[a-z0-9]{6}\.westeurope\.cloudapp\.azure\.com$`), "", nil},
		{"lowercased", "Scoring-API", "WestEurope", keep, regexp.MustCompile(`^scoring-api[a-z0-9]{6}\.westeurope\.cloudapp\.azure\.com$`), "", nil},
		{"digits", "m0del2", "eastus2", keep, regexp.MustCompile(`^m0del2[a-z0-9]{6}\.eastus2\.cloudapp\.azure\.com$`), "", nil},
		{"57 characters", strings.Repeat("a", 57), "eastus", keep, regexp.MustCompile(`^a{57}[a-z0-9]{6}\.eastus\.`), "", nil},
		{"58 characters", strings.Repeat("a", 58), "eastus", keep, nil, "Label", nil},
		{"empty label", "", "eastus", keep, nil, "Label", nil},
		{"leading hyphen", "-model", "eastus", keep, nil, "Label", nil},
		{"trailing hyphen", "model-", "eastus", keep, nil, "Label", nil},
		{"underscore", "my_model", "eastus", keep, nil, "Label", nil},
		{"dot", "my.model", "eastus", keep, nil, "Label", nil},
		{"empty region", "model", "", keep, nil, "Region", nil},
		{"empty region, unknown allowed", "model", "", allowUnknown, nil, "Region", nil},
		{"region with dot", "model", "west.europe", keep, nil, "Region", certs.ErrUnknownRegion},
		{"region trailing hyphen", "model", "eastus-", keep, nil, "Region", certs.ErrUnknownRegion},
		{"region too long", "model", strings.Repeat("r", 64), keep, nil, "Region", certs.ErrUnknownRegion},
		{"misspelt region", "model", "westeurop", keep, nil, "Region", certs.ErrUnknownRegion},
		{"region newer than the list", "model", "newregion1", keep, nil, "Region", certs.ErrUnknownRegion},
		{"region newer than the list, allowed", "model", "NewRegion1", allowUnknown, regexp.MustCompile(`^model[a-z0-9]{6}\.newregion1\.cloudapp\.azure\.com$`), "", nil},
		{"unknown allowed, still a DNS label", "model", "new_region", allowUnknown, nil, "Region", nil},
		{"unknown allowed, region too long", "model", strings.Repeat("r", 64), allowUnknown, nil, "Region", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := certs.LeafDomainName(t.TempDir(), tt.label, tt.region, tt.opts)
			if tt.want == nil {
				var ce *certs.ConfigError
				if !errors.As(err, &ce) || ce.Field != tt.wantField || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("LeafDomainName(%q, %q) = %+v, %v; want a *certs.ConfigError for %s wrapping %v", tt.label, tt.region, got, err, tt.wantField, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.want.MatchString(got.Name) {
				t.Errorf("LeafDomainName(%q, %q) = %+v, %v; want a match for %s", tt.label, tt.region, got, err, tt.want)
			}
		})
	}
}

func TestLeafDomainNameMisspeltRegionSuggests(t *testing.T) {
	_, err := certs.LeafDomainName(t.TempDir(), "model", "westeurop", keep)
	const want = `Region: unknown Azure region "westeurop"; did you mean "westeurope"?`
	if err == nil || err.Error() != want || !errors.Is(err, certs.ErrUnknownRegion) {
		t.Errorf("error = %v\nwant %s (wrapping ErrUnknownRegion)", err, want)
	}
}

func TestLeafDomainNameKeepsTheStoredName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage") // created on demand
	first := leafName(t, dir, "model", "eastus", keep)
	if !first.Drawn || first.Replaced != "" {
		t.Errorf("first call: Drawn %v, Replaced %q; want a drawn name, nothing replaced", first.Drawn, first.Replaced)
	}
	if first.Label != "model" || first.Region != "eastus" || len(first.Suffix) != 6 || first.DNSLabel() != "model"+first.Suffix ||
		first.Name != first.DNSLabel()+".eastus.cloudapp.azure.com" {
		t.Errorf("first call = %+v; its parts do not make its name", first)
	}
	again := leafName(t, dir, "MODEL", "EastUS", keep)
	want := first
	want.Drawn = false
	if again != want {
		t.Errorf("second call = %+v, want the stored %+v", again, want)
	}
	if got := storedName(t, dir); got != first.Name+"\n" {
		t.Errorf("stored file = %q, want %q", got, first.Name+"\n")
	}
	if files := storageFiles(t, dir); !slices.Equal(files, []string{"leaf-domain-name"}) {
		t.Errorf("storage holds %q; want only leaf-domain-name, no temporary files", files)
	}
}

func TestLeafDomainNameKeepRefusesAnotherLabelOrRegion(t *testing.T) {
	dir := t.TempDir()
	stored := leafName(t, dir, "model", "eastus", keep)
	for _, tt := range []struct {
		name, label, region string
		wantField           string
		wantInMessage       []string
	}{
		{"another label", "other", "eastus", "Label", []string{`label "model"`, `label "other"`, stored.Name}},
		{"another region", "model", "westus", "Region", []string{`region "eastus"`, `region "westus"`, stored.Name}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := certs.LeafDomainName(dir, tt.label, tt.region, keep)
			var ce *certs.ConfigError
			if !errors.Is(err, certs.ErrLeafDomainMismatch) || !errors.As(err, &ce) || ce.Field != tt.wantField {
				t.Fatalf("LeafDomainName = %+v, %v; want a *certs.ConfigError for %s wrapping ErrLeafDomainMismatch", got, err, tt.wantField)
			}
			for _, s := range tt.wantInMessage {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
			if got := storedName(t, dir); got != stored.Name+"\n" {
				t.Errorf("stored file = %q after a refusal, want it unchanged, %q", got, stored.Name+"\n")
			}
		})
	}
}

func TestLeafDomainNameReplaceOtherLabelReplacesOnce(t *testing.T) {
	dir := t.TempDir()
	model := leafName(t, dir, "model", "eastus", keep)

	// Restarts with the same label keep the name.
	for i := range 3 {
		got := leafName(t, dir, "model", "eastus", replaceOther)
		if got.Name != model.Name || got.Drawn || got.Replaced != "" {
			t.Errorf("restart %d with the same label = %+v; want the stored %q, not drawn, nothing replaced", i, got, model.Name)
		}
	}

	// The label changed: one new name, kept by every restart after.
	other := leafName(t, dir, "other", "eastus", replaceOther)
	if !other.Drawn || other.Replaced != model.Name || other.Label != "other" || !strings.HasSuffix(other.Name, ".eastus.cloudapp.azure.com") {
		t.Errorf("label changed = %+v; want a drawn other??????.eastus.cloudapp.azure.com replacing %q", other, model.Name)
	}
	for i := range 3 {
		got := leafName(t, dir, "other", "eastus", replaceOther)
		if got.Name != other.Name || got.Drawn || got.Replaced != "" {
			t.Errorf("restart %d after the change = %+v; want the stored %q, not drawn, nothing replaced", i, got, other.Name)
		}
	}
	if got := leafName(t, dir, "other", "eastus", keep); got.Name != other.Name {
		t.Errorf("LeafKeep after the change = %q, want %q", got.Name, other.Name)
	}
	if got := storedName(t, dir); got != other.Name+"\n" {
		t.Errorf("stored file = %q, want %q", got, other.Name+"\n")
	}

	// The replacement is on record, named after the name it replaced.
	after := "leaf-domain-name.after-" + model.Name
	if files := storageFiles(t, dir); !slices.Equal(files, []string{"leaf-domain-name", after}) {
		t.Errorf("storage holds %q; want leaf-domain-name and %s", files, after)
	}
	if b, err := os.ReadFile(filepath.Join(dir, after)); err != nil || string(b) != other.Name+"\n" {
		t.Errorf("%s = %q, %v; want %q", after, b, err, other.Name+"\n")
	}

	// So is a region change.
	west := leafName(t, dir, "other", "westus", replaceOther)
	if !west.Drawn || west.Replaced != other.Name || !strings.HasSuffix(west.Name, ".westus.cloudapp.azure.com") {
		t.Errorf("region changed = %+v; want a drawn other??????.westus.cloudapp.azure.com replacing %q", west, other.Name)
	}
}

func TestLeafDomainNameReplaceOtherLabelConcurrentStartsAgree(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		old := leafName(t, dir, "old", "eastus", keep)
		const instances = 8
		got := make([]certs.LeafDomain, instances)
		errs := make([]error, instances)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range instances {
			wg.Go(func() {
				<-start
				got[i], errs[i] = certs.LeafDomainName(dir, "model", "eastus", replaceOther)
			})
		}
		close(start)
		wg.Wait()
		drawn := 0
		for i := range instances {
			if errs[i] != nil || got[i].Name != got[0].Name {
				t.Fatalf("round %d: instance %d got %q, %v; instance 0 got %q", round, i, got[i].Name, errs[i], got[0].Name)
			}
			if got[i].Drawn {
				drawn++
			}
		}
		if drawn != 1 || got[0].Name == old.Name || !strings.HasPrefix(got[0].Name, "model") {
			t.Fatalf("round %d: %d instances drew %q (replacing %q); want exactly one new model?????? name", round, drawn, got[0].Name, old.Name)
		}
		if stored := storedName(t, dir); stored != got[0].Name+"\n" {
			t.Fatalf("round %d: stored file = %q, want %q", round, stored, got[0].Name+"\n")
		}
	}
}

func TestLeafDomainNameKeepConcurrentInstancesAgree(t *testing.T) {
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
				var d certs.LeafDomain
				d, errs[i] = certs.LeafDomainName(dir, "model", "eastus", keep)
				names[i] = d.Name
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

func TestLeafDomainNameDrawNewAlwaysDraws(t *testing.T) {
	dir := t.TempDir()
	prev := leafName(t, dir, "model", "eastus", keep)
	seen := map[string]bool{prev.Name: true}
	for i := range 3 {
		got := leafName(t, dir, "model", "eastus", drawNew)
		// 36^6 suffixes: a repeat is a bug, not luck.
		if seen[got.Name] || !got.Drawn || got.Replaced != prev.Name || got.Label != "model" || got.Region != "eastus" {
			t.Errorf("draw %d = %+v; want a new model??????.eastus name replacing %q", i, got, prev.Name)
		}
		seen[got.Name] = true
		if after := leafName(t, dir, "model", "eastus", keep); after.Name != got.Name {
			t.Errorf("after draw %d, LeafKeep = %q, want %q", i, after.Name, got.Name)
		}
		prev = got
	}
	relabeled := leafName(t, dir, "other", "westus", drawNew)
	if !strings.HasPrefix(relabeled.Name, "other") || !strings.HasSuffix(relabeled.Name, ".westus.cloudapp.azure.com") || relabeled.Replaced != prev.Name {
		t.Errorf("draw with a new label = %+v; want other??????.westus.cloudapp.azure.com replacing %q", relabeled, prev.Name)
	}
	if files := storageFiles(t, dir); !slices.Equal(files, []string{"leaf-domain-name"}) {
		t.Errorf("storage holds %q; want only leaf-domain-name, no temporary files", files)
	}
}

func TestLeafDomainNameDamagedFile(t *testing.T) {
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
			// Only the explicit draw replaces it: the file may be a name
			// another instance is still writing.
			for _, opts := range []certs.LeafDomainOptions{keep, replaceOther} {
				got, err := certs.LeafDomainName(dir, "model", "eastus", opts)
				var ce *certs.ConfigError
				if !errors.Is(err, certs.ErrLeafDomainIncomplete) || !errors.As(err, &ce) || ce.Field != "Storage" {
					t.Errorf("%+v over %q = %+v, %v; want a *certs.ConfigError for Storage wrapping ErrLeafDomainIncomplete", opts, tt.content, got, err)
				}
			}
			if got, err := certs.LeafDomainName(dir, "model", "eastus", drawNew); err != nil || !got.Drawn {
				t.Errorf("LeafDrawNew over %q = %+v, %v; want a new name", tt.content, got, err)
			}
		})
	}
}

func TestLeafDomainNameReplacesAHandWrittenName(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "leaf-domain-name"), []byte("Not/A Name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.LeafDomainName(dir, "model", "eastus", keep); !errors.Is(err, certs.ErrLeafDomainMismatch) {
		t.Errorf("LeafKeep over a hand-written name: %v, want ErrLeafDomainMismatch", err)
	}
	got := leafName(t, dir, "model", "eastus", replaceOther)
	if !got.Drawn || got.Replaced != "Not/A Name" {
		t.Errorf("LeafReplaceOtherLabel = %+v; want a drawn name replacing %q", got, "Not/A Name")
	}
	files := storageFiles(t, dir)
	if len(files) != 2 || !strings.HasPrefix(files[1], "leaf-domain-name.after-sha256-") {
		t.Errorf("storage holds %q; want leaf-domain-name and leaf-domain-name.after-sha256-…", files)
	}
}

func TestLeafDomainNameUnusableStorage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := t.TempDir()
	if err := os.Chmod(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(readOnly, 0o700) })
	for _, tt := range []struct {
		name, dir string
		skip      bool
	}{
		{"empty", "", false},
		{"under a regular file", filepath.Join(file, "storage"), false},
		{"read-only", readOnly, os.Geteuid() == 0}, // root writes anyway
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("running as root: permissions do not stop writes")
			}
			for _, opts := range []certs.LeafDomainOptions{keep, replaceOther, drawNew} {
				got, err := certs.LeafDomainName(tt.dir, "model", "eastus", opts)
				var ce *certs.ConfigError
				if !errors.As(err, &ce) || ce.Field != "Storage" || ce.Value != tt.dir {
					t.Errorf("%+v in %q = %+v, %v; want a *certs.ConfigError for Storage %q", opts, tt.dir, got, err, tt.dir)
				}
			}
		})
	}
}
