package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
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

	"github.com/scoregate/scoregate/certs"
)

// The AKS manifests are Kustomize overlays over one base, with opt-in
// components. checkAKSDir builds a kustomization exactly as `kubectl apply
// -k` would, decodes every object strictly into the Kubernetes API types
// (or, for the CRDs, into the local structs below), and runs the aksChecks:
// each check is a function returning its problems, each problem naming the
// file the object comes from. The same function runs on the shipped
// overlays and on a directory given with -dir (rules_test.go);
// TestAKSChecksCatch proves that each check fires on a copy broken on
// purpose.

// aksOverlays are the shipped overlays, under aks/overlays.
var aksOverlays = []string{"own-cert", "acme", "cert-manager"}

// aksComponents are the shipped opt-in components, under aks/components.
var aksComponents = []string{"monitoring", "monitoring-azure", "sample-model"}

// builtDoc is one object of a build and the file it comes from.
type builtDoc struct {
	yaml   []byte
	origin string // the resource file, or the kustomization.yaml that generated it
}

const originAnnotation = "config.kubernetes.io/origin"

// originFS is the disk, except that every kustomization file read asks
// Kustomize to record each object's origin (buildMetadata:
// [originAnnotations]), so that a problem can name the file it is in.
type originFS struct{ filesys.FileSystem }

func (o originFS) ReadFile(name string) ([]byte, error) {
	b, err := o.FileSystem.ReadFile(name)
	if err != nil || !slices.Contains([]string{"kustomization.yaml", "kustomization.yml", "Kustomization"}, filepath.Base(name)) ||
		bytes.Contains(b, []byte("buildMetadata:")) {
		return b, err
	}
	return append(append(b, '\n'), "buildMetadata: [originAnnotations]\n"...), nil
}

// aksBuild runs kustomize on dir with the default options (files only
// from within each kustomization's directory) and returns one document per
// object, without the origin annotation it asked for.
func aksBuild(dir string) ([]builtDoc, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(originFS{filesys.MakeFsOnDisk()}, dir)
	if err != nil {
		return nil, err
	}
	var docs []builtDoc
	for _, r := range rm.Resources() {
		anns := r.GetAnnotations()
		var o struct {
			Path         string `json:"path"`
			ConfiguredIn string `json:"configuredIn"`
		}
		origin := dir
		if err := yaml.Unmarshal([]byte(anns[originAnnotation]), &o); err == nil && o.Path+o.ConfiguredIn != "" {
			origin = filepath.Join(dir, o.Path+o.ConfiguredIn)
		}
		delete(anns, originAnnotation)
		if err := r.SetAnnotations(anns); err != nil {
			return nil, err
		}
		b, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", r.CurId(), err)
		}
		docs = append(docs, builtDoc{yaml: b, origin: origin})
	}
	return docs, nil
}

