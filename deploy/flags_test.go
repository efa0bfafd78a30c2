package deploy

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// usageGolden is `scoregate serve --help` as the command's own tests pin
// it (cmd/scoregate's TestScripts compares it with the real output), so
// the flags read from it are the flags serve accepts.
const usageGolden = "../cmd/scoregate/testdata/script/usage.txtar"

var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// serveFlags returns the flags `scoregate serve` accepts, by name without
// dashes, with the type word of each ("" for a boolean).
func serveFlags(t *testing.T) map[string]string {
	t.Helper()
	flags := map[string]string{}
	for _, line := range strings.Split(serveHelp(t), "\n") {
		m := flagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		typ := ""
		if f := strings.Fields(line); len(f) > 1 {
			typ = f[1]
		}
		flags[m[1]] = typ
	}
	if len(flags) < 20 {
		t.Fatalf("read only %d flags from %s; the format changed?", len(flags), usageGolden)
	}
	return flags
}

// serveHelp returns the pinned `serve --help` text.
func serveHelp(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(usageGolden)
	if err != nil {
		t.Fatal(err)
	}
	_, help, ok := strings.Cut(string(b), "-- serve-help.golden --")
	if !ok {
		t.Fatalf("%s has no serve-help.golden section", usageGolden)
	}
	help, _, _ = strings.Cut(help, "\n-- ") // up to the next file, if any
	return help
}

// serveDefaults returns the default of each serve flag that prints one, as
// the pinned --help gives it (quoted strings unquoted).
func serveDefaults(t *testing.T) map[string]string {
	t.Helper()
	defaults, name := map[string]string{}, ""
	for _, line := range strings.Split(serveHelp(t), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			name = m[1]
			continue
		}
		if i := strings.LastIndex(line, "(default "); i >= 0 && name != "" {
			v := strings.TrimSuffix(line[i+len("(default "):], ")")
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			defaults[name] = v
		}
	}
	if defaults["listen"] != ":8443" || defaults["backend"] == "" {
		t.Fatalf("read the default of --listen as %q from %s; the format changed?", defaults["listen"], usageGolden)
	}
	return defaults
}

// envFlag returns the flag a SCOREGATE_* variable sets.
func envFlag(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "SCOREGATE_")), "_", "-")
}

// TestServeFlagsRead: the reader finds the flags serve has, and no others.
func TestServeFlagsRead(t *testing.T) {
	flags := serveFlags(t)
	for _, name := range []string{"listen", "backend", "ssl-cert-pem-file", "ssl-key-pem-file", "ssl-cname", "metrics-listen", "acme", "storage", "leaf-domain-label", "shutdown-timeout"} {
		if _, ok := flags[name]; !ok {
			t.Errorf("flag --%s not read from %s", name, usageGolden)
		}
	}
	if _, ok := flags["nope"]; ok {
		t.Error("read a flag that serve does not have")
	}
	if got := flags["acme"]; got != "" {
		t.Errorf("--acme's type = %q, want a boolean (no type word)", got)
	}
	if got := envFlag("SCOREGATE_SSL_CNAME"); got != "ssl-cname" {
		t.Errorf("envFlag(SCOREGATE_SSL_CNAME) = %q, want ssl-cname", got)
	}
}
