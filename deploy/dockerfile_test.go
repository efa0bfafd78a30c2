package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const dockerfilePath = "../Dockerfile"

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string // the rest, trimmed
	line int    // where it starts, 1-based
}

// stage is one FROM and the instructions up to the next.
type stage struct {
	name string // the AS name, or the stage's index
	ins  []instruction
}

// parseDockerfile splits a Dockerfile into stages of instructions. It
// knows what the checks need: comments (also between continuation lines),
// blank lines, and lines continued with a trailing backslash (the default
// escape character). Heredocs are not supported.
func parseDockerfile(text string) ([]stage, error) {
	var stages []stage
	var cur *instruction
	var joined strings.Builder
	flush := func() error {
		if cur == nil {
			return nil
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(joined.String()), " ")
		cur.cmd, cur.args = strings.ToUpper(cmd), strings.TrimSpace(args)
		if cur.cmd == "FROM" {
			f := strings.Fields(cur.args)
			name := strconv.Itoa(len(stages))
			if n := len(f); n >= 3 && strings.EqualFold(f[n-2], "AS") {
				name = f[n-1]
			}
			stages = append(stages, stage{name: name})
		} else if len(stages) == 0 {
			return fmt.Errorf("line %d: %s before FROM", cur.line, cur.cmd)
		}
		s := &stages[len(stages)-1]
		s.ins = append(s.ins, *cur)
		cur = nil
		joined.Reset()
		return nil
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // a comment or blank line, also inside a continuation
		}
		if cur == nil {
			cur = &instruction{line: i + 1}
		}
		body, continued := strings.CutSuffix(strings.TrimRight(line, " \t\r"), `\`)
		joined.WriteString(body)
		joined.WriteString(" ")
		if !continued {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: continued past the end of the file", cur.line)
	}
	if len(stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return stages, nil
}

// copyInstr is a COPY's flags, sources and destination (shell form).
type copyInstr struct {
	flags map[string]string // "from", "chown", "link" ("" when given without a value)
	srcs  []string
	dst   string
}

func parseCopy(args string) copyInstr {
	c := copyInstr{flags: map[string]string{}}
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		c.flags[k] = v
		f = f[1:]
	}
	if len(f) >= 2 {
		c.srcs, c.dst = f[:len(f)-1], f[len(f)-1]
	}
	return c
}

// binaryCopy is the final stage's COPY of a file built by `go build -o` in
// an earlier stage: the binary the image runs.
type binaryCopy struct {
	copyInstr
	from  *stage
	src   string // the -o path in the build stage
	image string // where it lands in the image
	build int    // index in from.ins of the RUN with the go build
	run   string // that RUN's text
}

var goBuildOut = regexp.MustCompile(`go build\b[^&;|]*?\s-o[= ](\S+)`)

// dockerfile is a parsed Dockerfile and what the checks derive from it.
type dockerfile struct {
	stages []stage
	final  *stage
	binary *binaryCopy // nil when no COPY --from copies a go build's output
}

func newDockerfile(text string) (*dockerfile, error) {
	stages, err := parseDockerfile(text)
	if err != nil {
		return nil, err
	}
	d := &dockerfile{stages: stages, final: &stages[len(stages)-1]}
	for _, in := range d.final.ins {
		if in.cmd != "COPY" {
			continue
		}
		c := parseCopy(in.args)
		from := d.stage(c.flags["from"])
		if from == nil || len(c.srcs) != 1 {
			continue
		}
		for i, b := range from.ins {
			m := goBuildOut.FindStringSubmatch(b.args)
			if b.cmd != "RUN" || m == nil || m[1] != c.srcs[0] {
				continue
			}
			dst := c.dst
			if strings.HasSuffix(dst, "/") {
				dst = path.Join(dst, path.Base(c.srcs[0]))
			}
			d.binary = &binaryCopy{copyInstr: c, from: from, src: m[1], image: dst, build: i, run: b.args}
		}
	}
	return d, nil
}

func (d *dockerfile) stage(name string) *stage {
	for i := range d.stages[:len(d.stages)-1] {
		if d.stages[i].name == name {
			return &d.stages[i]
		}
	}
	return nil
}

// last returns the args of the final stage's last cmd instruction.
func (d *dockerfile) last(cmd string) (string, bool) {
	for _, in := range slices.Backward(d.final.ins) {
		if in.cmd == cmd {
			return in.args, true
		}
	}
	return "", false
}

// env returns the final stage's ENV variables (KEY=VALUE form).
func (d *dockerfile) env() map[string]string {
	env := map[string]string{}
	for _, in := range d.final.ins {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = strings.Trim(v, `"`)
			}
		}
	}
	return env
}

