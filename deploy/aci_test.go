package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/scoregate/scoregate/certs"
)

// otherRegion returns a known Azure region that is not r.
func otherRegion(r string) string {
	if r == "northeurope" {
		return "westeurope"
	}
	return "northeurope"
}

// The ACI container-group YAML schema (az container create --file), API
// version 2021-10-01: the fields these files use plus the common ones.
// Decoding is strict, so a misspelt or unknown field fails.
type aciContainerGroup struct {
	APIVersion string             `yaml:"apiVersion"`
	Location   string             `yaml:"location"`
	Name       string             `yaml:"name"`
	Type       string             `yaml:"type"`
	Tags       map[string]string  `yaml:"tags"`
	Properties aciGroupProperties `yaml:"properties"`
}

type aciGroupProperties struct {
	OSType                   string                  `yaml:"osType"`
	RestartPolicy            string                  `yaml:"restartPolicy"`
	IPAddress                *aciIPAddress           `yaml:"ipAddress"`
	Containers               []aciContainer          `yaml:"containers"`
	ImageRegistryCredentials []aciRegistryCredential `yaml:"imageRegistryCredentials"`
	Volumes                  []aciVolume             `yaml:"volumes"`
}

type aciIPAddress struct {
	Type         string    `yaml:"type"`
	IP           string    `yaml:"ip"`
	DNSNameLabel string    `yaml:"dnsNameLabel"`
	Ports        []aciPort `yaml:"ports"`
}

type aciPort struct {
	Protocol string `yaml:"protocol"`
	Port     int    `yaml:"port"`
}