// The CRDs, as far as the manifests use them. Decoding is strict, so a
// field not mirrored here fails the test instead of passing unchecked.
type (
	podMonitor struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			// The label limits of Azure Managed Prometheus's template
			// (also fields of the Prometheus Operator's PodMonitor).
			LabelLimit            int                  `json:"labelLimit,omitempty"`
			LabelNameLengthLimit  int                  `json:"labelNameLengthLimit,omitempty"`
			LabelValueLengthLimit int                  `json:"labelValueLengthLimit,omitempty"`
			Selector              metav1.LabelSelector `json:"selector"`
			PodMetricsEndpoints   []struct {
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

// manifests is one built kustomization, decoded, with what the aksChecks
// compare it with.
type manifests struct {
	dir    string      // the kustomization built
	in     *ruleInputs // serve's flags and defaults, the image, the exported metrics
	origin map[string]string

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

// aksDecode decodes the documents of a build; an unknown kind is an error.
func aksDecode(dir string, docs []builtDoc, in *ruleInputs) (*manifests, error) {
	m := &manifests{dir: dir, in: in, origin: map[string]string{}}
	for _, doc := range docs {
		var tm struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        struct{ Name string } `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc.yaml, &tm); err != nil {
			return nil, fmt.Errorf("%s: %v", doc.origin, err)
		}
		m.origin[tm.Kind+"/"+tm.Metadata.Name] = doc.origin
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
		case "monitoring.coreos.com/v1 PodMonitor", "azmonitoring.coreos.com/v1 PodMonitor":
			obj = appendNew(&m.podMonitors)
		case "monitoring.coreos.com/v1 PrometheusRule":
			obj = appendNew(&m.rules)
		case "cert-manager.io/v1 Certificate":
			obj = appendNew(&m.certificates)
		case "cert-manager.io/v1 Issuer", "cert-manager.io/v1 ClusterIssuer":
			obj = appendNew(&m.issuers)
		default:
			return nil, fmt.Errorf("%s: %s %s: a kind the tests do not know; decode and check it", doc.origin, tm.APIVersion, tm.Kind)
		}
		if err := strictJSON(doc.yaml, obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %v", doc.origin, tm.Kind, tm.Metadata.Name, err)
		}
	}
	return m, nil
}

func appendNew[T any](s *[]*T) *T {
	v := new(T)
	*s = append(*s, v)
	return v
}

// at names an object by the file it comes from, its kind and its name.
func (m *manifests) at(kind, name string) string {
	if f, ok := m.origin[kind+"/"+name]; ok {
		return fmt.Sprintf("%s: %s %s", f, kind, name)
	}
	return kind + " " + name
}

// aksPod is a pod template with where it comes from.
type aksPod struct {
	where string
	tmpl  *corev1.PodTemplateSpec
}

func (m *manifests) pods() []aksPod {
	var ps []aksPod
	for _, d := range m.deployments {
		ps = append(ps, aksPod{m.at("Deployment", d.Name), &d.Spec.Template})
	}
	for _, d := range m.daemonSets {
		ps = append(ps, aksPod{m.at("DaemonSet", d.Name), &d.Spec.Template})
	}
	return ps
}

// gate is a scoregate container with the settings its args and
// SCOREGATE_* variables give (args win, as in scoregate).
type gate struct {
	where    string
	spec     *corev1.PodSpec
	c        *corev1.Container
	in       *ruleInputs
	set      map[string]string // flag name → value; booleans "true"
	broken   map[string]bool   // flags whose variable refers to what is not there
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
			g := &gate{where: p.where + " container " + c.Name, spec: spec, c: c, in: m.in, set: map[string]string{}, broken: map[string]bool{}}
			args := slices.Concat(c.Command, c.Args)
			if len(args) == 0 || args[0] != "serve" {
				g.problems = append(g.problems, fmt.Sprintf("%s: arguments %q do not start with the serve subcommand", g.where, args))
			}
			for i := 1; i < len(args); i++ {
				a := args[i]
				name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
				typ, ok := m.in.flags[name]
				switch {
				case !strings.HasPrefix(a, "-"):
					g.problems = append(g.problems, fmt.Sprintf("%s: argument %q is not a flag", g.where, a))
					continue
				case !ok:
					g.problems = append(g.problems, fmt.Sprintf("%s: %s is not a serve flag%s", g.where, a, didYouMean(name, m.in.flags)))
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
				if _, ok := m.in.flags[name]; !ok {
					g.problems = append(g.problems, fmt.Sprintf("%s: %s sets no serve flag%s", g.where, e.Name, didYouMean(name, m.in.flags)))
					continue
				}
				v, ok, err := m.envValue(e)
				if err != nil {
					g.problems = append(g.problems, fmt.Sprintf("%s: %s: %v", g.where, e.Name, err))
					g.broken[name] = true
					continue
				}
				if _, given := g.set[name]; ok && !given {
					g.set[name] = v
				}
			}
			gs = append(gs, g)
		}
	}
	return gs
}

// envValue returns a variable's value as the kubelet would set it: the
// value, or the key of a ConfigMap of the manifests. ok is false for a
// value the manifests cannot tell (a Secret, the downward API) and for an
// optional reference that is missing.
func (m *manifests) envValue(e corev1.EnvVar) (v string, ok bool, err error) {
	if e.ValueFrom == nil {
		return e.Value, true, nil
	}
	ref := e.ValueFrom.ConfigMapKeyRef
	if ref == nil {
		return "", false, nil
	}
	optional := ref.Optional != nil && *ref.Optional
	i := slices.IndexFunc(m.configMaps, func(cm *corev1.ConfigMap) bool { return cm.Name == ref.Name })
	switch {
	case i < 0 && optional:
		return "", false, nil
	case i < 0:
		return "", false, fmt.Errorf("ConfigMap %s is not in the manifests: the pod would not start", ref.Name)
	}
	v, found := m.configMaps[i].Data[ref.Key]
	switch {
	case !found && optional:
		return "", false, nil
	case !found:
		return "", false, fmt.Errorf("%s has no key %q: the pod would not start", m.at("ConfigMap", ref.Name), ref.Key)
	}
	return v, true, nil
}

// get returns a flag's effective value, as scoregate picks it: the
// command line, then the container's environment, then the image's, then
// serve's default.
func (g *gate) get(name string) string {
	if v, ok := g.set[name]; ok {
		return v
	}
	if v, ok := g.in.img.env["SCOREGATE_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))]; ok {
		return v
	}
	return g.in.defaults[name]
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

// aksChecks are run on every build, in this order; the names are the
// rules a finding names, and what TestAKSChecksCatch expects to fire.
var aksChecks = []struct {
	name  string
	check aksCheck
}{
	{"flags", checkFlags},
	{"env refs", checkEnvRefs},
	{"cname", checkCName},
	{"files", checkFiles},
	{"probes", checkProbes},
	{"listen ports", checkListenPorts},
	{"selectors", checkSelectors},
	{"monitoring", checkMonitoring},
	{"grace", checkGrace},
	{"non-root", checkNonRoot},
	{"hardening", checkHardening},
	{"bind caps", checkBindCaps},
	{"host ports", checkHostPorts},
	{"resources", checkResources},
	{"model service", checkModelService},
	{"load balancer", checkLoadBalancer},
	{"placement", checkPlacement},
	{"acme", checkACME},
	{"cert-manager", checkCertManager},
	{"no secrets", checkNoSecrets},
	{"alerts", checkAlerts},
}

// runAKSChecks returns the problems of every check, by check name.
func runAKSChecks(m *manifests) map[string][]string {
	out := map[string][]string{}
	for _, c := range aksChecks {
		if ps := c.check(m); len(ps) > 0 {
			out[c.name] = ps
		}
	}
	return out
}

// checkAKSDir builds the kustomization dir and runs every check on it.
func checkAKSDir(dir string, in *ruleInputs) []finding {
	docs, err := aksBuild(dir)
	if err != nil {
		return []finding{{dir, "build", err.Error()}}
	}
	m, err := aksDecode(dir, docs, in)
	if err != nil {
		return []finding{{dir, "decode", err.Error()}}
	}
	var fs []finding
	for _, c := range aksChecks {
		for _, p := range c.check(m) {
			fs = append(fs, finding{dir, c.name, p})
		}
	}
	return fs
}

// checkFlags: every argument and SCOREGATE_* variable of a scoregate
// container is one of serve's flags, and a variable's ConfigMap exists.
func checkFlags(m *manifests) []string {
	var ps []string
	gs := m.gates()
	if len(gs) == 0 {
		ps = append(ps, "no scoregate container (an image named scoregate)")
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

// checkCName: scoregate serves a name, and it is a host name. (The acme
// and cert-manager checks compare it with the DNS label and the
// Certificate.)
func checkCName(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		cname := g.get("ssl-cname")
		switch {
		case g.get("dev") == "true", g.broken["ssl-cname"]:
			// The flags check reports a variable that refers to nothing.
		case cname == "" && g.get("acme") == "true" && g.get("leaf-domain-label") != "":
			// The acme check's.
		case cname == "":
			ps = append(ps, fmt.Sprintf("%s: no --ssl-cname (nor SCOREGATE_SSL_CNAME): set the overlay's ConfigMap scoregate-name, key cname, to the name clients use", g.where))
		default:
			if err := checkHostName(cname); err != nil {
				ps = append(ps, fmt.Sprintf("%s: --ssl-cname=%q: %v", g.where, cname, err))
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
// and its target port is a port of that pod's containers. The one
// exception is the backend Service when the manifests hold no model: its
// pods are yours, deployed apart (or the sample-model component).
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
	modelApart := len(m.deployments) == 0
	for _, s := range m.services {
		pods := m.selected(labels.SelectorFromSet(s.Spec.Selector))
		if len(pods) == 0 && modelApart && m.isBackend(s.Name) {
			continue
		}
		if len(pods) == 0 {
			ps = append(ps, fmt.Sprintf("%s: selector %v matches no pod template", m.at("Service", s.Name), s.Spec.Selector))
			continue
		}
		for _, sp := range s.Spec.Ports {
			if !hasPort(pods, sp.TargetPort) {
				ps = append(ps, fmt.Sprintf("%s: port %d's target %s is no container port of the pods selected", m.at("Service", s.Name), sp.Port, sp.TargetPort.String()))
			}
		}
	}
	for _, pm := range m.podMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			ps = append(ps, fmt.Sprintf("%s: %v", m.at("PodMonitor", pm.Name), err))
			continue
		}
		pods := m.selected(sel)
		if len(pods) == 0 {
			ps = append(ps, fmt.Sprintf("%s: selector matches no pod template", m.at("PodMonitor", pm.Name)))
		}
		for _, e := range pm.Spec.PodMetricsEndpoints {
			if !hasPort(pods, intstr.FromString(e.Port)) {
				ps = append(ps, fmt.Sprintf("%s: port %q is no container port of the pods selected", m.at("PodMonitor", pm.Name), e.Port))
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

// checkHardening: scoregate runs as a numeric non-root user and group
// (the image's is 65532, which the Dockerfile check keeps numeric),
// read-only, without privilege escalation, without capabilities beyond
// NET_BIND_SERVICE, under the runtime's seccomp profile.
func checkHardening(m *manifests) []string {
	var ps []string
	for _, g := range m.gates() {
		nonRoot, user, seccomp := effectiveSecurity(g.spec, g.c)
		if !nonRoot || user == nil || *user == 0 {
			ps = append(ps, fmt.Sprintf("%s: want runAsNonRoot and a non-zero runAsUser (the image's is 65532)", g.where))
		}
		var group *int64
		if psc := g.spec.SecurityContext; psc != nil {
			group = psc.RunAsGroup
		}
		if sc := g.c.SecurityContext; sc != nil && sc.RunAsGroup != nil {
			group = sc.RunAsGroup
		}
		if group == nil || *group == 0 {
			ps = append(ps, fmt.Sprintf("%s: want a non-zero runAsGroup (the image's is 65532)", g.where))
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
			case isScoregate(c) && m.in.img.netBindService:
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
// port, and that Service keeps traffic on the node (so that this can be
// checked, the backend Service is part of the manifests even when the
// model's pods are not).
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
			ps = append(ps, fmt.Sprintf("%s: want internalTrafficPolicy Local, so that scoregate reaches only its own node's model", m.at("Service", s.Name)))
		}
	}
	return ps
}

// isBackend: some scoregate container's --backend names Service name.
func (m *manifests) isBackend(name string) bool {
	for _, g := range m.gates() {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(g.get("backend"), "http://"))
		if err == nil && strings.Split(host, ".")[0] == name {
			return true
		}
	}
	return false
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
			ps = append(ps, fmt.Sprintf("%s: externalTrafficPolicy %q, want Local", m.at("Service", s.Name), s.Spec.ExternalTrafficPolicy))
		}
		if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Port == 443 }) {
			ps = append(ps, fmt.Sprintf("%s: no port 443", m.at("Service", s.Name)))
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
			ps = append(ps, fmt.Sprintf("%s: neither nodeSelector nor affinity: it would run on every node", m.at("DaemonSet", d.Name)))
		}
	}
	return ps
}

const dnsLabelAnnotation = "service.beta.kubernetes.io/azure-dns-label-name"

// checkACME: with --acme, a cloudapp.azure.com name ordered is the one
// Azure publishes for the Service (the DNS label annotation, in a known
// region), port 80 reaches --http-listen, and --storage is a ReadWriteMany
// volume shared by the pods. (Your own name needs your DNS record instead
// of the annotation.)
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
		first, rest, _ := strings.Cut(cname, ".")
		region, cloudapp := strings.CutSuffix(rest, ".cloudapp.azure.com")
		switch {
		case cname == "" && g.get("leaf-domain-label") != "":
			ps = append(ps, fmt.Sprintf("%s: --leaf-domain-label: a pod starting on fresh storage draws a name of its own, which %s's %s cannot follow; draw the name once with scoregate domain and set it as the cname (ConfigMap scoregate-name)",
				g.where, m.at("Service", lb.Name), dnsLabelAnnotation))
		case !cloudapp:
			// Your own name: your DNS record points it at the Service.
		case strings.Contains(region, ".") || first != label:
			ps = append(ps, fmt.Sprintf("%s: --ssl-cname=%q is not <label>.<region>.cloudapp.azure.com for %s's %s=%q: Azure would publish another name than the one ordered",
				g.where, cname, m.at("Service", lb.Name), dnsLabelAnnotation, label))
		case g.get("allow-unknown-region") != "true":
			if err := certs.CheckRegion(region); err != nil {
				ps = append(ps, fmt.Sprintf("%s: --ssl-cname=%q: %v (the region must be the cluster's)", g.where, cname, err))
			}
		}
		hp, err := listenPort(g.get("http-listen"))
		if err != nil || !slices.ContainsFunc(lb.Spec.Ports, func(sp corev1.ServicePort) bool {
			n, ok := containerPort(g.c, sp.TargetPort)
			return sp.Port == 80 && ok && int(n) == hp
		}) {
			ps = append(ps, fmt.Sprintf("%s: %s port 80 does not reach --http-listen=%s (HTTP-01)", g.where, m.at("Service", lb.Name), g.get("http-listen")))
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

// checkCertManager: each Certificate's names are host names and cover
// --ssl-cname, it writes the Secret that scoregate mounts, and it names an
// Issuer that solves DNS-01 in Azure DNS with a managed identity.
func checkCertManager(m *manifests) []string {
	var ps []string
	for _, c := range m.certificates {
		at := m.at("Certificate", c.Name)
		for _, n := range c.Spec.DNSNames {
			if err := checkHostName(n); err != nil {
				ps = append(ps, fmt.Sprintf("%s: dnsNames %q: %v", at, n, err))
			}
		}
		for _, g := range m.gates() {
			if cname := g.get("ssl-cname"); cname != "" && !slices.Contains(c.Spec.DNSNames, cname) { // no name is the cname check's
				ps = append(ps, fmt.Sprintf("%s: dnsNames %q lack --ssl-cname=%q of %s", at, c.Spec.DNSNames, g.get("ssl-cname"), g.where))
			}
			if !slices.ContainsFunc(g.spec.Volumes, func(v corev1.Volume) bool {
				return v.Secret != nil && v.Secret.SecretName == c.Spec.SecretName
			}) {
				ps = append(ps, fmt.Sprintf("%s: %s mounts no Secret %s", at, g.where, c.Spec.SecretName))
			}
		}
		i := slices.IndexFunc(m.issuers, func(is *issuer) bool { return is.Name == c.Spec.IssuerRef.Name && is.Kind == c.Spec.IssuerRef.Kind })
		if i < 0 {
			ps = append(ps, fmt.Sprintf("%s: issuerRef %s %s is not in the manifests", at, c.Spec.IssuerRef.Kind, c.Spec.IssuerRef.Name))
			continue
		}
		is := m.issuers[i]
		for _, s := range is.Spec.ACME.Solvers {
			if s.DNS01 == nil || s.DNS01.AzureDNS == nil || s.DNS01.AzureDNS.ManagedIdentity == nil {
				ps = append(ps, fmt.Sprintf("%s: a solver that is not DNS-01 in Azure DNS with a managed identity (the Service exposes 443 only)", m.at(is.Kind, is.Name)))
			}
		}
		if len(is.Spec.ACME.Solvers) == 0 {
			ps = append(ps, fmt.Sprintf("%s: no solver", m.at(is.Kind, is.Name)))
		}
	}
	return ps
}

// checkNoSecrets: keys are never in git; the Secret is the operator's or
// cert-manager's.
func checkNoSecrets(m *manifests) []string {
	var ps []string
	for _, s := range m.secrets {
		ps = append(ps, fmt.Sprintf("%s: secrets do not belong in the manifests", m.at("Secret", s.Name)))
	}
	return ps
}

// checkMonitoring: each PodMonitor that selects scoregate's pods scrapes
// /metrics on the port of --metrics-listen.
func checkMonitoring(m *manifests) []string {
	var ps []string
	for _, pm := range m.podMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			continue // the selectors check's
		}
		for _, g := range m.gates() {
			if sel.Empty() || !slices.ContainsFunc(m.selected(sel), func(p aksPod) bool { return &p.tmpl.Spec == g.spec }) {
				continue
			}
			want, err := listenPort(g.get("metrics-listen"))
			if err != nil {
				continue // the probes check's
			}
			for _, e := range pm.Spec.PodMetricsEndpoints {
				n, ok := containerPort(g.c, intstr.FromString(e.Port))
				if !ok {
					continue // the selectors check's
				}
				if int(n) != want || e.Path != "/metrics" {
					ps = append(ps, fmt.Sprintf("%s: endpoint port %q path %q, want /metrics on %d (--metrics-listen=%s of %s)",
						m.at("PodMonitor", pm.Name), e.Port, e.Path, want, g.get("metrics-listen"), g.where))
				}
			}
		}
	}
	return ps
}

// checkAlerts: every expression of a PrometheusRule parses and selects
// metrics that scoregate exports.
func checkAlerts(m *manifests) []string {
	var ps []string
	for _, r := range m.rules {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				p, _ := exprProblems(rule.Expr, m.in.metrics)
				for _, e := range p {
					ps = append(ps, fmt.Sprintf("%s: alert %s: %s", m.at("PrometheusRule", r.Name), rule.Alert, e))
				}
			}
		}
	}
	return ps
}

// aksLoad builds and decodes the kustomization dir, failing the test on
// an error.
func aksLoad(t *testing.T, dir string, in *ruleInputs) *manifests {
	t.Helper()
	docs, err := aksBuild(dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m, err := aksDecode(dir, docs, in)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// withComponents returns an edit that turns components on in an overlay,
// as deploy/aks/README.md says to.
func withComponents(comps ...string) func(string) string {
	return func(s string) string {
		s += "components:\n"
		for _, c := range comps {
			s += "  - ../../components/" + c + "\n"
		}
		return s
	}
}

// TestAKSShipped: what each shipped overlay is, as applied without
// components. (The rules themselves run in TestDeployRules.)
func TestAKSShipped(t *testing.T) {
	in := loadRuleInputs(t)
	for _, o := range aksOverlays {
		t.Run(o, func(t *testing.T) {
			dir := "aks/overlays/" + o
			docs, err := aksBuild(dir)
			if err != nil {
				t.Fatal(err)
			}
			// Nothing that needs the Prometheus Operator's CRDs.
			for _, d := range docs {
				if bytes.Contains(d.yaml, []byte("monitoring.coreos.com/")) {
					t.Errorf("%s: an object of the Prometheus Operator's kinds, which fails on a cluster without them:\n%s", d.origin, d.yaml)
				}
			}
			m := aksLoad(t, dir, in)
			// What makes each overlay what it is, so that the conditional
			// checks (acme, cert-manager) are not passed vacuously.
			gs := m.gates()
			if len(gs) != 1 || len(m.daemonSets) != 1 || len(m.namespaces) != 1 {
				t.Fatalf("want one DaemonSet running scoregate and one Namespace; have %d, %d, %d", len(gs), len(m.daemonSets), len(m.namespaces))
			}
			if len(m.deployments) != 0 {
				t.Errorf("%d Deployments; the sample model is opt-in (components/sample-model)", len(m.deployments))
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
			// The name comes from one place: the overlay's ConfigMap
			// scoregate-name, never an argument.
			c := gs[0].c
			if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--ssl-cname") }) {
				t.Errorf("args %q give --ssl-cname; it comes from the ConfigMap scoregate-name", c.Args)
			}
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SCOREGATE_SSL_CNAME" })
			if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.ConfigMapKeyRef == nil ||
				!strings.HasPrefix(c.Env[i].ValueFrom.ConfigMapKeyRef.Name, "scoregate-name") || c.Env[i].ValueFrom.ConfigMapKeyRef.Key != "cname" {
				t.Errorf("env %v: want SCOREGATE_SSL_CNAME from ConfigMap scoregate-name, key cname", c.Env)
			}
			if origin := m.origin["ConfigMap/"+c.Env[max(i, 0)].ValueFrom.ConfigMapKeyRef.Name]; origin != filepath.Join(dir, "kustomization.yaml") {
				t.Errorf("the cname's ConfigMap comes from %q, want the overlay's kustomization.yaml", origin)
			}
			// Grafana's dashboard, as deploy/dashboard.json.
			if !slices.ContainsFunc(m.configMaps, func(cm *corev1.ConfigMap) bool {
				return cm.Labels["grafana_dashboard"] == "1" && len(cm.Data) == 1 && cm.Data["scoregate.json"] == string(in.board)
			}) {
				t.Error("no ConfigMap labelled grafana_dashboard=1 holds dashboard.json as scoregate.json")
			}
		})
	}
}

// TestAKSComponents: each overlay with each component builds, passes
// every rule, and gets what the component is for.
func TestAKSComponents(t *testing.T) {
	in := loadRuleInputs(t)
	for _, o := range aksOverlays {
		for _, comp := range aksComponents {
			t.Run(o+"+"+comp, func(t *testing.T) {
				root := copyDeploy(t, "aks")
				dir := filepath.Join(root, "overlays", o)
				editFile(t, filepath.Join(dir, "kustomization.yaml"), withComponents(comp))
				for _, f := range checkAKSDir(dir, in) {
					t.Error(f)
				}
				m := aksLoad(t, dir, in)
				ds := &m.daemonSets[0].Spec.Template
				switch comp {
				case "monitoring", "monitoring-azure":
					want := map[string]string{"monitoring": "monitoring.coreos.com/v1", "monitoring-azure": "azmonitoring.coreos.com/v1"}[comp]
					if len(m.podMonitors) != 1 || m.podMonitors[0].APIVersion != want {
						t.Fatalf("PodMonitors %v, want one of %s", m.podMonitors, want)
					}
					pm := m.podMonitors[0]
					sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
					if err != nil || !slices.ContainsFunc(m.selected(sel), func(p aksPod) bool { return p.tmpl == ds }) {
						t.Errorf("PodMonitor selector %v does not select the scoregate pods (%v)", pm.Spec.Selector, ds.Labels)
					}
					g := m.gates()[0]
					port, _ := listenPort(g.get("metrics-listen"))
					if n, ok := containerPort(g.c, intstr.FromString(pm.Spec.PodMetricsEndpoints[0].Port)); !ok || int(n) != port {
						t.Errorf("PodMonitor port %q is %d, want the metrics port %d", pm.Spec.PodMetricsEndpoints[0].Port, n, port)
					}
					if pm.Namespace != "scoregate" {
						t.Errorf("PodMonitor namespace %q, want the overlay's scoregate", pm.Namespace)
					}
					if comp == "monitoring" && (len(m.rules) != 1 || !reflect.DeepEqual(m.rules[0].Spec, in.alerts)) {
						t.Errorf("%d PrometheusRules; want one holding alerts.yaml's groups as they are", len(m.rules))
					}
					if comp == "monitoring-azure" && len(m.rules) != 0 {
						t.Errorf("%d PrometheusRules: Azure Managed Prometheus takes rule groups as Azure resources", len(m.rules))
					}
				case "sample-model":
					if len(m.deployments) != 1 {
						t.Fatalf("%d Deployments, want the sample model", len(m.deployments))
					}
					svc := m.services[slices.IndexFunc(m.services, func(s *corev1.Service) bool { return s.Name == "scoring-model" })]
					if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(m.deployments[0].Spec.Template.Labels)) {
						t.Errorf("Service scoring-model does not select the sample model")
					}
				}
			})
		}
	}
}

// TestAKSOneName: the name is set in one place per overlay; changing it
// there changes --ssl-cname, the Service's DNS label (acme) and the
// Certificate's dnsNames (cert-manager) together, and rolls the pods (the
// generated ConfigMap's name changes).
func TestAKSOneName(t *testing.T) {
	in := loadRuleInputs(t)
	for _, tt := range []struct{ overlay, name, label string }{
		{"own-cert", "api.fabrikam.net", ""},
		{"cert-manager", "api.fabrikam.net", ""},
		{"acme", "riskq7w2m1.northeurope.cloudapp.azure.com", "riskq7w2m1"},
	} {
		t.Run(tt.overlay, func(t *testing.T) {
			before := aksLoad(t, "aks/overlays/"+tt.overlay, in)
			root := copyDeploy(t, "aks")
			dir := filepath.Join(root, "overlays", tt.overlay)
			editFile(t, filepath.Join(dir, "kustomization.yaml"), func(s string) string {
				re := regexp.MustCompile(`(?m)^(\s+- cname=)\S+$`)
				if n := len(re.FindAllString(s, -1)); n != 1 {
					t.Fatalf("%d cname literals in the overlay, want 1", n)
				}
				return re.ReplaceAllString(s, "${1}"+tt.name)
			})
			for _, f := range checkAKSDir(dir, in) {
				t.Error(f)
			}
			m := aksLoad(t, dir, in)
			g := m.gates()[0]
			if got := g.get("ssl-cname"); got != tt.name {
				t.Errorf("--ssl-cname = %q, want %q", got, tt.name)
			}
			if ref, old := g.c.Env, before.gates()[0].c.Env; slices.Equal(ref, old) {
				t.Errorf("env %v unchanged: the ConfigMap's name (hash) should change, so that the pods roll", ref)
			}
			for _, s := range m.services {
				if got := s.Annotations[dnsLabelAnnotation]; s.Spec.Type == corev1.ServiceTypeLoadBalancer && got != tt.label {
					t.Errorf("Service %s: %s = %q, want %q", s.Name, dnsLabelAnnotation, got, tt.label)
				}
			}
			if tt.overlay == "cert-manager" {
				if got := m.certificates[0].Spec.DNSNames; !slices.Equal(got, []string{tt.name}) {
					t.Errorf("Certificate dnsNames = %q, want [%s]", got, tt.name)
				}
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
	in := loadRuleInputs(t)
	for _, doc := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {typo: 1}\n",
		"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: x, commonName: x}\n",
		"apiVersion: azmonitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\nspec: {groups: []}\n",
	} {
		if _, err := aksDecode("test", []builtDoc{{yaml: []byte(doc), origin: "test.yaml"}}, in); err == nil {
			t.Errorf("aksDecode(%q) = nil error, want one", doc)
		}
	}
}

// TestAKSChecksCatch breaks a copy of an overlay, with the monitoring and
// sample-model components on so that every check has something to check,
// in one way at a time and expects exactly the check for that way to
// report it.
func TestAKSChecksCatch(t *testing.T) {
	in := loadRuleInputs(t)
	root := copyDeploy(t, "aks")
	docs := map[string][]builtDoc{}
	for _, o := range aksOverlays {
		dir := filepath.Join(root, "overlays", o)
		editFile(t, filepath.Join(dir, "kustomization.yaml"), withComponents("monitoring", "sample-model"))
		d, err := aksBuild(dir)
		if err != nil {
			t.Fatal(err)
		}
		docs[o] = d
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
	cnameMap := func(m *manifests) *corev1.ConfigMap {
		for _, cm := range m.configMaps {
			if strings.HasPrefix(cm.Name, "scoregate-name") {
				return cm
			}
		}
		t.Fatal("no ConfigMap scoregate-name")
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
		{"name's ConfigMap missing", "cert-manager", "flags", func(m *manifests) { cnameMap(m).Name = "other" }},
		{"name's key missing", "acme", "flags", func(m *manifests) { cnameMap(m).Data = map[string]string{"name": "x"} }},
		{"undefined variable", "own-cert", "env refs", func(m *manifests) {
			sg(m).Env = slices.DeleteFunc(sg(m).Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" })
		}},
		{"no name", "own-cert", "cname", func(m *manifests) { cnameMap(m).Data["cname"] = "" }},
		{"a URL for a name", "own-cert", "cname", func(m *manifests) { setArg(m, "ssl-cname", "https://score.example.com") }},
		{"a label for a name", "own-cert", "cname", func(m *manifests) { cnameMap(m).Data["cname"] = "score" }},
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
		{"metrics on loopback", "own-cert", "probes", func(m *manifests) { setArg(m, "metrics-listen", "127.0.0.1:9464") }},
		{"listen port undeclared", "own-cert", "listen ports", func(m *manifests) { setArg(m, "listen", ":9443") }},
		{"selector renamed", "own-cert", "selectors", func(m *manifests) {
			svc(m, "scoring-model").Spec.Selector = map[string]string{"app.kubernetes.io/name": "model"}
		}},
		{"target port missing", "own-cert", "selectors", func(m *manifests) {
			svc(m, "scoregate").Spec.Ports[0].TargetPort = intstr.FromInt32(443)
		}},
		{"pod monitor port", "own-cert", "selectors", func(m *manifests) { m.podMonitors[0].Spec.PodMetricsEndpoints[0].Port = "prom" }},
		{"pod monitor on https", "acme", "monitoring", func(m *manifests) { m.podMonitors[0].Spec.PodMetricsEndpoints[0].Port = "https" }},
		{"metrics moved, monitor not", "cert-manager", "monitoring", func(m *manifests) {
			setArg(m, "metrics-listen", ":9465")
			sg(m).Ports = append(sg(m).Ports, corev1.ContainerPort{Name: "metrics2", ContainerPort: 9465})
			sg(m).ReadinessProbe.HTTPGet.Port = intstr.FromString("metrics2")
			sg(m).LivenessProbe.HTTPGet.Port = intstr.FromString("metrics2")
		}},
		{"grace too short", "own-cert", "grace", func(m *manifests) { ds(m).TerminationGracePeriodSeconds = new(int64(45)) }},
		{"shutdown longer", "acme", "grace", func(m *manifests) { setArg(m, "shutdown-timeout", "1m") }},
		{"no preStop", "own-cert", "grace", func(m *manifests) { sg(m).Lifecycle = nil }},
		{"runAsUser removed", "cert-manager", "non-root", func(m *manifests) { model(m).SecurityContext.RunAsNonRoot = new(true) }},
		{"root user", "own-cert", "hardening", func(m *manifests) {
			ds(m).SecurityContext.RunAsNonRoot = new(false)
			ds(m).SecurityContext.RunAsUser = new(int64(0))
			sg(m).SecurityContext.RunAsNonRoot = nil
			sg(m).SecurityContext.RunAsUser = nil
		}},
		{"root group", "acme", "hardening", func(m *manifests) { sg(m).SecurityContext.RunAsGroup = new(int64(0)) }},
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
		{"name in two places", "acme", "acme", func(m *manifests) {
			first, rest, _ := strings.Cut(cnameMap(m).Data["cname"], ".")
			setArg(m, "ssl-cname", first+"2."+rest)
		}},
		{"unknown region", "acme", "acme", func(m *manifests) {
			first, _, _ := strings.Cut(cnameMap(m).Data["cname"], ".")
			cnameMap(m).Data["cname"] = first + ".westeurop.cloudapp.azure.com"
		}},
		{"leaf label drawn per pod", "acme", "acme", func(m *manifests) {
			cnameMap(m).Data["cname"] = ""
			setArg(m, "leaf-domain-label", "fraud")
			setArg(m, "region", "westeurope")
		}},
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
		{"certificate for another name", "cert-manager", "cert-manager", func(m *manifests) { m.certificates[0].Spec.DNSNames = []string{"other.example.com"} }},
		{"certificate for a placeholder", "cert-manager", "cert-manager", func(m *manifests) {
			m.certificates[0].Spec.DNSNames = append(m.certificates[0].Spec.DNSNames, "(the cname)")
		}},
		{"certificate to another secret", "cert-manager", "cert-manager", func(m *manifests) { m.certificates[0].Spec.SecretName = "tls" }},
		{"HTTP-01 solver", "cert-manager", "cert-manager", func(m *manifests) { m.issuers[0].Spec.ACME.Solvers[0].DNS01 = nil }},
		{"secret in git", "own-cert", "no secrets", func(m *manifests) {
			m.secrets = append(m.secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "scoregate-tls"}})
		}},
		{"alert on a metric not exported", "own-cert", "alerts", func(m *manifests) {
			m.rules[0].Spec.Groups[0].Rules[0].Expr = "scoregate_certificate_expiry_seconds < 86400"
		}},
		{"alert that does not parse", "acme", "alerts", func(m *manifests) {
			m.rules[0].Spec.Groups[0].Rules[0].Expr = "rate(scoregate_requests_total[5m]"
		}},
	} {
		covered[tt.check] = true
		t.Run(tt.name, func(t *testing.T) {
			if !slices.ContainsFunc(aksChecks, func(c struct {
				name  string
				check aksCheck
			}) bool {
				return c.name == tt.check
			}) {
				t.Fatalf("no check %q", tt.check)
			}
			m, err := aksDecode(tt.overlay, docs[tt.overlay], in)
			if err != nil {
				t.Fatal(err)
			}
			if ps := runAKSChecks(m); len(ps) > 0 {
				t.Fatalf("the unbroken copy fails: %q", ps)
			}
			tt.mutate(m)
			failed := runAKSChecks(m)
			if len(failed[tt.check]) == 0 {
				t.Errorf("check %q found nothing wrong", tt.check)
			}
			for name, ps := range failed {
				if name != tt.check {
					for _, p := range ps {
						t.Errorf("check %q fired too: %s", name, p)
					}
				}
			}
		})
	}
	for _, c := range aksChecks {
		if !covered[c.name] {
			t.Errorf("check %q is never shown to catch anything", c.name)
		}
	}
}

// readmeStaticIP is the patch aks/README.md gives for a reserved IP.
var readmeStaticIP = regexp.MustCompile("(?s)Add this to the overlay's `kustomization.yaml`[^\n]*\n\n```yaml\n(.*?)```")

// TestAKSReadmeStaticIP: the README's static-IP patch, added to an overlay
// as it says, builds and gives the Service the azure-pip-name annotation.
func TestAKSReadmeStaticIP(t *testing.T) {
	b, err := os.ReadFile("aks/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := readmeStaticIP.FindSubmatch(b)
	if m == nil {
		t.Fatal("aks/README.md has no static-IP patch block")
	}
	in := loadRuleInputs(t)
	for _, o := range aksOverlays {
		t.Run(o, func(t *testing.T) {
			dir := filepath.Join(copyDeploy(t, "aks"), "overlays", o)
			editFile(t, filepath.Join(dir, "kustomization.yaml"), func(s string) string {
				if strings.Contains(s, "\npatches:") {
					// Merge into the overlay's own list.
					return strings.Replace(s, "\npatches:\n", "\n"+string(m[1]), 1)
				}
				return s + string(m[1])
			})
			for _, f := range checkAKSDir(dir, in) {
				t.Error(f)
			}
			got := aksLoad(t, dir, in)
			i := slices.IndexFunc(got.services, func(s *corev1.Service) bool { return s.Spec.Type == corev1.ServiceTypeLoadBalancer })
			if i < 0 || got.services[i].Annotations["service.beta.kubernetes.io/azure-pip-name"] != "scoregate-ip" {
				t.Errorf("the LoadBalancer Service lacks azure-pip-name: scoregate-ip after the README's patch")
			}
		})
	}
}