// exposed returns the final stage's EXPOSEd TCP ports.
func (d *dockerfile) exposed() map[int]bool {
	ports := map[int]bool{}
	for _, in := range d.final.ins {
		if in.cmd != "EXPOSE" {
			continue
		}
		for _, p := range strings.Fields(in.args) {
			if n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp")); err == nil {
				ports[n] = true
			}
		}
	}
	return ports
}

var numericUser = regexp.MustCompile(`^(\d+)(?::(\d+))?$`)

// user returns the final stage's USER as uid and gid ("" if none given).
func (d *dockerfile) user() (uid, gid string, err error) {
	u, ok := d.last("USER")
	if !ok {
		return "", "", errors.New("the final stage sets no USER")
	}
	m := numericUser.FindStringSubmatch(u)
	if m == nil {
		return "", "", fmt.Errorf("USER %s: want a numeric uid[:gid] (Kubernetes cannot check runAsNonRoot against a name)", u)
	}
	return m[1], m[2], nil
}

func (d *dockerfile) needBinary() (*binaryCopy, error) {
	if d.binary == nil {
		return nil, errors.New("the final stage copies no `go build -o` output from a build stage")
	}
	return d.binary, nil
}

// dockerfileChecks are the promises the Dockerfile keeps, by name.
var dockerfileChecks = []struct {
	name  string
	check func(d *dockerfile) error
}{
	{"user", func(d *dockerfile) error {
		uid, _, err := d.user()
		if err != nil {
			return err
		}
		if uid == "0" {
			return errors.New("USER 0: the image must not run as root")
		}
		return nil
	}},
	{"static", func(d *dockerfile) error {
		b, err := d.needBinary()
		if err != nil {
			return err
		}
		before, _, _ := strings.Cut(b.run, "go build")
		if strings.Contains(before, "CGO_ENABLED=0") {
			return nil
		}
		for _, in := range b.from.ins[:b.build] {
			if in.cmd == "ENV" && strings.Contains(in.args, "CGO_ENABLED=0") {
				return nil
			}
		}
		return fmt.Errorf("%s is built without CGO_ENABLED=0; the static base image has no libc", b.src)
	}},
	{"trimpath", func(d *dockerfile) error {
		b, err := d.needBinary()
		if err != nil {
			return err
		}
		if !strings.Contains(goBuildOut.FindString(b.run), "-trimpath") {
			return fmt.Errorf("%s is built without -trimpath", b.src)
		}
		return nil
	}},
	{"entrypoint", func(d *dockerfile) error {
		b, err := d.needBinary()
		if err != nil {
			return err
		}
		ep, ok := d.last("ENTRYPOINT")
		if !ok {
			return errors.New("no ENTRYPOINT")
		}
		var argv []string
		if err := json.Unmarshal([]byte(ep), &argv); err != nil || len(argv) == 0 {
			return fmt.Errorf("ENTRYPOINT %s: want the exec form, a JSON array (the shell form needs a shell, and signals would go to it)", ep)
		}
		if argv[0] != b.image {
			return fmt.Errorf("ENTRYPOINT runs %s, want the binary copied to %s", argv[0], b.image)
		}
		return nil
	}},
	{"port443", func(d *dockerfile) error {
		b, err := d.needBinary()
		if err != nil {
			return err
		}
		setcap := regexp.MustCompile(`\bsetcap\s+'?cap_net_bind_service=\+?ep'?\s+` + regexp.QuoteMeta(b.src) + `(\s|$)`)
		found := false
		for i, in := range b.from.ins {
			if in.cmd != "RUN" {
				continue
			}
			// After the go build that writes the file: a rebuild replaces it
			// and its capability.
			if loc := setcap.FindStringIndex(in.args); loc != nil && (i > b.build || i == b.build && loc[0] > strings.Index(in.args, "go build")) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("no `setcap cap_net_bind_service=+ep %s` after its go build in stage %s: uid 65532 cannot bind 443", b.src, b.from.name)
		}
		if _, ok := b.flags["chown"]; ok {
			return fmt.Errorf("COPY --chown of %s: a chown clears the file capability", b.src)
		}
		if _, ok := b.flags["link"]; ok {
			return fmt.Errorf("COPY --link of %s: has lost file capabilities (moby/moby#45128)", b.src)
		}
		return nil
	}},
	{"expose", func(d *dockerfile) error {
		ports := d.exposed()
		if !ports[443] {
			return errors.New("EXPOSE does not include 443")
		}
		addr := d.env()["SCOREGATE_METRICS_LISTEN"]
		if _, p, err := net.SplitHostPort(addr); err == nil {
			if n, err := strconv.Atoi(p); err == nil && !ports[n] {
				return fmt.Errorf("EXPOSE does not include %d, the port of SCOREGATE_METRICS_LISTEN=%s", n, addr)
			}
		}
		return nil
	}},
	{"metrics", func(d *dockerfile) error {
		addr, ok := d.env()["SCOREGATE_METRICS_LISTEN"]
		if !ok {
			return errors.New("no ENV SCOREGATE_METRICS_LISTEN: serve's default, on 127.0.0.1, is out of the probes' reach")
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("SCOREGATE_METRICS_LISTEN=%s: %v", addr, err)
		}
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			return fmt.Errorf("SCOREGATE_METRICS_LISTEN=%s: want all interfaces (such as :9464), so that probes reach it", addr)
		}
		return nil
	}},
	{"storage", func(d *dockerfile) error {
		uid, _, err := d.user()
		if err != nil || uid == "0" {
			return nil // the user check reports it; root can write anyway
		}
		for _, in := range d.final.ins {
			if c := parseCopy(in.args); in.cmd == "COPY" && path.Clean(c.dst) == "/var/lib/scoregate" {
				if owner, _, _ := strings.Cut(c.flags["chown"], ":"); owner == uid {
					return nil
				}
				return fmt.Errorf("/var/lib/scoregate is copied with --chown=%q, not writable by uid %s", c.flags["chown"], uid)
			}
		}
		return errors.New("the final stage does not create /var/lib/scoregate (--storage's default) for the non-root user")
	}},
}