type aciRegistryCredential struct {
	Server   string `yaml:"server"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

type aciContainer struct {
	Name       string                 `yaml:"name"`
	Properties aciContainerProperties `yaml:"properties"`
}

type aciContainerProperties struct {
	Image                string           `yaml:"image"`
	Command              []string         `yaml:"command"`
	Ports                []aciPort        `yaml:"ports"`
	EnvironmentVariables []aciEnvVar      `yaml:"environmentVariables"`
	Resources            aciResources     `yaml:"resources"`
	VolumeMounts         []aciVolumeMount `yaml:"volumeMounts"`
	ReadinessProbe       *aciProbe        `yaml:"readinessProbe"`
	LivenessProbe        *aciProbe        `yaml:"livenessProbe"`
}

type aciEnvVar struct {
	Name        string `yaml:"name"`
	Value       string `yaml:"value"`
	SecureValue string `yaml:"secureValue"`
}

type aciResources struct {
	Requests aciResourceAmounts  `yaml:"requests"`
	Limits   *aciResourceAmounts `yaml:"limits"`
}

type aciResourceAmounts struct {
	CPU        float64 `yaml:"cpu"`
	MemoryInGB float64 `yaml:"memoryInGB"`
}

type aciVolumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type aciProbe struct {
	Exec                *struct{ Command []string } `yaml:"exec"`
	HTTPGet             *aciHTTPGet                 `yaml:"httpGet"`
	InitialDelaySeconds int                         `yaml:"initialDelaySeconds"`
	PeriodSeconds       int                         `yaml:"periodSeconds"`
	FailureThreshold    int                         `yaml:"failureThreshold"`
	SuccessThreshold    int                         `yaml:"successThreshold"`
	TimeoutSeconds      int                         `yaml:"timeoutSeconds"`
}

type aciHTTPGet struct {
	Path   string `yaml:"path"`
	Port   int    `yaml:"port"`
	Scheme string `yaml:"scheme"`
}

type aciVolume struct {
	Name      string            `yaml:"name"`
	Secret    map[string]string `yaml:"secret"`    // file name → base64 content
	AzureFile *aciAzureFile     `yaml:"azureFile"` // an Azure Files share
	EmptyDir  *struct{}         `yaml:"emptyDir"`
}

type aciAzureFile struct {
	ShareName          string `yaml:"shareName"`
	StorageAccountName string `yaml:"storageAccountName"`
	StorageAccountKey  string `yaml:"storageAccountKey"`
	ReadOnly           bool   `yaml:"readOnly"`
}

func decodeACIGroup(b []byte) (*aciContainerGroup, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var g aciContainerGroup
	if err := dec.Decode(&g); err != nil {
		return nil, err
	}
	return &g, nil
}

var aciFiles = []string{"aci/own-cert.yaml", "aci/acme.yaml"}

func readACIGroup(t *testing.T, file string) *aciContainerGroup {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	g, err := decodeACIGroup(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return g
}

// aciGroup is a container group with scoregate's command line read.
type aciGroup struct {
	g        *aciContainerGroup
	sg       *aciContainerProperties // the container named scoregate
	img      builtImage
	known    map[string]string // serve's flags and their type words
	defaults map[string]string
	flags    map[string]string // given on the command line; booleans as "true"
	env      map[string]string // SCOREGATE_* in environmentVariables
	flagErrs []error
}

func newACIGroup(g *aciContainerGroup, img builtImage, known, defaults map[string]string) (*aciGroup, error) {
	a := &aciGroup{g: g, img: img, known: known, defaults: defaults, flags: map[string]string{}, env: map[string]string{}}
	for i := range g.Properties.Containers {
		if c := &g.Properties.Containers[i]; c.Name == "scoregate" {
			a.sg = &c.Properties
		}
	}
	if a.sg == nil {
		return nil, errors.New("no container named scoregate")
	}
	// The binary and "serve" are the command check's business.
	args := a.sg.Command
	if i := slices.Index(args, "serve"); i >= 0 {
		args = args[i+1:]
	}
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		typ, ok := known[name]
		switch {
		case !strings.HasPrefix(args[i], "-"):
			a.flagErrs = append(a.flagErrs, fmt.Errorf("argument %q: serve takes flags only", args[i]))
			continue
		case !ok:
			a.flagErrs = append(a.flagErrs, fmt.Errorf("%s: serve has no flag --%s%s", args[i], name, didYouMean(name, known)))
			continue
		case typ == "" && !hasVal:
			val = "true"
		case typ == "":
			if _, err := strconv.ParseBool(val); err != nil {
				a.flagErrs = append(a.flagErrs, fmt.Errorf("%s: --%s is a boolean", args[i], name))
			}
		case !hasVal && i+1 < len(args):
			i++
			val = args[i]
		case !hasVal:
			a.flagErrs = append(a.flagErrs, fmt.Errorf("%s: needs a value", args[i]))
		}
		a.flags[name] = val
	}
	for _, e := range a.sg.EnvironmentVariables {
		if strings.HasPrefix(e.Name, "SCOREGATE_") {
			a.env[e.Name] = e.Value
			if _, ok := known[envFlag(e.Name)]; !ok {
				a.flagErrs = append(a.flagErrs, fmt.Errorf("%s sets no serve flag (--%s)%s", e.Name, envFlag(e.Name), didYouMean(envFlag(e.Name), known)))
			}
		}
	}
	return a, nil
}

// value returns what scoregate runs with for a flag, as scoregate picks
// it: the command line, then the container's environment, then the
// image's, then the flag's default. given says whether the files set it.
func (a *aciGroup) value(name string) (v string, given bool) {
	env := "SCOREGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if v, ok := a.flags[name]; ok {
		return v, true
	}
	if v, ok := a.env[env]; ok && v != "" {
		return v, true
	}
	if v, ok := a.img.env[env]; ok && v != "" {
		return v, false
	}
	return a.defaults[name], false
}

// boundPorts returns the ports scoregate listens on for clients, by flag.
func (a *aciGroup) boundPorts() (map[string]int, error) {
	ports := map[string]int{}
	for _, f := range []string{"listen", "http-listen"} {
		addr, _ := a.value(f)
		if addr == "" {
			continue
		}
		p, err := addrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("--%s=%s: %v", f, addr, err)
		}
		ports[f] = p
	}
	return ports, nil
}

func addrPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

func hasACIPort(ports []aciPort, p int) bool {
	return slices.ContainsFunc(ports, func(x aciPort) bool { return x.Port == p && (x.Protocol == "" || x.Protocol == "TCP") })
}

func (a *aciGroup) volume(name string) *aciVolume {
	for i, v := range a.g.Properties.Volumes {
		if v.Name == name {
			return &a.g.Properties.Volumes[i]
		}
	}
	return nil
}

// mountOf returns scoregate's volume mount that holds file, and the file's
// path inside it.
func (a *aciGroup) mountOf(file string) (*aciVolumeMount, string) {
	file = path.Clean(file)
	for i, m := range a.sg.VolumeMounts {
		dir := path.Clean(m.MountPath)
		if rel, ok := strings.CutPrefix(file, dir); ok && (rel == "" || strings.HasPrefix(rel, "/")) {
			return &a.sg.VolumeMounts[i], strings.TrimPrefix(rel, "/")
		}
	}
	return nil, ""
}

// fileFlags are the flags that name files or directories scoregate reads.
// (--storage, a directory, is the storage check's.)
var aciFileFlags = []string{"ssl-cert-pem-file", "ssl-key-pem-file", "auth-key-file", "ca-file", "acme-ca-root"}

const aciModelPort = 5001 // the Azure ML inference server's port

// aciChecks are the promises each container-group file keeps, by name.
var aciChecks = []struct {
	name  string
	check func(a *aciGroup) error
}{
	{"api", func(a *aciGroup) error {
		switch {
		case a.g.APIVersion < "2021-10-01":
			return fmt.Errorf("apiVersion %q: want 2021-10-01 or newer", a.g.APIVersion)
		case a.g.Properties.OSType != "Linux":
			return fmt.Errorf("osType %q: want Linux (multi-container groups are Linux only)", a.g.Properties.OSType)
		case a.g.Type != "" && a.g.Type != "Microsoft.ContainerInstance/containerGroups":
			return fmt.Errorf("type %q: want Microsoft.ContainerInstance/containerGroups", a.g.Type)
		case a.g.Location == "" || a.g.Name == "":
			return errors.New("location and name are required")
		}
		if err := certs.CheckRegion(a.g.Location); err != nil {
			return fmt.Errorf("location: %v (ACI names are <label>.<location>.azurecontainer.io: the region's short name)", err)
		}
		return nil
	}},
	{"command", func(a *aciGroup) error {
		// ACI's command replaces the image's ENTRYPOINT.
		if c := a.sg.Command; len(c) < 2 || c[0] != a.img.entrypoint || c[1] != "serve" {
			return fmt.Errorf("command %q: want [%s serve ...]", c, a.img.entrypoint)
		}
		return nil
	}},
	{"flags", func(a *aciGroup) error { return errors.Join(a.flagErrs...) }},
	{"cname", func(a *aciGroup) error {
		cname, _ := a.value("ssl-cname")
		if dev, _ := a.value("dev"); dev == "true" {
			return nil
		}
		if cname == "" {
			return errors.New("no --ssl-cname (nor SCOREGATE_SSL_CNAME): set the name clients use")
		}
		if err := checkHostName(cname); err != nil {
			return fmt.Errorf("--ssl-cname=%q: %v", cname, err)
		}
		return nil
	}},
	{"files", func(a *aciGroup) error {
		var errs []error
		for _, c := range a.g.Properties.Containers {
			for _, m := range c.Properties.VolumeMounts {
				if a.volume(m.Name) == nil {
					errs = append(errs, fmt.Errorf("container %s mounts volume %q, which the group does not have", c.Name, m.Name))
				}
			}
		}
		for _, f := range aciFileFlags {
			file, given := a.value(f)
			if !given || file == "" {
				continue
			}
			m, rel := a.mountOf(file)
			if m == nil {
				errs = append(errs, fmt.Errorf("--%s=%s is on no volume mount of scoregate", f, file))
				continue
			}
			v := a.volume(m.Name)
			if v == nil {
				continue // reported above
			}
			if _, ok := v.Secret[rel]; v.Secret != nil && rel != "" && !ok {
				errs = append(errs, fmt.Errorf("--%s=%s: secret volume %s has no entry %q", f, file, v.Name, rel))
			}
		}
		return errors.Join(errs...)
	}},
	{"storage", func(a *aciGroup) error {
		dir, given := a.value("storage")
		if _, acme := a.flags["acme"]; !acme && !given {
			return nil
		}
		m, _ := a.mountOf(dir)
		if m == nil {
			return fmt.Errorf("--storage=%s is on no volume mount of scoregate: ACME accounts and certificates would be lost on restart", dir)
		}
		v := a.volume(m.Name)
		if v == nil {
			return nil // the files check reports it
		}
		if v.AzureFile == nil || v.AzureFile.ReadOnly || m.ReadOnly {
			return fmt.Errorf("--storage=%s: want a writable Azure Files volume (persistent and shared)", dir)
		}
		return nil
	}},
	{"probes", func(a *aciGroup) error {
		addr, _ := a.value("metrics-listen")
		p, err := addrPort(addr)
		if err != nil {
			return fmt.Errorf("--metrics-listen=%q: %v", addr, err)
		}
		if host, _, _ := net.SplitHostPort(addr); host != "" && !net.ParseIP(host).IsUnspecified() {
			return fmt.Errorf("--metrics-listen=%s: probes cannot reach it; listen on all interfaces", addr)
		}
		var errs []error
		for _, pr := range []struct {
			kind, path string
			p          *aciProbe
		}{{"readinessProbe", "/readyz", a.sg.ReadinessProbe}, {"livenessProbe", "/healthz", a.sg.LivenessProbe}} {
			switch {
			case pr.p == nil || pr.p.HTTPGet == nil:
				errs = append(errs, fmt.Errorf("scoregate has no %s httpGet", pr.kind))
			case pr.p.HTTPGet.Port != p || pr.p.HTTPGet.Path != pr.path:
				errs = append(errs, fmt.Errorf("%s: GET %s on port %d, want %s on %d (--metrics-listen)", pr.kind, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, p))
			}
		}
		return errors.Join(errs...)
	}},
	{"listen", func(a *aciGroup) error {
		ports, err := a.boundPorts()
		if err != nil {
			return err
		}
		var errs []error
		for f, p := range ports {
			if !hasACIPort(a.sg.Ports, p) {
				errs = append(errs, fmt.Errorf("--%s port %d is not among scoregate's ports", f, p))
			}
			if a.g.Properties.IPAddress == nil || !hasACIPort(a.g.Properties.IPAddress.Ports, p) {
				errs = append(errs, fmt.Errorf("--%s port %d is not in ipAddress.ports: clients cannot reach it", f, p))
			}
		}
		return errors.Join(errs...)
	}},
	{"model", func(a *aciGroup) error {
		backend, _ := a.value("backend")
		u, err := url.Parse(backend)
		if err != nil {
			return fmt.Errorf("--backend=%s: %v", backend, err)
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
			return fmt.Errorf("--backend=%s: the model is in the same group, at 127.0.0.1", backend)
		}
		p, _ := strconv.Atoi(u.Port())
		for _, private := range []int{p, aciModelPort} {
			if ip := a.g.Properties.IPAddress; ip != nil && hasACIPort(ip.Ports, private) {
				return fmt.Errorf("the model's port %d is in ipAddress.ports: clients could bypass scoregate", private)
			}
		}
		return nil
	}},
	{"lowports", func(a *aciGroup) error {
		ports, err := a.boundPorts()
		if err != nil {
			return nil // the listen check reports it
		}
		for f, p := range ports {
			if p < 1024 && !a.img.netBindService {
				return fmt.Errorf("--%s port %d: the image gives uid 65532 no cap_net_bind_service, and ACI has no port mapping", f, p)
			}
		}
		return nil
	}},
	{"acme", func(a *aciGroup) error {
		if _, acme := a.flags["acme"]; !acme {
			return nil
		}
		ip := a.g.Properties.IPAddress
		if ip == nil {
			return errors.New("--acme without a public IP")
		}
		// The group's own name, or yours with a CNAME to it (HTTP-01
		// and TLS-ALPN-01 follow the CNAME); a cloudapp.azure.com name
		// is a public IP's, never a container group's.
		cname, _ := a.value("ssl-cname")
		own := ip.DNSNameLabel + "." + a.g.Location + ".azurecontainer.io"
		switch {
		case a.flags["leaf-domain-label"] != "":
			return errors.New("--leaf-domain-label makes a cloudapp.azure.com name; ACI's is azurecontainer.io")
		case strings.HasSuffix(cname, ".azurecontainer.io") && cname != own:
			return fmt.Errorf("--ssl-cname=%s: want %s, the name ACI publishes for dnsNameLabel %q in %s", cname, own, ip.DNSNameLabel, a.g.Location)
		case strings.HasSuffix(cname, ".cloudapp.azure.com"):
			return fmt.Errorf("--ssl-cname=%s: a cloudapp.azure.com name is a public IP's; the group's is %s (or your own name with a CNAME to it)", cname, own)
		}
		if p, err := addrPort(a.flags["http-listen"]); err != nil || p != 80 || !hasACIPort(ip.Ports, 80) {
			return fmt.Errorf("--http-listen=%q: HTTP-01 challenges come to port 80 of the name: want :80, exposed", a.flags["http-listen"])
		}
		return nil
	}},
	{"dns", func(a *aciGroup) error {
		ip := a.g.Properties.IPAddress
		if ip == nil || ip.Type != "Public" || !regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`).MatchString(ip.DNSNameLabel) {
			return errors.New("want a Public ipAddress with a dnsNameLabel (lower-case letters, digits, hyphens): CNAME your name to it")
		}
		return nil
	}},
	{"resources", func(a *aciGroup) error {
		var total aciResourceAmounts
		for _, c := range a.g.Properties.Containers {
			total.CPU += c.Properties.Resources.Requests.CPU
			total.MemoryInGB += c.Properties.Resources.Requests.MemoryInGB
		}
		var errs []error
		for _, c := range a.g.Properties.Containers {
			req, lim := c.Properties.Resources.Requests, c.Properties.Resources.Limits
			switch {
			case req.CPU <= 0 || req.MemoryInGB <= 0:
				errs = append(errs, fmt.Errorf("container %s: requests need cpu and memoryInGB", c.Name))
			case lim == nil:
				errs = append(errs, fmt.Errorf("container %s: no limits", c.Name))
			case lim.CPU < req.CPU || lim.MemoryInGB < req.MemoryInGB:
				errs = append(errs, fmt.Errorf("container %s: limits %+v below requests %+v", c.Name, *lim, req))
			case lim.CPU > total.CPU || lim.MemoryInGB > total.MemoryInGB:
				// ACI refuses it: ContainerLimitGreaterThanContainerGroupTotalRequest.
				errs = append(errs, fmt.Errorf("container %s: limits %+v above the group's total request %+v", c.Name, *lim, total))
			}
		}
		return errors.Join(errs...)
	}},
	{"registry", func(a *aciGroup) error {
		var errs []error
		for _, c := range a.g.Properties.Containers {
			host, _, ok := strings.Cut(c.Properties.Image, "/")
			if !ok || !strings.ContainsAny(host, ".:") {
				continue // Docker Hub
			}
			if !slices.ContainsFunc(a.g.Properties.ImageRegistryCredentials, func(r aciRegistryCredential) bool {
				return r.Server == host && r.Username != "" && r.Password != ""
			}) {
				errs = append(errs, fmt.Errorf("container %s: no imageRegistryCredentials for %s", c.Name, host))
			}
		}
		return errors.Join(errs...)
	}},
}

