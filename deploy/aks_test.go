package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The AKS manifests are Kustomize aksOverlays over one base. The tests build
// each overlay exactly as `kubectl apply -k` would, decode every object
// strictly into the Kubernetes API types (or, for the CRDs, into the local
// structs below), and run the aksChecks: each check is a function returning
// its problems, and TestAKSChecksCatch proves that each one fires on a
// copy broken on purpose.

var aksOverlays = []string{"own-cert", "acme", "cert-manager"}

// aksBuild runs kustomize on deploy/aks/overlays/<name> with the default
// options (files only from within each kustomization's directory) and
// returns one YAML document per object.
func aksBuild(t *testing.T, overlay string) [][]byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), "aks/overlays/"+overlay)
	if err != nil {
		t.Fatalf("kustomize build aks/overlays/%s: %v", overlay, err)
	}
	var docs [][]byte
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatalf("aks/overlays/%s: %s: %v", overlay, r.CurId(), err)
		}
		docs = append(docs, b)
	}
	return docs
}

// The CRDs, as far as the manifests use them. Decoding is strict, so a
// field not mirrored here fails the test instead of passing unchecked.
type (
	podMonitor struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Selector            metav1.LabelSelector `json:"selector"`
			PodMetricsEndpoints []struct {
				Port     string `json:"port"`
				Path     string `json:"path"`
				Interval string `json:"interval"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	prometheusRule struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              ruleFile `json:"spec"`
	}
	// ruleFile is deploy/alerts.yaml and a PrometheusRule's spec.
	ruleFile struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	}
	certificate struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			SecretName string   `json:"secretName"`
			DNSNames   []string `json:"dnsNames"`
			IssuerRef  struct {
				Name  string `json:"name"`
				Kind  string `json:"kind"`
				Group string `json:"group,omitempty"`
			} `json:"issuerRef"`
			PrivateKey struct {
				Algorithm      string `json:"algorithm"`
				Size           int    `json:"size"`
				RotationPolicy string `json:"rotationPolicy"`
			} `json:"privateKey"`
			Duration    string `json:"duration"`
			RenewBefore string `json:"renewBefore"`
		} `json:"spec"`
	}
	issuer struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			ACME struct {
				Server              string `json:"server"`
				Email               string `json:"email"`
				PrivateKeySecretRef struct {
					Name string `json:"name"`
				} `json:"privateKeySecretRef"`
				Solvers []struct {
					DNS01 *struct {
						AzureDNS *struct {
							SubscriptionID    string `json:"subscriptionID"`
							ResourceGroupName string `json:"resourceGroupName"`
							HostedZoneName    string `json:"hostedZoneName"`
							Environment       string `json:"environment"`
							ManagedIdentity   *struct {
								ClientID   string `json:"clientID,omitempty"`
								ResourceID string `json:"resourceID,omitempty"`
							} `json:"managedIdentity"`
						} `json:"azureDNS"`
					} `json:"dns01"`
				} `json:"solvers"`
			} `json:"acme"`
		} `json:"spec"`
	}
)

// manifests is one built overlay, decoded, with what the aksChecks compare
// it with.
type manifests struct {
	overlay string
	flags   map[string]string // serve's flags and their type words (serveFlags)
	fileCap bool              // the image's binary carries cap_net_bind_service (the Dockerfile's setcap)
	alerts  ruleFile          // deploy/alerts.yaml
	board   []byte            // deploy/dashboard.json

	namespaces   []*corev1.Namespace
	deployments  []*appsv1.Deployment
	daemonSets   []*appsv1.DaemonSet
	services     []*corev1.Service
	pvcs         []*corev1.PersistentVolumeClaim
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	podMonitors  []*podMonitor
	rules        []*prometheusRule
	certificates []*certificate
	issuers      []*issuer
}

// strictJSON decodes YAML into v, refusing duplicate and unknown fields.
func strictJSON(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// decode decodes the documents of an overlay; an unknown kind is an error.
func aksDecode(overlay string, docs [][]byte, flags map[string]string, alerts ruleFile, board []byte) (*manifests, error) {
	m := &manifests{overlay: overlay, flags: flags, alerts: alerts, board: board}
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, err
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			obj = appendNew(&m.namespaces)
		case "apps/v1 Deployment":
			obj = appendNew(&m.deployments)
		case "apps/v1 DaemonSet":
			obj = appendNew(&m.daemonSets)
		case "v1 Service":
			obj = appendNew(&m.services)
		case "v1 PersistentVolumeClaim":
			obj = appendNew(&m.pvcs)
		case "v1 ConfigMap":
			obj = appendNew(&m.configMaps)
		case "v1 Secret":
			obj = appendNew(&m.secrets)
		case "monitoring.coreos.com/v1 PodMonitor":
			obj = appendNew(&m.podMonitors)
		case "monitoring.coreos.com/v1 PrometheusRule":
			obj = appendNew(&m.rules)
		case "cert-manager.io/v1 Certificate":
			obj = appendNew(&m.certificates)
		case "cert-manager.io/v1 Issuer", "cert-manager.io/v1 ClusterIssuer":
			obj = appendNew(&m.issuers)
		default:
			return nil, fmt.Errorf("%s %s: a kind the tests do not know; decode and check it", tm.APIVersion, tm.Kind)
		}
		if err := strictJSON(doc, obj); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", tm.Kind, err, doc)
		}
	}
	return m, nil
}

func appendNew[T any](s *[]*T) *T {
	v := new(T)
	*s = append(*s, v)
	return v
}

// inputs reads what the manifests are compared with.
func aksInputs(t *testing.T) (map[string]string, ruleFile, []byte) {
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
	return serveFlags(t), alerts, board
}

// load builds and decodes every overlay.
func aksLoad(t *testing.T) map[string]*manifests {
	t.Helper()
	flags, alerts, board := aksInputs(t)
	img := imageOf(t, readDockerfile(t))
	all := map[string]*manifests{}
	for _, o := range aksOverlays {
		m, err := aksDecode(o, aksBuild(t, o), flags, alerts, board)
		if err != nil {
			t.Fatalf("aks/overlays/%s: %v", o, err)
		}
		m.fileCap = img.netBindService
		all[o] = m
	}
	return all
}

// aksPod is a pod template with where it comes from.
type aksPod struct {
	where string
	tmpl  *corev1.PodTemplateSpec
}

func (m *manifests) pods() []aksPod {
	var ps []aksPod
	for _, d := range m.deployments {
		ps = append(ps, aksPod{"Deployment " + d.Name, &d.Spec.Template})
	}
	for _, d := range m.daemonSets {
		ps = append(ps, aksPod{"DaemonSet " + d.Name, &d.Spec.Template})
	}
	return ps
}

// gate is a scoregate container with the settings its args and
// SCOREGATE_* variables give (args win, as in scoregate).
type gate struct {
	where    string
	spec     *corev1.PodSpec
	c        *corev1.Container
	set      map[string]string // flag name → value; booleans "true"
	problems []string          // arguments that are not serve's
}

// isScoregate: the container runs scoregate's image.
func isScoregate(c *corev1.Container) bool {
	repo := c.Image
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return path.Base(repo) == "scoregate"
}

func (m *manifests) gates() []*gate {
	var gs []*gate
	for _, p := range m.pods() {
		spec := &p.tmpl.Spec
		for i := range spec.Containers {
			c := &spec.Containers[i]
			if !isScoregate(c) {
				continue
			}
			g := &gate{where: p.where + " container " + c.Name, spec: spec, c: c, set: map[string]string{}}
			args := slices.Concat(c.Command, c.Args)
			if len(args) == 0 || args[0] != "serve" {
				g.problems = append(g.problems, fmt.Sprintf("%s: arguments %q do not start with the serve subcommand", g.where, args))
			}
			for i := 1; i < len(args); i++ {
				a := args[i]
				name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
				typ, ok := m.flags[name]
				switch {
				case !strings.HasPrefix(a, "-"):
					g.problems = append(g.problems, fmt.Sprintf("%s: argument %q is not a flag", g.where, a))
					continue
				case !ok:
					g.problems = append(g.problems, fmt.Sprintf("%s: %s is not a serve flag", g.where, a))
					continue
				case !hasVal && typ == "":
					val = "true"
				case !hasVal && i+1 < len(args):
					i++
					val = args[i]
				}
				g.set[name] = val
			}
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "SCOREGATE_") {
					continue
				}
				name := envFlag(e.Name)
				if _, ok := m.flags[name]; !ok {
					g.problems = append(g.problems, fmt.Sprintf("%s: %s sets no serve flag", g.where, e.Name))
					continue
				}
				if _, given := g.set[name]; !given && e.Value != "" {
					g.set[name] = e.Value
				}
			}
			gs = append(gs, g)
		}
	}
	return gs
}

// get returns a flag's effective value: as set, else serve's default.
func (g *gate) get(name string) string {
	if v, ok := g.set[name]; ok {
		return v
	}
	return defaultsForChecks[name]
}

// defaultsForChecks are the defaults of the flags the aksChecks read;
// TestAKSDefaults keeps them equal to the pinned help.
var defaultsForChecks = map[string]string{
	"listen":           ":8443",
	"metrics-listen":   "127.0.0.1:9090",
	"shutdown-timeout": "30s",
	"storage":          "/var/lib/scoregate",
}

func TestAKSDefaults(t *testing.T) {
	got := serveDefaults(t)
	for name, want := range defaultsForChecks {
		if got[name] != want {
			t.Errorf("serve --help: --%s defaults to %q, the aksChecks assume %q", name, got[name], want)
		}
	}
}

// port returns the port number of a listen address such as ":8443".
func listenPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// containerPort resolves a probe's or Service's port against a container.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// A check returns what is wrong, one line per problem.
type aksCheck func(m *manifests) []string

// aksChecks are run on every overlay; the names are what TestAKSChecksCatch
// expects to fire.
var aksChecks = map[string]aksCheck{
	"flags":         checkFlags,
	"env refs":      checkEnvRefs,
	"files":         checkFiles,
	"probes":        checkProbes,
	"listen ports":  checkListenPorts,
	"selectors":     checkSelectors,
	"grace":         checkGrace,
	"non-root":      checkNonRoot,
	"hardening":     checkHardening,
	"bind caps":     checkBindCaps,
	"host ports":    checkHostPorts,
	"resources":     checkResources,
	"model service": checkModelService,
	"load balancer": checkLoadBalancer,
	"placement":     checkPlacement,
	"acme":          checkACME,
	"cert-manager":  checkCertManager,
	"no secrets":    checkNoSecrets,
	"alerts":        checkAlerts,
	"dashboard":     checkDashboard,
}

// checkFlags: every argument and SCOREGATE_* variable of a scoregate
// container is one of serve's flags.
func checkFlags(m *manifests) []string {
	var ps []string
	gs := m.gates()
	if len(gs) == 0 {
		ps = append(ps, "no scoregate container")
	}
	for _, g := range gs {
		ps = append(ps, g.problems...)
	}
	return ps
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkEnvRefs: every $(VAR) in command or args names a variable of the
// container, or Kubernetes passes it on literally.
func checkEnvRefs(m *manifests) []string {
	var ps []string
	for _, p := range m.pods() {
		for _, c := range p.tmpl.Spec.Containers {
			for _, a := range slices.Concat(c.Command, c.Args) {
				for _, r := range varRef.FindAllStringSubmatch(a, -1) {
					if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == r[1] }) {
						ps = append(ps, fmt.Sprintf("%s container %s: %q uses $(%s), which is not in env", p.where, c.Name, a, r[1]))
					}
				}
			}
		}
	}
	return ps
}

// checkFiles: the files and directories scoregate reads lie under a
// volume mount of its container, with the volume in the pod, and not
// through subPath (which never sees updates).
func checkFiles(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		for _, f := range []string{"ssl-cert-pem-file", "ssl-key-pem-file", "auth-key-file", "ca-file", "acme-ca-root", "storage"} {
			p, ok := g.set[f]
			if f == "storage" && g.get("acme") == "true" {
				p, ok = g.get("storage"), true
			}
			if !ok || p == "" {
				continue
			}
			var mount *corev1.VolumeMount
			for i, vm := range g.c.VolumeMounts {
				if p == vm.MountPath || strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") {
					mount = &g.c.VolumeMounts[i]
				}
			}
			switch {
			case mount == nil:
				ps = append(ps, fmt.Sprintf("%s: --%s=%s is under no volume mount", g.where, f, p))
			case mount.SubPath != "" || mount.SubPathExpr != "":
				ps = append(ps, fmt.Sprintf("%s: --%s=%s is mounted with subPath, which receives no updates", g.where, f, p))
			case !slices.ContainsFunc(g.spec.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name }):
				ps = append(ps, fmt.Sprintf("%s: --%s=%s: volume %q of mount %s is not in the pod", g.where, f, p, mount.Name, mount.MountPath))
			}
		}
	}
	return ps
}

// checkProbes: readiness is /readyz and liveness /healthz, on the port of
// --metrics-listen, which must not be loopback only.
func checkProbes(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		addr := g.get("metrics-listen")
		host, _, _ := net.SplitHostPort(addr)
		want, err := listenPort(addr)
		if err != nil || host != "" && host != "0.0.0.0" && host != "::" {
			ps = append(ps, fmt.Sprintf("%s: --metrics-listen=%s is not reachable by the kubelet", g.where, addr))
			continue
		}
		for _, pr := range []struct {
			kind, path string
			p          *corev1.Probe
		}{{"readiness", "/readyz", g.c.ReadinessProbe}, {"liveness", "/healthz", g.c.LivenessProbe}} {
			if pr.p == nil || pr.p.HTTPGet == nil {
				ps = append(ps, fmt.Sprintf("%s: no HTTP %s probe", g.where, pr.kind))
				continue
			}
			got, ok := containerPort(g.c, pr.p.HTTPGet.Port)
			if !ok || int(got) != want {
				ps = append(ps, fmt.Sprintf("%s: %s probe port %s = %d, want %d (--metrics-listen=%s)", g.where, pr.kind, pr.p.HTTPGet.Port.String(), got, want, addr))
			}
			if pr.p.HTTPGet.Path != pr.path {
				ps = append(ps, fmt.Sprintf("%s: %s probe path %q, want %s", g.where, pr.kind, pr.p.HTTPGet.Path, pr.path))
			}
		}
	}
	return ps
}

// checkListenPorts: the ports scoregate listens on are the container's
// declared ports, which Services and PodMonitors refer to.
func checkListenPorts(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		for _, f := range []string{"listen", "http-listen", "metrics-listen"} {
			addr := g.get(f)
			if addr == "" {
				continue
			}
			p, err := listenPort(addr)
			if err != nil {
				ps = append(ps, fmt.Sprintf("%s: --%s=%s: %v", g.where, f, addr, err))
				continue
			}
			if !slices.ContainsFunc(g.c.Ports, func(cp corev1.ContainerPort) bool { return int(cp.ContainerPort) == p }) {
				ps = append(ps, fmt.Sprintf("%s: --%s=%s but no containerPort %d", g.where, f, addr, p))
			}
		}
	}
	return ps
}

// selected returns the pods whose labels a selector matches.
func (m *manifests) selected(sel labels.Selector) []aksPod {
	var out []aksPod
	for _, p := range m.pods() {
		if !sel.Empty() && sel.Matches(labels.Set(p.tmpl.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

// checkSelectors: each Service and PodMonitor selects some pod template,
// and its target port is a port of that pod's containers.
func checkSelectors(m *manifests) []string {
	var ps []string
	hasPort := func(pods []aksPod, p intstr.IntOrString) bool {
		for _, pd := range pods {
			for i := range pd.tmpl.Spec.Containers {
				c := &pd.tmpl.Spec.Containers[i]
				if n, ok := containerPort(c, p); ok && slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == n }) {
					return true
				}
			}
		}
		return false
	}
	for _, s := range m.services {
		pods := m.selected(labels.SelectorFromSet(s.Spec.Selector))
		if len(pods) == 0 {
			ps = append(ps, fmt.Sprintf("Service %s: selector %v matches no pod template", s.Name, s.Spec.Selector))
			continue
		}
		for _, sp := range s.Spec.Ports {
			if !hasPort(pods, sp.TargetPort) {
				ps = append(ps, fmt.Sprintf("Service %s: port %d's target %s is no container port of the pods selected", s.Name, sp.Port, sp.TargetPort.String()))
			}
		}
	}
	for _, pm := range m.podMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			ps = append(ps, fmt.Sprintf("PodMonitor %s: %v", pm.Name, err))
			continue
		}
		pods := m.selected(sel)
		if len(pods) == 0 {
			ps = append(ps, fmt.Sprintf("PodMonitor %s: selector matches no pod template", pm.Name))
		}
		for _, e := range pm.Spec.PodMetricsEndpoints {
			if !hasPort(pods, intstr.FromString(e.Port)) {
				ps = append(ps, fmt.Sprintf("PodMonitor %s: port %q is no container port of the pods selected", pm.Name, e.Port))
			}
		}
	}
	return ps
}

// checkGrace: the kubelet waits longer than preStop plus
// --shutdown-timeout before it kills scoregate.
func checkGrace(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		st, err := time.ParseDuration(g.get("shutdown-timeout"))
		if err != nil {
			ps = append(ps, fmt.Sprintf("%s: --shutdown-timeout: %v", g.where, err))
			continue
		}
		var sleep time.Duration
		if l := g.c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
			sleep = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
		}
		grace := 30 * time.Second // Kubernetes' default
		if g.spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*g.spec.TerminationGracePeriodSeconds) * time.Second
		}
		if grace <= sleep+st {
			ps = append(ps, fmt.Sprintf("%s: terminationGracePeriodSeconds %v is not above preStop %v + --shutdown-timeout %v", g.where, grace, sleep, st))
		}
		if sleep == 0 {
			ps = append(ps, fmt.Sprintf("%s: no preStop sleep: SIGTERM would close the listener before the load balancer stops sending", g.where))
		}
	}
	return ps
}

// security returns a container's effective security settings: the
// container's, else the pod's.
func effectiveSecurity(spec *corev1.PodSpec, c *corev1.Container) (nonRoot bool, user *int64, seccomp *corev1.SeccompProfile) {
	if psc := spec.SecurityContext; psc != nil {
		nonRoot = psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
		user, seccomp = psc.RunAsUser, psc.SeccompProfile
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if sc.RunAsUser != nil {
			user = sc.RunAsUser
		}
		if sc.SeccompProfile != nil {
			seccomp = sc.SeccompProfile
		}
	}
	return nonRoot, user, seccomp
}

// checkNonRoot: runAsNonRoot comes with a numeric, non-zero runAsUser, so
// the kubelet need not trust the image's USER.
func checkNonRoot(m *manifests) []string {
	var ps []string
	for _, p := range m.pods() {
		for i := range p.tmpl.Spec.Containers {
			c := &p.tmpl.Spec.Containers[i]
			nonRoot, user, _ := effectiveSecurity(&p.tmpl.Spec, c)
			if nonRoot && (user == nil || *user == 0) {
				ps = append(ps, fmt.Sprintf("%s container %s: runAsNonRoot without a non-zero runAsUser", p.where, c.Name))
			}
		}
	}
	return ps
}

// checkHardening: scoregate runs as 65532, read-only, without privilege
// escalation, without capabilities beyond NET_BIND_SERVICE, under the
// runtime's seccomp profile.
func checkHardening(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		nonRoot, user, seccomp := effectiveSecurity(g.spec, g.c)
		if !nonRoot || user == nil || *user != 65532 {
			ps = append(ps, fmt.Sprintf("%s: want runAsNonRoot and runAsUser 65532", g.where))
		}
		if psc := g.spec.SecurityContext; (g.c.SecurityContext == nil || g.c.SecurityContext.RunAsGroup == nil || *g.c.SecurityContext.RunAsGroup != 65532) &&
			(psc == nil || psc.RunAsGroup == nil || *psc.RunAsGroup != 65532) {
			ps = append(ps, fmt.Sprintf("%s: want runAsGroup 65532", g.where))
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			ps = append(ps, fmt.Sprintf("%s: want seccompProfile RuntimeDefault", g.where))
		}
		sc := g.c.SecurityContext
		if sc == nil {
			ps = append(ps, fmt.Sprintf("%s: no securityContext", g.where))
			continue
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			ps = append(ps, fmt.Sprintf("%s: want readOnlyRootFilesystem", g.where))
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			ps = append(ps, fmt.Sprintf("%s: want allowPrivilegeEscalation false", g.where))
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			ps = append(ps, fmt.Sprintf("%s: want capabilities drop [ALL]", g.where))
		}
		if sc.Privileged != nil && *sc.Privileged {
			ps = append(ps, fmt.Sprintf("%s: privileged", g.where))
		}
	}
	return ps
}

// checkBindCaps: a non-root container that binds a port below 1024 keeps
// NET_BIND_SERVICE, and only such a container adds it. scoregate's
// container is the exception that proves the rule: its binary carries the
// file capability cap_net_bind_service=+ep (so that uid 65532 can bind 443
// on ACI), and the kernel refuses to exec a binary whose effective file
// capability is not in the bounding set — `drop: [ALL]` without adding
// NET_BIND_SERVICE back makes the container fail to start, whatever port
// it binds.
func checkBindCaps(m *manifests) []string {
	var ps []string
	listens := map[*corev1.Container][]string{}
	for _, g := range m.gates() {
		for _, f := range []string{"listen", "http-listen", "metrics-listen"} {
			if a := g.get(f); a != "" {
				listens[g.c] = append(listens[g.c], a)
			}
		}
	}
	for _, p := range m.pods() {
		for i := range p.tmpl.Spec.Containers {
			c := &p.tmpl.Spec.Containers[i]
			var low []int
			for _, cp := range c.Ports {
				if cp.ContainerPort < 1024 {
					low = append(low, int(cp.ContainerPort))
				}
			}
			for _, a := range listens[c] {
				if n, err := listenPort(a); err == nil && n < 1024 {
					low = append(low, n)
				}
			}
			nonRoot, user, _ := effectiveSecurity(&p.tmpl.Spec, c)
			root := !nonRoot && (user == nil || *user == 0)
			var added bool
			if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil {
				added = slices.Contains(sc.Capabilities.Add, "NET_BIND_SERVICE")
			}
			var dropsAll bool
			if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil {
				dropsAll = slices.Contains(sc.Capabilities.Drop, "ALL") || slices.Contains(sc.Capabilities.Drop, "NET_BIND_SERVICE")
			}
			switch {
			case isScoregate(c) && m.fileCap:
				if dropsAll && !added {
					ps = append(ps, fmt.Sprintf("%s container %s: drops NET_BIND_SERVICE, but the image's binary carries it as a file capability: exec would fail", p.where, c.Name))
				}
			case len(low) > 0 && !root && !added:
				ps = append(ps, fmt.Sprintf("%s container %s: binds port %v as non-root without NET_BIND_SERVICE", p.where, c.Name, low))
			case len(low) == 0 && added:
				ps = append(ps, fmt.Sprintf("%s container %s: adds NET_BIND_SERVICE but binds no port below 1024", p.where, c.Name))
			}
		}
	}
	return ps
}

// checkHostPorts: nothing is exposed on the node's own address.
func checkHostPorts(m *manifests) []string {
	var ps []string
	for _, p := range m.pods() {
		if p.tmpl.Spec.HostNetwork {
			ps = append(ps, fmt.Sprintf("%s: hostNetwork", p.where))
		}
		for _, c := range slices.Concat(p.tmpl.Spec.InitContainers, p.tmpl.Spec.Containers) {
			for _, cp := range c.Ports {
				if cp.HostPort != 0 {
					ps = append(ps, fmt.Sprintf("%s container %s: hostPort %d", p.where, c.Name, cp.HostPort))
				}
			}
		}
	}
	return ps
}

// checkResources: every container requests CPU and memory and has a
// memory limit.
func checkResources(m *manifests) []string {
	var ps []string
	for _, p := range m.pods() {
		for _, c := range p.tmpl.Spec.Containers {
			r := c.Resources
			if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
				ps = append(ps, fmt.Sprintf("%s container %s: want CPU and memory requests and a memory limit, have %v", p.where, c.Name, r))
			}
		}
	}
	return ps
}

// checkModelService: --backend names a Service of these manifests, on its
// port, and that Service keeps traffic on the node.
func checkModelService(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		b := g.get("backend")
		host, p, err := net.SplitHostPort(strings.TrimPrefix(b, "http://"))
		if err != nil {
			ps = append(ps, fmt.Sprintf("%s: --backend=%s: %v", g.where, b, err))
			continue
		}
		name := strings.Split(host, ".")[0]
		i := slices.IndexFunc(m.services, func(s *corev1.Service) bool { return s.Name == name })
		if i < 0 {
			ps = append(ps, fmt.Sprintf("%s: --backend=%s names no Service of the manifests", g.where, b))
			continue
		}
		s := m.services[i]
		if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return strconv.Itoa(int(sp.Port)) == p }) {
			ps = append(ps, fmt.Sprintf("%s: --backend=%s: Service %s has no port %s", g.where, b, s.Name, p))
		}
		if s.Spec.InternalTrafficPolicy == nil || *s.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal {
			ps = append(ps, fmt.Sprintf("Service %s: want internalTrafficPolicy Local, so that scoregate reaches only its own node's model", s.Name))
		}
	}
	return ps
}

// checkLoadBalancer: there is a LoadBalancer Service, and each keeps the
// client's address and sends only to nodes with a ready pod.
func checkLoadBalancer(m *manifests) []string {
	var ps []string
	n := 0
	for _, s := range m.services {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		n++
		if s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			ps = append(ps, fmt.Sprintf("Service %s: externalTrafficPolicy %q, want Local", s.Name, s.Spec.ExternalTrafficPolicy))
		}
		if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Port == 443 }) {
			ps = append(ps, fmt.Sprintf("Service %s: no port 443", s.Name))
		}
	}
	if n == 0 {
		ps = append(ps, "no LoadBalancer Service")
	}
	return ps
}

// checkPlacement: the DaemonSet runs only where the model runs.
func checkPlacement(m *manifests) []string {
	var ps []string
	for _, d := range m.daemonSets {
		s := d.Spec.Template.Spec
		if len(s.NodeSelector) == 0 && (s.Affinity == nil || s.Affinity.NodeAffinity == nil && s.Affinity.PodAffinity == nil) {
			ps = append(ps, fmt.Sprintf("DaemonSet %s: neither nodeSelector nor affinity: it would run on every node", d.Name))
		}
	}
	return ps
}

const dnsLabelAnnotation = "service.beta.kubernetes.io/azure-dns-label-name"

// checkACME: with --acme, the name ordered is the one Azure publishes for
// the Service (the DNS label annotation), port 80 reaches --http-listen,
// and --storage is a ReadWriteMany volume shared by the pods.
func checkACME(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		if g.get("acme") != "true" {
			continue
		}
		var lb *corev1.Service
		for _, s := range m.services {
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				lb = s
			}
		}
		if lb == nil {
			ps = append(ps, g.where+": --acme without a LoadBalancer Service")
			continue
		}
		label := lb.Annotations[dnsLabelAnnotation]
		cname := g.get("ssl-cname")
		if first, rest, _ := strings.Cut(cname, "."); label == "" || first != label || !strings.HasSuffix(rest, ".cloudapp.azure.com") || strings.Count(rest, ".") != 3 {
			ps = append(ps, fmt.Sprintf("%s: --ssl-cname=%q is not <label>.<region>.cloudapp.azure.com for Service %s's %s=%q", g.where, cname, lb.Name, dnsLabelAnnotation, label))
		}
		hp, err := listenPort(g.get("http-listen"))
		if err != nil || !slices.ContainsFunc(lb.Spec.Ports, func(sp corev1.ServicePort) bool {
			n, ok := containerPort(g.c, sp.TargetPort)
			return sp.Port == 80 && ok && int(n) == hp
		}) {
			ps = append(ps, fmt.Sprintf("%s: Service %s port 80 does not reach --http-listen=%s (HTTP-01)", g.where, lb.Name, g.get("http-listen")))
		}
		if g.get("https-port") != "443" {
			ps = append(ps, fmt.Sprintf("%s: --https-port=%q: the redirect must name the load balancer's 443", g.where, g.get("https-port")))
		}
		storage := g.get("storage")
		ok := false
		for _, vm := range g.c.VolumeMounts {
			if vm.MountPath != storage {
				continue
			}
			for _, v := range g.spec.Volumes {
				if v.Name != vm.Name || v.PersistentVolumeClaim == nil {
					continue
				}
				for _, pvc := range m.pvcs {
					if pvc.Name == v.PersistentVolumeClaim.ClaimName && slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
						ok = true
					}
				}
			}
		}
		if !ok {
			ps = append(ps, fmt.Sprintf("%s: --storage=%s is not a ReadWriteMany PersistentVolumeClaim mounted there", g.where, storage))
		}
	}
	return ps
}

// checkCertManager: each Certificate covers --ssl-cname, writes the Secret
// that scoregate mounts, and names an Issuer that solves DNS-01 in Azure
// DNS with a managed identity.
func checkCertManager(m *manifests) []string {
	var ps []string
	for _, c := range m.certificates {
		for _, g := range m.gates() {
			if !slices.Contains(c.Spec.DNSNames, g.get("ssl-cname")) {
				ps = append(ps, fmt.Sprintf("Certificate %s: dnsNames %v lack --ssl-cname=%s of %s", c.Name, c.Spec.DNSNames, g.get("ssl-cname"), g.where))
			}
			if !slices.ContainsFunc(g.spec.Volumes, func(v corev1.Volume) bool {
				return v.Secret != nil && v.Secret.SecretName == c.Spec.SecretName
			}) {
				ps = append(ps, fmt.Sprintf("Certificate %s: %s mounts no Secret %s", c.Name, g.where, c.Spec.SecretName))
			}
		}
		i := slices.IndexFunc(m.issuers, func(is *issuer) bool { return is.Name == c.Spec.IssuerRef.Name && is.Kind == c.Spec.IssuerRef.Kind })
		if i < 0 {
			ps = append(ps, fmt.Sprintf("Certificate %s: issuerRef %s %s is not in the manifests", c.Name, c.Spec.IssuerRef.Kind, c.Spec.IssuerRef.Name))
			continue
		}
		is := m.issuers[i]
		for _, s := range is.Spec.ACME.Solvers {
			if s.DNS01 == nil || s.DNS01.AzureDNS == nil || s.DNS01.AzureDNS.ManagedIdentity == nil {
				ps = append(ps, fmt.Sprintf("%s %s: a solver that is not DNS-01 in Azure DNS with a managed identity (the Service exposes 443 only)", is.Kind, is.Name))
			}
		}
		if len(is.Spec.ACME.Solvers) == 0 {
			ps = append(ps, fmt.Sprintf("%s %s: no solver", is.Kind, is.Name))
		}
	}
	return ps
}

// checkNoSecrets: keys are never in git; the Secret is the operator's or
// cert-manager's.
func checkNoSecrets(m *manifests) []string {
	var ps []string
	for _, s := range m.secrets {
		ps = append(ps, fmt.Sprintf("Secret %s: secrets do not belong in the manifests", s.Name))
	}
	return ps
}

// checkAlerts: the PrometheusRule holds deploy/alerts.yaml's groups.
func checkAlerts(m *manifests) []string {
	if len(m.rules) != 1 {
		return []string{fmt.Sprintf("%d PrometheusRules, want 1", len(m.rules))}
	}
	if !reflect.DeepEqual(m.rules[0].Spec, m.alerts) {
		return []string{fmt.Sprintf("PrometheusRule %s: groups differ from alerts.yaml's", m.rules[0].Name)}
	}
	return nil
}

// checkDashboard: a ConfigMap for Grafana's sidecar holds
// deploy/dashboard.json.
func checkDashboard(m *manifests) []string {
	for _, cm := range m.configMaps {
		if cm.Labels["grafana_dashboard"] == "1" && len(cm.Data) == 1 && cm.Data["scoregate.json"] == string(m.board) {
			return nil
		}
	}
	return []string{"no ConfigMap labelled grafana_dashboard=1 holds dashboard.json as scoregate.json"}
}

// TestAKSOverlays builds each overlay and runs every check on it.
func TestAKSOverlays(t *testing.T) {
	all := aksLoad(t)
	for _, o := range aksOverlays {
		m := all[o]
		t.Run(o, func(t *testing.T) {
			for name, c := range aksChecks {
				for _, p := range c(m) {
					t.Errorf("%s: %s", name, p)
				}
			}
			// What makes each overlay what it is, so that the conditional
			// aksChecks (acme, cert-manager) are not passed vacuously.
			gs := m.gates()
			if len(gs) != 1 || len(m.daemonSets) != 1 || len(m.deployments) != 1 || len(m.namespaces) != 1 {
				t.Fatalf("want one DaemonSet running scoregate, one model Deployment, one Namespace; have %d, %d, %d, %d",
					len(gs), len(m.daemonSets), len(m.deployments), len(m.namespaces))
			}
			acme := gs[0].get("acme") == "true"
			if want := o == "acme"; acme != want {
				t.Errorf("--acme = %v, want %v", acme, want)
			}
			if want := o == "cert-manager"; (len(m.certificates) == 1) != want {
				t.Errorf("%d Certificates; want one only in cert-manager", len(m.certificates))
			}
			if _, ok := gs[0].set["ssl-cert-pem-file"]; ok == acme {
				t.Errorf("--ssl-cert-pem-file given: %v, want %v", ok, !acme)
			}
			for _, s := range m.services {
				if _, ok := s.Annotations[dnsLabelAnnotation]; ok != (acme && s.Spec.Type == corev1.ServiceTypeLoadBalancer) {
					t.Errorf("Service %s: %s annotation: %v, want it on the LoadBalancer of acme only", s.Name, dnsLabelAnnotation, ok)
				}
			}
			if acme != (len(m.pvcs) == 1) {
				t.Errorf("%d PersistentVolumeClaims; want one in acme only", len(m.pvcs))
			}
		})
	}
}

// TestAKSDashboardCopy: kustomize reads files only under the kustomization
// directory, so base/ keeps a copy of the dashboard.
func TestAKSDashboardCopy(t *testing.T) {
	want, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("aks/base/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("aks/base/dashboard.json differs from dashboard.json; copy it: cp deploy/dashboard.json deploy/aks/base/")
	}
}

// TestAKSUnknownKind: a kind without a decoder fails, rather than going
// unchecked; so does an unknown field.
func TestAKSUnknownKind(t *testing.T) {
	flags, alerts, board := aksInputs(t)
	for _, doc := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {typo: 1}\n",
		"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: x, commonName: x}\n",
	} {
		if _, err := aksDecode("test", [][]byte{[]byte(doc)}, flags, alerts, board); err == nil {
			t.Errorf("aksDecode(%q) = nil error, want one", doc)
		}
	}
}

// TestAKSChecksCatch breaks a copy of an overlay in one way at a time and
// expects exactly the check for that way to report it.
func TestAKSChecksCatch(t *testing.T) {
	fileCap := imageOf(t, readDockerfile(t)).netBindService
	flags, alerts, board := aksInputs(t)
	docs := map[string][][]byte{}
	for _, o := range aksOverlays {
		docs[o] = aksBuild(t, o)
	}
	ds := func(m *manifests) *corev1.PodSpec { return &m.daemonSets[0].Spec.Template.Spec }
	sg := func(m *manifests) *corev1.Container { return &ds(m).Containers[0] }
	model := func(m *manifests) *corev1.Container { return &m.deployments[0].Spec.Template.Spec.Containers[0] }
	setArg := func(m *manifests, flag, val string) {
		c := sg(m)
		for i, a := range c.Args {
			if strings.HasPrefix(a, "--"+flag+"=") {
				c.Args[i] = "--" + flag + "=" + val
				return
			}
		}
		c.Args = append(c.Args, "--"+flag+"="+val)
	}
	svc := func(m *manifests, name string) *corev1.Service {
		for _, s := range m.services {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no Service %s", name)
		return nil
	}
	covered := map[string]bool{}
	for _, tt := range []struct {
		name, overlay, check string
		mutate               func(m *manifests)
	}{
		{"unknown flag", "own-cert", "flags", func(m *manifests) { sg(m).Args = append(sg(m).Args, "--ssl-cert-file=/tls/tls.crt") }},
		{"unknown variable", "own-cert", "flags", func(m *manifests) {
			sg(m).Env = append(sg(m).Env, corev1.EnvVar{Name: "SCOREGATE_CNAME", Value: "x"})
		}},
		{"no subcommand", "own-cert", "flags", func(m *manifests) { sg(m).Args = sg(m).Args[1:] }},
		{"undefined variable", "own-cert", "env refs", func(m *manifests) { sg(m).Env = nil }},
		{"cert outside mounts", "own-cert", "files", func(m *manifests) { setArg(m, "ssl-key-pem-file", "/etc/tls/tls.key") }},
		{"subPath", "own-cert", "files", func(m *manifests) { sg(m).VolumeMounts[0].SubPath = "tls.crt" }},
		{"volume missing", "cert-manager", "files", func(m *manifests) { sg(m).VolumeMounts[0].Name = "certs" }},
		{"ACME root outside mounts", "acme", "files", func(m *manifests) { setArg(m, "acme-ca-root", "/etc/ca/root.pem") }},
		{"storage through subPath", "acme", "files", func(m *manifests) {
			for i, vm := range sg(m).VolumeMounts {
				if vm.MountPath == "/var/lib/scoregate" {
					sg(m).VolumeMounts[i].SubPath = "scoregate"
				}
			}
		}},
		{"probe on https port", "own-cert", "probes", func(m *manifests) { sg(m).ReadinessProbe.HTTPGet.Port = intstr.FromString("https") }},
		{"liveness on readyz", "own-cert", "probes", func(m *manifests) { sg(m).LivenessProbe.HTTPGet.Path = "/readyz" }},
		{"metrics on loopback", "own-cert", "probes", func(m *manifests) {
			sg(m).Args = slices.DeleteFunc(sg(m).Args, func(a string) bool { return strings.HasPrefix(a, "--metrics-listen") })
		}},
		{"listen port undeclared", "own-cert", "listen ports", func(m *manifests) { setArg(m, "listen", ":9443") }},
		{"selector renamed", "own-cert", "selectors", func(m *manifests) {
			svc(m, "scoring-model").Spec.Selector = map[string]string{"app.kubernetes.io/name": "model"}
		}},
		{"target port missing", "own-cert", "selectors", func(m *manifests) {
			svc(m, "scoregate").Spec.Ports[0].TargetPort = intstr.FromInt32(443)
		}},
		{"pod monitor port", "own-cert", "selectors", func(m *manifests) { m.podMonitors[0].Spec.PodMetricsEndpoints[0].Port = "prom" }},
		{"grace too short", "own-cert", "grace", func(m *manifests) { ds(m).TerminationGracePeriodSeconds = new(int64(45)) }},
		{"shutdown longer", "acme", "grace", func(m *manifests) { setArg(m, "shutdown-timeout", "1m") }},
		{"no preStop", "own-cert", "grace", func(m *manifests) { sg(m).Lifecycle = nil }},
		{"runAsUser removed", "cert-manager", "non-root", func(m *manifests) { model(m).SecurityContext.RunAsNonRoot = new(true) }},
		{"writable root", "own-cert", "hardening", func(m *manifests) { sg(m).SecurityContext.ReadOnlyRootFilesystem = new(false) }},
		{"no seccomp", "own-cert", "hardening", func(m *manifests) {
			ds(m).SecurityContext.SeccompProfile = nil
			sg(m).SecurityContext.SeccompProfile = nil
		}},
		{"capabilities kept", "own-cert", "hardening", func(m *manifests) { sg(m).SecurityContext.Capabilities.Drop = nil }},
		{"port 80 as non-root without capability", "own-cert", "bind caps", func(m *manifests) {
			user, nonRoot := int64(1000), true
			model(m).SecurityContext = &corev1.SecurityContext{RunAsUser: &user, RunAsNonRoot: &nonRoot}
			model(m).Ports = append(model(m).Ports, corev1.ContainerPort{Name: "http", ContainerPort: 80})
		}},
		{"capability without low port", "own-cert", "bind caps", func(m *manifests) {
			model(m).SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
		}},
		{"file capability dropped", "own-cert", "bind caps", func(m *manifests) {
			sg(m).SecurityContext.Capabilities.Add = nil
		}},
		{"hostPort", "own-cert", "host ports", func(m *manifests) { model(m).Ports[0].HostPort = 5001 }},
		{"hostNetwork", "acme", "host ports", func(m *manifests) { ds(m).HostNetwork = true }},
		{"no memory limit", "own-cert", "resources", func(m *manifests) { sg(m).Resources.Limits = nil }},
		{"cluster-wide model", "own-cert", "model service", func(m *manifests) { svc(m, "scoring-model").Spec.InternalTrafficPolicy = nil }},
		{"backend elsewhere", "own-cert", "model service", func(m *manifests) { setArg(m, "backend", "http://model.example.com:5001") }},
		{"cluster traffic policy", "own-cert", "load balancer", func(m *manifests) {
			svc(m, "scoregate").Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}},
		{"every node", "own-cert", "placement", func(m *manifests) { ds(m).NodeSelector = nil }},
		{"no DNS label", "acme", "acme", func(m *manifests) { delete(svc(m, "scoregate").Annotations, dnsLabelAnnotation) }},
		{"other name", "acme", "acme", func(m *manifests) { setArg(m, "ssl-cname", "fraud2.westeurope.cloudapp.azure.com") }},
		{"no port 80", "acme", "acme", func(m *manifests) {
			s := svc(m, "scoregate")
			s.Spec.Ports = slices.DeleteFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Port == 80 })
		}},
		{"redirect to 8443", "acme", "acme", func(m *manifests) {
			sg(m).Args = slices.DeleteFunc(sg(m).Args, func(a string) bool { return strings.HasPrefix(a, "--https-port") })
		}},
		{"storage ReadWriteOnce", "acme", "acme", func(m *manifests) {
			m.pvcs[0].Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
		}},
		{"certificate for another name", "cert-manager", "cert-manager", func(m *manifests) { m.certificates[0].Spec.DNSNames = []string{"other.contoso.com"} }},
		{"certificate to another secret", "cert-manager", "cert-manager", func(m *manifests) { m.certificates[0].Spec.SecretName = "tls" }},
		{"HTTP-01 solver", "cert-manager", "cert-manager", func(m *manifests) { m.issuers[0].Spec.ACME.Solvers[0].DNS01 = nil }},
		{"secret in git", "own-cert", "no secrets", func(m *manifests) {
			m.secrets = append(m.secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "scoregate-tls"}})
		}},
		{"alert dropped", "own-cert", "alerts", func(m *manifests) {
			g := &m.rules[0].Spec.Groups[0]
			g.Rules = g.Rules[1:]
		}},
		{"dashboard stale", "own-cert", "dashboard", func(m *manifests) {
			for _, cm := range m.configMaps {
				cm.Data["scoregate.json"] = "{}"
			}
		}},
	} {
		covered[tt.check] = true
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := aksChecks[tt.check]; !ok {
				t.Fatalf("no check %q", tt.check)
			}
			m, err := aksDecode(tt.overlay, docs[tt.overlay], flags, alerts, board)
			if err != nil {
				t.Fatal(err)
			}
			m.fileCap = fileCap
			tt.mutate(m)
			for name, c := range aksChecks {
				ps := c(m)
				if name == tt.check && len(ps) == 0 {
					t.Errorf("check %q found nothing wrong", name)
				}
				if name != tt.check {
					for _, p := range ps {
						t.Errorf("check %q fired too: %s", name, p)
					}
				}
			}
		})
	}
	for name := range aksChecks {
		if !covered[name] {
			t.Errorf("check %q is never shown to catch anything", name)
		}
	}
}
