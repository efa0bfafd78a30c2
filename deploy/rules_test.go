package deploy

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The deploy rules run on the shipped files and on yours:
//
//	go test ./deploy/                          # the shipped files, or your edits of them
//	go test ./deploy/ -args -dir ./my-deploy   # a copy with your values
//
// PATH is a directory of ACI container-group files (*.yaml), a copy of
// deploy/aks (its overlays/*), one kustomization directory (an overlay),
// or a directory holding aci/ and aks/. A relative PATH is taken from the
// repository root, where the command above is typed (go test itself runs
// in deploy/), or else from deploy/. Each problem names the file and the
// rule. checkDir is the one function both ways use.
var userDir = flag.String("dir", "", "run the deploy rules on this `directory` (ACI container-group YAML files, a copy of deploy/aks, or an overlay) instead of the shipped files")

// ruleInputs is what the rules compare the files with.
type ruleInputs struct {
	flags    map[string]string // serve's flags and their type words (serveFlags)
	defaults map[string]string // serve's defaults (serveDefaults)
	img      builtImage        // what the Dockerfile's image provides
	metrics  map[string]bool   // the metric names scoregate exports
	alerts   ruleFile          // deploy/alerts.yaml
	board    []byte            // deploy/dashboard.json
}

func loadRuleInputs(t *testing.T) *ruleInputs {
	t.Helper()
	var alerts ruleFile
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := strictJSON(b, &alerts); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	board, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	return &ruleInputs{
		flags:    serveFlags(t),
		defaults: serveDefaults(t),
		img:      imageOf(t, readDockerfile(t)),
		metrics:  exported(t),
		alerts:   alerts,
		board:    board,
	}
}

// finding is one problem a rule found.
type finding struct {
	file string // the ACI file, or the kustomization directory built (the problem names the object's file)
	rule string
	msg  string
}