// runDockerfileChecks returns the failed checks' errors by name.
func runDockerfileChecks(d *dockerfile) map[string]error {
	failed := map[string]error{}
	for _, c := range dockerfileChecks {
		if err := c.check(d); err != nil {
			failed[c.name] = err
		}
	}
	return failed
}

// image is what the deployment files may rely on in the image.
type builtImage struct {
	entrypoint     string            // the binary, as ACI's command must name it
	env            map[string]string // ENV of the final stage
	netBindService bool              // the binary may bind ports below 1024 as non-root
}

// imageOf parses a Dockerfile text and reports what the image provides;
// the 443 provision only when the port443 check passes.
func imageOf(t *testing.T, text string) builtImage {
	t.Helper()
	d, err := newDockerfile(text)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	failed := runDockerfileChecks(d)
	img := builtImage{env: d.env(), netBindService: failed["port443"] == nil}
	if d.binary != nil {
		img.entrypoint = d.binary.image
	}
	return img
}

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseDockerfile(t *testing.T) {
	stages, err := parseDockerfile(`# syntax=docker/dockerfile:1
FROM golang AS build
RUN a \
 # a comment inside a continuation
 && b \

 && c
from scratch
COPY --from=build /x /y
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].name != "build" || stages[1].name != "1" {
		t.Fatalf("stages = %+v, want build and 1", stages)
	}
	run := stages[0].ins[1]
	if run.cmd != "RUN" || strings.Join(strings.Fields(run.args), " ") != "a && b && c" || run.line != 3 {
		t.Errorf("RUN = %+v, want the three lines joined, at line 3", run)
	}
	if in := stages[1].ins[1]; in.cmd != "COPY" || in.args != "--from=build /x /y" {
		t.Errorf("second stage's COPY = %+v", in)
	}
	for _, bad := range []string{"RUN x\n", "FROM a\nRUN x \\\n"} {
		if _, err := parseDockerfile(bad); err == nil {
			t.Errorf("parseDockerfile(%q) = nil error, want one", bad)
		}
	}
}

// TestDockerfile: the shipped Dockerfile passes every check.
func TestDockerfile(t *testing.T) {
	d, err := newDockerfile(readDockerfile(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range runDockerfileChecks(d) {
		t.Errorf("Dockerfile check %s: %v", name, err)
	}
	if img := imageOf(t, readDockerfile(t)); !img.netBindService || img.entrypoint != "/usr/local/bin/scoregate" {
		t.Errorf("image = %+v, want the 443 provision on /usr/local/bin/scoregate", img)
	}
}

// TestDockerfileChecksCatch: each check fails on a copy of the Dockerfile
// broken in the way it guards against, and no other check does.
func TestDockerfileChecksCatch(t *testing.T) {
	orig := readDockerfile(t)
	const (
		binCopy = "COPY --from=build /out/scoregate /usr/local/bin/scoregate"
		setcap  = " \\\n && setcap cap_net_bind_service=+ep /out/scoregate"
	)
	for _, tt := range []struct {
		name, old, new, want string
	}{
		{"user name", "USER 65532:65532", "USER nonroot:nonroot", "user"},
		{"user root", "USER 65532:65532", "USER 0:0", "user"},
		{"no user", "USER 65532:65532\n", "", "user"},
		{"cgo", "CGO_ENABLED=0 ", "", "static"},
		{"no trimpath", "-trimpath ", "", "trimpath"},
		{"shell-form entrypoint", `ENTRYPOINT ["/usr/local/bin/scoregate"]`, "ENTRYPOINT /usr/local/bin/scoregate", "entrypoint"},
		{"entrypoint names another file", `ENTRYPOINT ["/usr/local/bin/scoregate"]`, `ENTRYPOINT ["/bin/scoregate"]`, "entrypoint"},
		{"no setcap", setcap, "", "port443"},
		{"setcap on another file", "setcap cap_net_bind_service=+ep /out/scoregate \\", "setcap cap_net_bind_service=+ep /out/other \\", "port443"},
		{"another capability", "setcap cap_net_bind_service=+ep /out/scoregate \\", "setcap cap_net_raw=+ep /out/scoregate \\", "port443"},
		{"copy with chown", binCopy, "COPY --from=build --chown=65532:65532 /out/scoregate /usr/local/bin/scoregate", "port443"},
		{"copy with link", binCopy, "COPY --link --from=build /out/scoregate /usr/local/bin/scoregate", "port443"},
		{"443 not exposed", "EXPOSE 443 80", "EXPOSE 80", "expose"},
		{"metrics port not exposed", "8443 9464\n", "8443\n", "expose"},
		{"metrics moved, EXPOSE not", "SCOREGATE_METRICS_LISTEN=:9464", "SCOREGATE_METRICS_LISTEN=:9465", "expose"},
		{"metrics on loopback", "SCOREGATE_METRICS_LISTEN=:9464", "SCOREGATE_METRICS_LISTEN=127.0.0.1:9464", "metrics"},
		{"no metrics env", "ENV SCOREGATE_METRICS_LISTEN=:9464\n", "", "metrics"},
		{"storage root-owned", "COPY --from=build --chown=65532:65532 /out/var/lib/scoregate", "COPY --from=build /out/var/lib/scoregate", "storage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Count(orig, tt.old) != 1 {
				t.Fatalf("the Dockerfile has %d copies of %q, want 1: update the mutation", strings.Count(orig, tt.old), tt.old)
			}
			d, err := newDockerfile(strings.Replace(orig, tt.old, tt.new, 1))
			if err != nil {
				t.Fatal(err)
			}
			failed := runDockerfileChecks(d)
			if failed[tt.want] == nil {
				t.Errorf("check %s passed, want it to fail", tt.want)
			}
			for name, err := range failed {
				if name != tt.want {
					t.Errorf("check %s failed too: %v", name, err)
				}
			}
		})
	}
}
