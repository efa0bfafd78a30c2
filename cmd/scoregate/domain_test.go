package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// domainArgs are `scoregate domain`'s arguments for label and region in
// storage, then extra.
func domainArgs(storage, label, region string, extra ...string) []string {
	return append([]string{"domain", "--leaf-domain-label", label, "--region", region, "--storage", storage}, extra...)
}

// runDomainOK runs `scoregate domain` and fails the test unless it exits 0.
func runDomainOK(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("scoregate %s: exit %d, want 0\nstdout:\n%s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout, stderr
}

func TestDomainPrintsTheSameNameUntilOverwritten(t *testing.T) {
	storage := filepath.Join(t.TempDir(), "storage")
	nameLine := regexp.MustCompile(`^model[a-z0-9]{6}\.westeurope\.cloudapp\.azure\.com$`)

	first, stderr := runDomainOK(t, domainArgs(storage, "model", "westeurope")...)
	name := firstLine(first)
	if !nameLine.MatchString(name) {
		t.Fatalf("first line %q, want the name alone, model??????.westeurope.cloudapp.azure.com", name)
	}
	if !strings.Contains(stderr, "drew a new name") {
		t.Errorf("stderr %q, want it to say a name was drawn", stderr)
	}
	again, stderr := runDomainOK(t, domainArgs(storage, "model", "westeurope")...)
	if again != first {
		t.Errorf("second run printed\n%s\nwant the same as the first:\n%s", again, first)
	}
	if strings.Contains(stderr, "drew") {
		t.Errorf("second run's stderr %q; want the stored name read, not drawn", stderr)
	}

	redrawn, stderr := runDomainOK(t, domainArgs(storage, "model", "westeurope", "--overwrite-existing-domain")...)
	if got := firstLine(redrawn); got == name || !nameLine.MatchString(got) {
		t.Errorf("--overwrite-existing-domain printed %q; want a new model??????.westeurope.cloudapp.azure.com, not %q", got, name)
	}
	if !strings.Contains(stderr, "replacing "+name) {
		t.Errorf("--overwrite-existing-domain stderr %q, want it to name the replaced %s", stderr, name)
	}
	kept, _ := runDomainOK(t, domainArgs(storage, "model", "westeurope")...)
	if kept != redrawn {
		t.Errorf("after --overwrite-existing-domain, a run printed\n%s\nwant the new name's\n%s", kept, redrawn)
	}
}

func TestDomainSaysWhereTheNameGoes(t *testing.T) {
	storage := t.TempDir()
	stdout, _ := runDomainOK(t, domainArgs(storage, "model", "westeurope")...)
	name := firstLine(stdout)
	dnsLabel, _, _ := strings.Cut(name, ".")
	for _, want := range []string{
		"AKS: annotate the scoring Service with service.beta.kubernetes.io/azure-dns-label-name: " + dnsLabel + ";",
		"--dns-name " + dnsLabel + "\n",
		"\nAKS with deploy/aks/overlays/acme: put the name in its kustomization.yaml, configMapGenerator scoregate-name, literal cname=" + name + ";",
		"ACI: leaf_domain_label names are for public IPs (AKS); a container group's own name is <dnsNameLabel>.westeurope.azurecontainer.io",
		"--acme --ssl-cname",
		// The name itself, not --leaf-domain-label: a pod on a fresh
		// storage would draw another name (TestDomainThenServeOnFreshStorage
		// runs this line).
		"\n  scoregate serve --acme --ssl-cname " + name + " --storage " + storage + " --listen :443 --http-listen :80\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not say %q:\n%s", want, stdout)
		}
	}
}

func TestDomainJSON(t *testing.T) {
	storage := t.TempDir()
	var outs [2]domainOutput
	for i := range outs {
		stdout, _ := runDomainOK(t, domainArgs(storage, "Model", "WestEurope", "--json")...)
		if err := json.Unmarshal([]byte(stdout), &outs[i]); err != nil {
			t.Fatalf("run %d: --json printed %q: %v", i, stdout, err)
		}
	}
	got := outs[0]
	want := domainOutput{
		FQDN:          "model" + got.Suffix + ".westeurope.cloudapp.azure.com",
		Label:         "model",
		Suffix:        got.Suffix,
		DNSLabel:      "model" + got.Suffix,
		Region:        "westeurope",
		Storage:       storage,
		Drawn:         true,
		AKSAnnotation: map[string]string{"service.beta.kubernetes.io/azure-dns-label-name": "model" + got.Suffix},
		ACINameHint:   "<dnsNameLabel>.westeurope.azurecontainer.io",
		Serve:         "scoregate serve --acme --ssl-cname model" + got.Suffix + ".westeurope.cloudapp.azure.com --storage " + storage + " --listen :443 --http-listen :80",
	}
	if len(got.Suffix) != 6 || !jsonEqual(t, got, want) {
		t.Errorf("--json = %+v\nwant %+v", got, want)
	}
	want.Drawn = false
	if !jsonEqual(t, outs[1], want) {
		t.Errorf("second --json = %+v\nwant the stored name, %+v", outs[1], want)
	}
}