func (f finding) String() string { return fmt.Sprintf("%s: rule %q: %s", f.file, f.rule, f.msg) }

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func hasKustomization(dir string) bool {
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// checkDir runs the deploy rules on dir (see userDir for what it may be).
// The error is for a directory that holds no deploy files.
func checkDir(dir string, in *ruleInputs) ([]finding, error) {
	if hasKustomization(dir) {
		return checkAKSDir(dir, in), nil
	}
	if overlays := filepath.Join(dir, "overlays"); isDir(overlays) {
		entries, err := os.ReadDir(overlays)
		if err != nil {
			return nil, err
		}
		var fs []finding
		n := 0
		for _, e := range entries {
			if d := filepath.Join(overlays, e.Name()); e.IsDir() && hasKustomization(d) {
				n++
				fs = append(fs, checkAKSDir(d, in)...)
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no overlay (a directory with a kustomization.yaml)", overlays)
		}
		return fs, nil
	}
	var fs []finding
	sub := false
	for _, s := range []string{"aci", "aks"} {
		if d := filepath.Join(dir, s); isDir(d) {
			sub = true
			f, err := checkDir(d, in)
			if err != nil {
				return nil, err
			}
			fs = append(fs, f...)
		}
	}
	if sub {
		return fs, nil
	}
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no deploy files: want ACI container-group *.yaml files, a kustomization.yaml, overlays/*/kustomization.yaml, or aci/ and aks/", dir)
	}
	for _, f := range files {
		fs = append(fs, checkACIFile(f, in)...)
	}
	return fs, nil
}

// resolveDir finds a relative -dir from the repository root first, where
// `go test ./deploy/ -args -dir PATH` is typed, then from deploy/.
func resolveDir(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if root := filepath.Join("..", p); isDir(root) {
		return root
	}
	return p
}

// TestDeployRules runs every rule on the shipped files, or on -dir.
func TestDeployRules(t *testing.T) {
	in := loadRuleInputs(t)
	dirs := []string{"aci", "aks"}
	if *userDir != "" {
		dirs = []string{resolveDir(*userDir)}
	}
	for _, d := range dirs {
		fs, err := checkDir(d, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			t.Error(f)
		}
		t.Logf("%s: %d problems", d, len(fs))
	}
}

// checkHostName: s is a fully qualified host name such as
// score.contoso.com: letters, digits and hyphens in labels of at most 63,
// at least two labels, not an address.
func checkHostName(s string) error {
	switch {
	case strings.Contains(s, "://"):
		return errors.New("a URL; give the bare host name")
	case net.ParseIP(s) != nil:
		return errors.New("an IP address; give the host name clients use")
	case strings.Contains(s, ":"):
		return errors.New("has a port; give the bare host name")
	case len(s) > 253:
		return errors.New("longer than 253 characters")
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return errors.New("not a fully qualified name (such as score.contoso.com)")
	}
	for _, l := range labels {
		if !hostLabel.MatchString(l) {
			return fmt.Errorf("label %q: want 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen", l)
		}
	}
	if !strings.ContainsFunc(labels[len(labels)-1], func(r rune) bool { return r < '0' || r > '9' }) {
		return errors.New("the last label is all digits")
	}
	return nil
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// didYouMean suggests the known flag nearest to name, if one is close.
func didYouMean(name string, known map[string]string) string {
	best, dist := "", 4
	for k := range known {
		if d := editDistance(name, k); d < dist || d == dist && k < best {
			best, dist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean --%s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// copyDeploy copies deploy/<sub> into a fresh temporary directory and
// returns the copy's path.
func copyDeploy(t *testing.T, sub string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), sub)
	err := filepath.WalkDir(sub, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(sub, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// editFile rewrites a file with edit.
func editFile(t *testing.T, file string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceOnce returns an edit replacing the one occurrence of old.
func replaceOnce(t *testing.T, old, new string) func(string) string {
	return func(s string) string {
		t.Helper()
		if n := strings.Count(s, old); n != 1 {
			t.Fatalf("%d occurrences of %q, want 1: update the test", n, old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

// fillIn replaces each placeholder in every file under root, as a user
// filling in the files would, and fails if one matched nothing.
func fillIn(t *testing.T, root string, values [][2]string) {
	t.Helper()
	used := make([]int, len(values))
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		editFile(t, p, func(s string) string {
			for i, v := range values {
				used[i] += strings.Count(s, v[0])
				s = strings.ReplaceAll(s, v[0], v[1])
			}
			return s
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		if used[i] == 0 {
			t.Errorf("%s: no file has %q any more: update the test's values", root, v[0])
		}
	}
}

// Values a user might fill in: other names, registry, tags, region, label.
var (
	aciFilledIn = [][2]string{
		{"location: westeurope", "location: eastus2"},
		{"scoring.westeurope.azurecontainer.io", "fraud-api.eastus2.azurecontainer.io"},
		{"dnsNameLabel: scoring", "dnsNameLabel: fraud-api"},
		{"myregistry.azurecr.io", "fabrikamml.azurecr.io"},
		{"username: myregistry", "username: fabrikamml-pull"},
		{"<registry password or token>", "c2VjcmV0"},
		{"scoregate:1", "scoregate:2.3.0"},
		{"my-model:1", "credit-model:7"},
		{"score.contoso.com", "api.fabrikam.net"},
		{"ops@contoso.com", "ml-ops@fabrikam.net"},
		{"<base64 -w0 fullchain.pem>", "TFMwdExTMUNSVWRKVGlCRFJWSlU="},
		{"<base64 -w0 key.pem>", "TFMwdExTMUNSVWRKVGlCUVVrbFc="},
		{"mystorageaccount", "fabrikamacme"},
		{"<storage account key>", "a2V5a2V5a2V5"},
	}
	aksFilledIn = [][2]string{
		{"fraudk3x9q2.westeurope.cloudapp.azure.com", "riskq7w2m1.northeurope.cloudapp.azure.com"},
		{"myregistry.azurecr.io", "fabrikamml.azurecr.io"},
		{`newTag: "1"`, `newTag: "2.3.0"`},
		{"score.contoso.com", "api.fabrikam.net"},
		{"hostedZoneName: contoso.com", "hostedZoneName: fabrikam.net"},
		{"ops@contoso.com", "ml-ops@fabrikam.net"},
		{"resourceGroupName: dns-rg", "resourceGroupName: fabrikam-dns"},
		{"00000000-0000-0000-0000-000000000000", "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"},
	}
)

// TestDeployRulesFilledIn: copies with other values than the shipped
// placeholders pass every rule, so the rules are not the placeholders.
func TestDeployRulesFilledIn(t *testing.T) {
	in := loadRuleInputs(t)
	aci := copyDeploy(t, "aci")
	fillIn(t, aci, aciFilledIn)
	aks := copyDeploy(t, "aks")
	fillIn(t, aks, aksFilledIn)
	editFile(t, filepath.Join(aks, "overlays", "own-cert", "kustomization.yaml"), withComponents("monitoring", "sample-model"))
	for _, dir := range []string{aci, aks} {
		fs, err := checkDir(dir, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			t.Error(f)
		}
	}
	// The values took: the rules saw the filled-in files.
	a, err := newACIGroup(readACIGroup(t, filepath.Join(aci, "acme.yaml")), in.img, in.flags, in.defaults)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := a.value("ssl-cname"); got != "fraud-api.eastus2.azurecontainer.io" {
		t.Errorf("acme.yaml copy: --ssl-cname = %q, want the filled-in name", got)
	}
	m := aksLoad(t, filepath.Join(aks, "overlays", "own-cert"), in)
	if g := m.gates()[0]; g.get("ssl-cname") != "api.fabrikam.net" || g.c.Image != "fabrikamml.azurecr.io/scoregate:2.3.0" {
		t.Errorf("own-cert copy: --ssl-cname %q, image %q, want the filled-in values", g.get("ssl-cname"), g.c.Image)
	}
}

// TestDeployRulesBrokenCopies: copies broken as a user might break them
// fail, with a problem that names the file and the rule.
func TestDeployRulesBrokenCopies(t *testing.T) {
	in := loadRuleInputs(t)
	for _, tt := range []struct {
		name, tree, file string
		edit             func(t *testing.T) func(string) string
		wantFile, rule   string
	}{
		{"ACI: a flag that does not exist", "aci", "own-cert.yaml",
			func(t *testing.T) func(string) string {
				return replaceOnce(t, "          - --listen=:443\n", "          - --listen=:443\n          - --tls-cert=/tls/fullchain.pem\n")
			}, "own-cert.yaml", "flags"},
		{"ACI: a probe on the wrong port", "aci", "acme.yaml",
			func(t *testing.T) func(string) string {
				return replaceOnce(t, "{path: /readyz, port: 9464", "{path: /readyz, port: 9090")
			}, "acme.yaml", "probes"},
		{"ACI: the cname and the DNS label differ", "aci", "acme.yaml",
			func(t *testing.T) func(string) string {
				return replaceOnce(t, "dnsNameLabel: scoring", "dnsNameLabel: scoring2")
			}, "acme.yaml", "acme"},
		{"ACI: a region that does not exist", "aci", "own-cert.yaml",
			func(t *testing.T) func(string) string {
				return replaceOnce(t, "location: westeurope", "location: westeurop")
			}, "own-cert.yaml", "api"},
		{"AKS: a root user", "aks", "base/scoregate.yaml",
			func(t *testing.T) func(string) string {
				return func(s string) string {
					s = strings.ReplaceAll(s, "runAsNonRoot: true", "runAsNonRoot: false")
					return strings.ReplaceAll(s, "runAsUser: 65532", "runAsUser: 0")
				}
			}, "base/scoregate.yaml", "hardening"},
		{"AKS: a flag that does not exist", "aks", "overlays/acme/daemonset.yaml",
			func(t *testing.T) func(string) string {
				return replaceOnce(t, "- --acme-email=", "- --acme-mail=")
			}, "overlays/acme", "flags"},
		{"AKS: a probe on the wrong port", "aks", "base/scoregate.yaml",
			func(t *testing.T) func(string) string {
				return replaceOnce(t, "              path: /readyz\n              port: metrics", "              path: /readyz\n              port: https")
			}, "base/scoregate.yaml", "probes"},
		{"AKS: the cname in two places", "aks", "overlays/acme/daemonset.yaml",
			func(t *testing.T) func(string) string {
				return replaceOnce(t, "            - --acme\n", "            - --acme\n            - --ssl-cname=fraud.westeurope.cloudapp.azure.com\n")
			}, "overlays/acme", "acme"},
		{"AKS: the Certificate not fed from the cname", "aks", "overlays/cert-manager/kustomization.yaml",
			func(t *testing.T) func(string) string {
				return func(s string) string {
					i := strings.Index(s, "replacements:")
					if i < 0 {
						t.Fatal("no replacements: update the test")
					}
					return s[:i]
				}
			}, "overlays/cert-manager/certificate.yaml", "cert-manager"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := copyDeploy(t, tt.tree)
			editFile(t, filepath.Join(root, filepath.FromSlash(tt.file)), tt.edit(t))
			fs, err := checkDir(root, in)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(fs, func(f finding) bool {
				return f.rule == tt.rule && strings.Contains(f.String(), filepath.FromSlash(tt.wantFile))
			}) {
				t.Errorf("no problem from rule %q naming %s; got %q", tt.rule, tt.wantFile, fs)
			}
		})
	}
}

// TestCheckDirRefusesEmpty: a directory with no deploy files is an error,
// not a pass.
func TestCheckDirRefusesEmpty(t *testing.T) {
	in := loadRuleInputs(t)
	for _, dir := range []string{t.TempDir(), filepath.Join(copyDeploy(t, "aks"), "components")} {
		if fs, err := checkDir(dir, in); err == nil && len(fs) == 0 {
			t.Errorf("checkDir(%s) passed, want an error", dir)
		}
	}
}

func TestCheckHostName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"score.contoso.com", true},
		{"fraudk3x9q2.westeurope.cloudapp.azure.com", true},
		{"Score.Contoso.com", true},
		{"score", false},
		{"https://score.contoso.com", false},
		{"score.contoso.com:443", false},
		{"10.0.0.4", false},
		{"-score.contoso.com", false},
		{"score..com", false},
		{"(the cname of kustomization.yaml)", false},
		{"*.contoso.com", false},
		{"score.contoso.123", false},
	} {
		if err := checkHostName(tt.name); (err == nil) != tt.ok {
			t.Errorf("checkHostName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
