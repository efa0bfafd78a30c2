package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// h2specGoMod pins h2spec and its dependencies for the go command, which
// fetches them through the module proxy: nothing is installed by hand.
// v2.2.1 is the newest h2spec the proxy serves. It predates modules (hence
// +incompatible) and names no versions of its own dependencies, so they
// are pinned here; x/net is scoregate's own.
const h2specGoMod = `module scoregate.test/h2spec

go 1.26

require (
	github.com/fatih/color v1.19.0
	github.com/spf13/cobra v1.10.2
	github.com/summerwind/h2spec v2.2.1+incompatible
	golang.org/x/net v0.62.0
)
`

// h2specKnownFailures are the h2spec cases scoregate fails, by case id (the
// section, then the case's number in it, as h2spec prints them), each with
// why. Each is a choice of Go's HTTP/2 server that scoregate cannot
// configure. The test fails when a case not listed here fails, and when a
// listed one passes: either way, update the list and the README's Security
// section.
var h2specKnownFailures = map[string]string{
	"http2/6.5.3/1": "a SETTINGS frame that repeats a parameter: Go's server closes the connection " +
		"(GOAWAY PROTOCOL_ERROR) on duplicate or more than 100 settings, a rule of its own against abuse, " +
		"where RFC 9113 section 6.5.3 wants the values applied in order (golang/go#56760)",
	"http2/8.1.2.2/1": "a connection-specific header field (connection: keep-alive): Go's server answers " +
		"400 Bad Request without calling scoregate, not the stream error PROTOCOL_ERROR that RFC 9113 " +
		"section 8.2.2 asks for (golang/go#26321, open)",
	"http2/8.1.2.2/2": "TE with a value other than \"trailers\": the same 400 from Go's server, " +
		"not the stream error PROTOCOL_ERROR (golang/go#26321, open)",
}

// TestH2Spec runs h2spec, the HTTP/2 conformance suite, against `scoregate
// serve` and compares its failures with h2specKnownFailures. It takes about
// ten seconds, most of it h2spec waiting out cases whose pass is the
// connection closing.
func TestH2Spec(t *testing.T) {
	bin := buildH2Spec(t)
	f := certstest.NewFiles(t, t.TempDir(), "localhost")
	be := newRecordingBackend(t)
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile,
		"--ssl-cname", "localhost", "--ca-file", f.CAFile, "--backend", be.URL, "--access-log=false")
	_, port, _ := net.SplitHostPort(ts.tlsAddr())

	report := filepath.Join(t.TempDir(), "h2spec.xml")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// --host localhost: h2spec then sends SNI "localhost" (crypto/tls takes
	// it from the address) and :authority localhost:PORT, which match
	// --ssl-cname, so the SNI and Host checks stay on and requests reach
	// the backend. --insecure: h2spec has no flag for a CA file. --timeout
	// 2 (h2spec's default): Go's server closes a connection 1s after the
	// GOAWAY of a connection error, and h2spec must wait that long to see
	// it (case 5.1/9 fails with 1).
	cmd := exec.CommandContext(ctx, bin, "--tls", "--insecure", "--host", "localhost", "--port", port,
		"--timeout", "2", "--junit-report", report)
	start := time.Now()
	out, err := cmd.CombinedOutput() // exit status 1 when any case fails: the report says which
	if ctx.Err() != nil {
		t.Fatalf("h2spec did not finish within 2 minutes (%v):\n%s", err, out)
	}
	cases, err := readH2SpecReport(report)
	if err != nil {
		t.Fatalf("h2spec's report: %v\nh2spec's output:\n%s", err, out)
	}

	var failed []string
	for _, c := range cases {
		_, known := h2specKnownFailures[c.id]
		switch {
		case c.failed && !known:
			t.Errorf("h2spec %s (%s) fails, and is not in h2specKnownFailures: fix it, or add it with the reason and update the README's Security section; h2spec says: %s", c.id, c.desc, c.detail)
		case !c.failed && known:
			t.Errorf("h2spec %s (%s) passes, but h2specKnownFailures lists it: remove it there and in the README's Security section", c.id, c.desc)
		}
		if c.failed {
			failed = append(failed, c.id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(h2specKnownFailures)) {
		if !slices.ContainsFunc(cases, func(c h2specCase) bool { return c.id == id }) {
			t.Errorf("h2specKnownFailures lists %s, which h2spec did not run: update the list to h2spec's case ids", id)
		}
	}
	t.Logf("h2spec: %d cases, %d passed, %d failed (%s) in %s", len(cases), len(cases)-len(failed), len(failed),
		strings.Join(failed, " "), time.Since(start).Round(100*time.Millisecond))
}

// h2specCase is one case of h2spec's JUnit report.
type h2specCase struct {
	id     string // "http2/4.2/3": the section, then the case's number in it
	desc   string
	failed bool
	detail string // what h2spec expected and got
}

// readH2SpecReport reads the JUnit report of a full h2spec run (-j). A
// case's number is its position in its section, as h2spec numbers it; h2spec
// leaves out of the report the cases it did not run, so the numbers hold
// only when every case of a section ran.
func readH2SpecReport(path string) ([]h2specCase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r struct {
		Suites []struct {
			Section string `xml:"package,attr"`
			Cases   []struct {
				Desc    string  `xml:"classname,attr"`
				Failure *string `xml:"failure"`
				Error   *string `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var cases []h2specCase
	for _, s := range r.Suites {
		for i, c := range s.Cases {
			hc := h2specCase{id: fmt.Sprintf("%s/%d", s.Section, i+1), desc: c.Desc}
			// h2spec files a failed expectation as <error>, not <failure>:
			// the frames it would accept, one a line, then what it got.
			for _, d := range []*string{c.Failure, c.Error} {
				if d != nil {
					hc.failed, hc.detail = true, h2specDetail(*d)
				}
			}
			cases = append(cases, hc)
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no test cases", path)
	}
	return cases, nil
}

// h2specDetail turns h2spec's account of a failed case, the frames it would
// have accepted one a line and then the one it got, into one line.
func h2specDetail(s string) string {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 {
		return strings.Join(lines, " ")
	}
	return fmt.Sprintf("got %s, want %s", lines[len(lines)-1], strings.Join(lines[:len(lines)-1], " or "))
}

// buildH2Spec builds h2spec with the go command into a temporary module
// (h2specGoMod) and returns the binary. It skips the test only when the go
// command cannot fetch h2spec: no module proxy, and not in the module cache.
func buildH2Spec(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("h2spec: no go command to fetch and build it with: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(h2specGoMod), 0o644); err != nil {
		t.Fatal(err)
	}
	gocmd := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(t.Context(), goCmd, args...)
		cmd.Dir = dir // the temporary module: scoregate's go.mod plays no part
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
		return cmd.CombinedOutput()
	}
	// Fetching first, apart, tells a missing module proxy (skip) from a
	// build that fails (a failure).
	if out, err := gocmd("mod", "download", "all"); err != nil {
		t.Skipf("h2spec: the go command cannot fetch it (no module proxy?): %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "h2spec")
	if out, err := gocmd("build", "-o", bin, "github.com/summerwind/h2spec/cmd/h2spec"); err != nil {
		t.Fatalf("building h2spec: %v\n%s", err, out)
	}
	return bin
}
