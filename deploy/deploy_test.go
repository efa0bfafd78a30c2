package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/scoregate/scoregate/metrics"
)

// describer is a prometheus.Registerer that records the names of the
// metrics registered on it.
type describer struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return false }

// exported returns every metric name scoregate's /metrics can show.
func exported(t *testing.T) map[string]bool {
	d := &describer{names: map[string]bool{}}
	metrics.New(d)
	if !d.names["scoregate_requests_total"] || !d.names["go_goroutines"] {
		t.Fatalf("exported names look wrong: %v", d.names)
	}
	return d.names
}

// exprProblems parses a PromQL expression and checks that every metric it
// selects is exported (histogram series by their family name); it returns
// what is wrong and the exported names it selects.
func exprProblems(expr string, names map[string]bool) (problems, used []string) {
	p := parser.NewParser(parser.Options{})
	e, err := p.ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("%q does not parse: %v", expr, err)}, nil
	}
	n := 0
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		n++
		name := vs.Name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
				name = base
			}
		}
		if !names[name] {
			problems = append(problems, fmt.Sprintf("%q selects %s, which scoregate does not export", expr, vs.Name))
		}
		used = append(used, name)
		return nil
	})
	if n == 0 {
		problems = append(problems, fmt.Sprintf("%q selects no metric", expr))
	}
	return problems, used
}

// checkExpr reports exprProblems as test errors and records the names used.
func checkExpr(t *testing.T, where, expr string, names map[string]bool, used map[string]bool) {
	t.Helper()
	problems, u := exprProblems(expr, names)
	for _, p := range problems {
		t.Errorf("%s: %s", where, p)
	}
	for _, n := range u {
		used[n] = true
	}
}

func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("alerts.yaml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil)
	for _, err := range errs {
		t.Errorf("alerts.yaml: %v", err)
	}
	if groups == nil {
		t.Fatal("alerts.yaml: no rule groups")
	}
	names, used := exported(t), map[string]bool{}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkExpr(t, "alerts.yaml "+r.Alert, r.Expr, names, used)
		}
	}
	// The alerts the observability issue asks for.
	for _, want := range []string{"ScoregateCertificateExpiresSoon", "ScoregateCertificateReloadFailing",
		"ScoregateHigh5xxRatio", "ScoregateBackendNotReady", "ScoregateHandshakeErrorsSpiking"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yaml has no %s alert", want)
		}
	}
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	// gridPos is decoded as Grafana reads it: four integers on its
	// 24-column grid. (A thresholds array once sat in w, which Grafana
	// refuses on import.)
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			GridPos struct{ X, Y, W, H int }
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		if g := p.GridPos; g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("dashboard.json: panel %q: gridPos %+v is off Grafana's 24-column grid", p.Title, g)
		}
	}
	names, used := exported(t), map[string]bool{}
	// Grafana's variables are not PromQL.
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard.json: panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, "dashboard.json panel "+p.Title, grafana.Replace(tg.Expr), names, used)
		}
	}
	// What the dashboard must show.
	for _, want := range []string{"scoregate_requests_total", "scoregate_request_duration_seconds",
		"scoregate_proxy_overhead_seconds", "scoregate_tls_handshakes_total", "scoregate_tls_handshake_errors_total",
		"scoregate_certificate_expiry_timestamp_seconds", "scoregate_certificate_reloads_total"} {
		if !used[want] {
			t.Errorf("dashboard.json shows nothing of %s", want)
		}
	}
}
