package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDeployManifestsUseRealFlags checks that every scoregate flag and
// SCOREGATE_* variable in the deploy/ manifests exists, so the manifests cannot
// drift from the command. (It lives here because the flags do.)
func TestDeployManifestsUseRealFlags(t *testing.T) {
	var c serveConfig
	fs := serveFlags(&c)
	files := []string{"../../deploy/aci.yaml", "../../deploy/aks-daemonset.yaml"}
	flagRE := regexp.MustCompile(`(?m)^\s*- --([a-z0-9-]+)`)
	envRE := regexp.MustCompile(`SCOREGATE_[A-Z0-9_]+`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, m := range flagRE.FindAllStringSubmatch(string(b), -1) {
			seen++
			if fs.Lookup(m[1]) == nil {
				t.Errorf("%s: --%s is not a serve flag", f, m[1])
			}
		}
		for _, m := range envRE.FindAllString(string(b), -1) {
			seen++
			name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(m, "SCOREGATE_")), "_", "-")
			if fs.Lookup(name) == nil {
				t.Errorf("%s: %s sets no serve flag", f, m)
			}
		}
		if seen == 0 {
			t.Errorf("%s: no scoregate flags or SCOREGATE_* variables found; the check would prove nothing", f)
		}
	}
}