// jsonEqual compares a and b as their JSON.
func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

func TestDomainAllowUnknownRegion(t *testing.T) {
	storage := t.TempDir()
	stdout, _ := runDomainOK(t, domainArgs(storage, "model", "newregion1", "--allow-unknown-region")...)
	name := firstLine(stdout)
	if !regexp.MustCompile(`^model[a-z0-9]{6}\.newregion1\.cloudapp\.azure\.com$`).MatchString(name) {
		t.Errorf("first line %q, want model??????.newregion1.cloudapp.azure.com", name)
	}
	// serve checks no region for an --ssl-cname, so the line needs no
	// --allow-unknown-region.
	if want := "\n  scoregate serve --acme --ssl-cname " + name + " --storage " + storage + " --listen :443 --http-listen :80\n"; !strings.Contains(stdout, want) {
		t.Errorf("stdout does not carry the serve line %q:\n%s", want, stdout)
	}
}

func TestDomainErrors(t *testing.T) {
	dir := t.TempDir()
	stored := filepath.Join(dir, "stored")
	runDomainOK(t, domainArgs(stored, "model", "westeurope")...)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh")
	for _, tt := range []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"no flags", []string{"domain"}, []string{"scoregate: domain: --leaf-domain-label, --region, --storage required; --storage is the directory that keeps the drawn name,"}},
		{"no region", []string{"domain", "--leaf-domain-label", "model", "--storage", fresh}, []string{"scoregate: domain: --region required\n"}},
		// No default: it once wrote /var/lib/scoregate on the workstation.
		{"no storage", []string{"domain", "--leaf-domain-label", "model", "--region", "westeurope"}, []string{
			"scoregate: domain: --storage required; --storage is the directory that keeps the drawn name, so that a later run prints the same one, and domain picks none on its own\n",
		}},
		{"misspelt region", domainArgs(fresh, "model", "westeurop"), []string{
			`scoregate: --region: unknown Azure region "westeurop"; did you mean "westeurope"? (a region newer than scoregate's list needs --allow-unknown-region)` + "\n",
		}},
		{"unknown region", domainArgs(fresh, "model", "newregion1"), []string{`--region: unknown Azure region "newregion1"; Azure region names look like`, "--allow-unknown-region"}},
		{"bad label", domainArgs(fresh, "my_model", "westeurope"), []string{`scoregate: --leaf-domain-label "my_model": character '_' is not allowed`}},
		{"label changed", domainArgs(stored, "other", "westeurope"), []string{
			"scoregate: --leaf-domain-label: ", `drawn for label "model" in region "westeurope", not for label "other" in region "westeurope"`,
			"add --overwrite-existing-domain",
		}},
		{"region changed", domainArgs(stored, "model", "northeurope"), []string{"scoregate: --region: ", `region "westeurope"`, `region "northeurope"`, "--overwrite-existing-domain"}},
		{"storage under a regular file", domainArgs(filepath.Join(file, "storage"), "model", "westeurope"), []string{
			`scoregate: --storage "` + filepath.Join(file, "storage") + `": `, "not a directory",
		}},
		{"empty storage", domainArgs("", "model", "westeurope"), []string{"scoregate: domain: --storage required; "}},
		{"extra argument", append(domainArgs(fresh, "model", "westeurope"), "extra"), []string{`scoregate: domain: unexpected argument "extra"` + "\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, want 2 with one line on stderr and nothing on stdout\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q does not contain %q", stderr, want)
				}
			}
		})
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Errorf("a refused run created %s", fresh)
	}
}

func TestLeafDNSHelp(t *testing.T) {
	got := leafDNSHelp("modelabc123.eastus2.cloudapp.azure.com")
	want := []string{
		"AKS: annotate the scoring Service with service.beta.kubernetes.io/azure-dns-label-name: modelabc123; Azure then publishes modelabc123.eastus2.cloudapp.azure.com for its public IP itself (no DNS record to make)",
		"AKS with deploy/aks/overlays/acme: put the name in its kustomization.yaml, configMapGenerator scoregate-name, literal cname=modelabc123.eastus2.cloudapp.azure.com; that one value feeds both the DaemonSet's SCOREGATE_SSL_CNAME and the Service's azure-dns-label-name annotation",
		"Another public IP (a VM, a load balancer): set its DNS name label, az network public-ip update --resource-group RG --name IP --dns-name modelabc123",
		"ACI: leaf_domain_label names are for public IPs (AKS); a container group's own name is <dnsNameLabel>.eastus2.azurecontainer.io (az container show --query ipAddress.fqdn): serve that with --acme --ssl-cname instead of --leaf-domain-label",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("leafDNSHelp =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
