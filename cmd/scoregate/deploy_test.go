package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDeployManifestsUseRealFlags checks that every scoregate flag and
// SCOREGATE_* variable in deploy/*.yaml exists, so the manifests cannot
// drift from the command. (It lives here because the flags do.)
func TestDeployManifestsUseRealFlags(t *testing.T) {
	var c serveConfig
	fs := serveFlags(&c)
	files, err := filepath.Glob("../../deploy/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/: %v", err)
	}
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