// checkACIFile runs every check on one container-group file.
func checkACIFile(file string, in *ruleInputs) []finding {
	b, err := os.ReadFile(file)
	if err != nil {
		return []finding{{file, "read", err.Error()}}
	}
	g, err := decodeACIGroup(b)
	if err != nil {
		return []finding{{file, "decode", err.Error()}}
	}
	a, err := newACIGroup(g, in.img, in.flags, in.defaults)
	if err != nil {
		return []finding{{file, "command", err.Error()}}
	}
	var fs []finding
	failed := runACIChecks(a)
	for _, c := range aciChecks {
		if err := failed[c.name]; err != nil {
			fs = append(fs, finding{file, c.name, err.Error()})
		}
	}
	return fs
}

func runACIChecks(a *aciGroup) map[string]error {
	failed := map[string]error{}
	for _, c := range aciChecks {
		if err := c.check(a); err != nil {
			failed[c.name] = err
		}
	}
	return failed
}

// TestACIShipped: what each shipped variant is for. (The rules themselves
// run in TestDeployRules.)
func TestACIShipped(t *testing.T) {
	img, known, defaults := imageOf(t, readDockerfile(t)), serveFlags(t), serveDefaults(t)
	own, err := newACIGroup(readACIGroup(t, "aci/own-cert.yaml"), img, known, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if own.flags["auth-key-file"] == "" || own.flags["ssl-cert-pem-file"] == "" {
		t.Errorf("own-cert.yaml: flags %v, want the PEM files and the auth key file", own.flags)
	}
	acme, err := newACIGroup(readACIGroup(t, "aci/acme.yaml"), img, known, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if acme.flags["acme"] != "true" || acme.flags["storage"] == "" {
		t.Errorf("acme.yaml: flags %v, want --acme and --storage", acme.flags)
	}
}

// step5Curl is the health check of deploy/aci/README.md's step 5.
var step5Curl = regexp.MustCompile(`(?m)^\s*curl [^\n]*https://[^\s/]+/\s`)

// TestACIHealthCurl: the README's health curl works on the shipped files
// as they are: where keys are on, GET / is exempt (--auth-exempt-health),
// or the curl sends a key.
func TestACIHealthCurl(t *testing.T) {
	b, err := os.ReadFile("aci/README.md")
	if err != nil {
		t.Fatal(err)
	}
	curls := step5Curl.FindAllString(string(b), -1)
	if len(curls) == 0 {
		t.Fatal("aci/README.md has no `curl https://NAME/` health check")
	}
	sendsKey := !slices.ContainsFunc(curls, func(c string) bool { return !strings.Contains(c, "Authorization: Bearer") })
	img, known, defaults := imageOf(t, readDockerfile(t)), serveFlags(t), serveDefaults(t)
	for _, file := range aciFiles {
		a, err := newACIGroup(readACIGroup(t, file), img, known, defaults)
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := a.value("auth-key-file")
		exempt, _ := a.value("auth-exempt-health")
		if keys != "" && exempt != "true" && !sendsKey {
			t.Errorf("%s turns keys on (--auth-key-file) without --auth-exempt-health, and aci/README.md's %q sends no key: it would answer 401", file, curls)
		}
	}
}

// TestACIStrictDecoding: a misspelt or unknown field fails to decode.
func TestACIStrictDecoding(t *testing.T) {
	for _, file := range aciFiles {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ old, new string }{
			{"dnsNameLabel:", "dnsNamelabel:"},
			{"readinessProbe:", "readinesProbe:"},
			{"memoryInGB:", "memoryInGb:"},
			{"restartPolicy:", "restartPolcy:"},
			{"    - name: scoregate\n      properties:\n", "    - name: scoregate\n      properties:\n        imagePullPolicy: Always\n"}, // Kubernetes', not ACI's
		} {
			if !bytes.Contains(b, []byte(tt.old)) {
				t.Fatalf("%s has no %q: update the mutation", file, tt.old)
			}
			if _, err := decodeACIGroup(bytes.Replace(b, []byte(tt.old), []byte(tt.new), 1)); err == nil {
				t.Errorf("%s with %q decoded without error, want an unknown-field error", file, tt.new)
			}
		}
	}
}

func aciScoregate(g *aciContainerGroup) *aciContainerProperties {
	for i := range g.Properties.Containers {
		if g.Properties.Containers[i].Name == "scoregate" {
			return &g.Properties.Containers[i].Properties
		}
	}
	panic("no scoregate container")
}

// setFlag replaces (or, if absent, appends) the command's --name argument;
// an empty arg removes it.
func setACIFlag(g *aciContainerGroup, name, arg string) {
	sg := aciScoregate(g)
	cmd := slices.DeleteFunc(sg.Command, func(a string) bool {
		return a == "--"+name || strings.HasPrefix(a, "--"+name+"=")
	})
	if arg != "" {
		cmd = append(cmd, arg)
	}
	sg.Command = cmd
}

// TestACIChecksCatch: each check fails on a copy of a file broken in the
// way it guards against, and no other check does.
func TestACIChecksCatch(t *testing.T) {
	known, defaults := serveFlags(t), serveDefaults(t)
	good := imageOf(t, readDockerfile(t))
	noCap := imageOf(t, strings.Replace(readDockerfile(t), "setcap cap_net_bind_service=+ep /out/scoregate \\", "true \\", 1))
	if noCap.netBindService {
		t.Fatal("the Dockerfile without setcap still reports the 443 provision")
	}
	const own, acme, both = "aci/own-cert.yaml", "aci/acme.yaml", ""
	for _, tt := range []struct {
		name, file string
		img        *builtImage
		mutate     func(g *aciContainerGroup)
		want       string
	}{
		{"old api version", both, nil, func(g *aciContainerGroup) { g.APIVersion = "2019-12-01" }, "api"},
		{"windows", both, nil, func(g *aciContainerGroup) { g.Properties.OSType = "Windows" }, "api"},
		{"entrypoint not named", both, nil, func(g *aciContainerGroup) { sg := aciScoregate(g); sg.Command = sg.Command[1:] }, "command"},
		{"other binary", both, nil, func(g *aciContainerGroup) { aciScoregate(g).Command[0] = "/scoregate" }, "command"},
		{"unknown flag", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "nope", "--nope=1") }, "flags"},
		{"boolean with a value", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "access-log", "--access-log=yes") }, "flags"},
		{"value missing", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "log-level", "--log-level") }, "flags"},
		{"unknown env", both, nil, func(g *aciContainerGroup) {
			sg := aciScoregate(g)
			sg.EnvironmentVariables = append(sg.EnvironmentVariables, aciEnvVar{Name: "SCOREGATE_NOPE", Value: "1"})
		}, "flags"},
		{"cert outside mounts", own, nil, func(g *aciContainerGroup) {
			setACIFlag(g, "ssl-cert-pem-file", "--ssl-cert-pem-file=/etc/tls/fullchain.pem")
		}, "files"},
		{"ca file outside mounts", own, nil, func(g *aciContainerGroup) { setACIFlag(g, "ca-file", "--ca-file=/etc/ssl/ca.pem") }, "files"},
		{"secret entry missing", own, nil, func(g *aciContainerGroup) { delete(g.Properties.Volumes[0].Secret, "key.pem") }, "files"},
		{"auth key via env, not mounted", own, nil, func(g *aciContainerGroup) {
			setACIFlag(g, "auth-key-file", "")
			sg := aciScoregate(g)
			sg.EnvironmentVariables = append(sg.EnvironmentVariables, aciEnvVar{Name: "SCOREGATE_AUTH_KEY_FILE", Value: "/keys/auth"})
		}, "files"},
		{"volume missing", both, nil, func(g *aciContainerGroup) { g.Properties.Volumes[0].Name = "other" }, "files"},
		{"storage read-only", acme, nil, func(g *aciContainerGroup) { g.Properties.Volumes[0].AzureFile.ReadOnly = true }, "storage"},
		{"storage not on a volume", acme, nil, func(g *aciContainerGroup) { setACIFlag(g, "storage", "--storage=/tmp/acme") }, "storage"},
		{"probe on another port", both, nil, func(g *aciContainerGroup) { aciScoregate(g).ReadinessProbe.HTTPGet.Port = 8080 }, "probes"},
		{"liveness on readyz", both, nil, func(g *aciContainerGroup) { aciScoregate(g).LivenessProbe.HTTPGet.Path = "/readyz" }, "probes"},
		{"no liveness probe", both, nil, func(g *aciContainerGroup) { aciScoregate(g).LivenessProbe = nil }, "probes"},
		{"metrics moved", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "metrics-listen", "--metrics-listen=:9465") }, "probes"},
		{"metrics on loopback by default", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "metrics-listen", "") }, ""}, // the image's :9464 holds
		{"metrics on loopback", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "metrics-listen", "--metrics-listen=127.0.0.1:9464") }, "probes"},
		{"listen port not exposed", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "listen", "--listen=:8443") }, "listen"},
		{"443 not in the group", both, nil, func(g *aciContainerGroup) { g.Properties.IPAddress.Ports = g.Properties.IPAddress.Ports[1:] }, "listen"},
		{"443 not on the container", both, nil, func(g *aciContainerGroup) { sg := aciScoregate(g); sg.Ports = sg.Ports[1:] }, "listen"},
		{"model exposed", both, nil, func(g *aciContainerGroup) {
			g.Properties.IPAddress.Ports = append(g.Properties.IPAddress.Ports, aciPort{"TCP", 5001})
			g.Properties.Containers[0].Properties.Ports = []aciPort{{"TCP", 5001}}
		}, "model"},
		{"backend outside the group", both, nil, func(g *aciContainerGroup) { setACIFlag(g, "backend", "--backend=http://10.0.0.4:5001") }, "model"},
		{"443 without the capability", both, &noCap, func(*aciContainerGroup) {}, "lowports"},
		{"8443 without the capability", own, &noCap, func(g *aciContainerGroup) {
			setACIFlag(g, "listen", "--listen=:8443")
			g.Properties.IPAddress.Ports[0].Port = 8443
			aciScoregate(g).Ports[0].Port = 8443
		}, ""},
		{"cloudapp name", acme, nil, func(g *aciContainerGroup) {
			setACIFlag(g, "ssl-cname", "--ssl-cname="+g.Properties.IPAddress.DNSNameLabel+"."+g.Location+".cloudapp.azure.com")
		}, "acme"},
		{"own name, CNAME to the group", acme, nil, func(g *aciContainerGroup) { setACIFlag(g, "ssl-cname", "--ssl-cname=score.example.com") }, ""},
		{"label mismatch", acme, nil, func(g *aciContainerGroup) { g.Properties.IPAddress.DNSNameLabel += "2" }, "acme"},
		{"region mismatch", acme, nil, func(g *aciContainerGroup) { g.Location = otherRegion(g.Location) }, "acme"},
		{"unknown region", both, nil, func(g *aciContainerGroup) {
			setACIFlag(g, "ssl-cname", "--ssl-cname=score.example.com")
			g.Location = "westeurop"
		}, "api"},
		{"no name", own, nil, func(g *aciContainerGroup) { setACIFlag(g, "ssl-cname", "") }, "cname"},
		{"name as a URL", own, nil, func(g *aciContainerGroup) { setACIFlag(g, "ssl-cname", "--ssl-cname=https://score.example.com") }, "cname"},
		{"name from the environment", own, nil, func(g *aciContainerGroup) {
			setACIFlag(g, "ssl-cname", "")
			sg := aciScoregate(g)
			sg.EnvironmentVariables = append(sg.EnvironmentVariables, aciEnvVar{Name: "SCOREGATE_SSL_CNAME", Value: "score.example.com"})
		}, ""},
		{"no http-01 listener", acme, nil, func(g *aciContainerGroup) { setACIFlag(g, "http-listen", "") }, "acme"},
		{"http-01 listener on 8080", acme, nil, func(g *aciContainerGroup) {
			g.Properties.IPAddress.Ports[1].Port = 8080
			aciScoregate(g).Ports[1].Port = 8080
			setACIFlag(g, "http-listen", "--http-listen=:8080")
		}, "acme"},
		{"no dns label", own, nil, func(g *aciContainerGroup) { g.Properties.IPAddress.DNSNameLabel = "" }, "dns"},
		{"private ip", own, nil, func(g *aciContainerGroup) { g.Properties.IPAddress.Type = "Private" }, "dns"},
		{"no limits", both, nil, func(g *aciContainerGroup) { aciScoregate(g).Resources.Limits = nil }, "resources"},
		{"limit below request", both, nil, func(g *aciContainerGroup) { aciScoregate(g).Resources.Limits.MemoryInGB = 0.25 }, "resources"},
		{"limit above the group", both, nil, func(g *aciContainerGroup) { g.Properties.Containers[0].Properties.Resources.Limits.CPU = 4 }, "resources"},
		{"no registry credentials", both, nil, func(g *aciContainerGroup) { g.Properties.ImageRegistryCredentials = nil }, "registry"},
		{"credentials for another registry", both, nil, func(g *aciContainerGroup) { g.Properties.ImageRegistryCredentials[0].Server = "other.azurecr.io" }, "registry"},
	} {
		files := aciFiles
		if tt.file != both {
			files = []string{tt.file}
		}
		for _, file := range files {
			t.Run(tt.name+"/"+path.Base(file), func(t *testing.T) {
				g := readACIGroup(t, file)
				tt.mutate(g)
				img := good
				if tt.img != nil {
					img = *tt.img
				}
				a, err := newACIGroup(g, img, known, defaults)
				if err != nil {
					t.Fatal(err)
				}
				failed := runACIChecks(a)
				if tt.want != "" && failed[tt.want] == nil {
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
}
