package validate

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

var promParser = parser.NewParser(parser.Options{})

func parseRules(t *testing.T, what string, data []byte) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(data, false, model.UTF8Validation, promParser, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", what, errs)
	}
	return groups
}

// exportedMetrics are the metric names the services' Go code registers: literal
// "flagforge_..." names and Namespace/Subsystem/Name triples, with the series a
// histogram adds.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	literal := regexp.MustCompile(`"(flagforge_[a-z0-9_]+)"`)
	triple := regexp.MustCompile(`Namespace:\s*"(\w+)",\s*Subsystem:\s*"(\w+)",\s*Name:\s*"(\w+)"`)
	names := map[string]bool{"up": true}
	for _, dir := range []string{"services", "pkg"} {
		err := filepath.WalkDir(filepath.Join(deployDir, "..", dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range literal.FindAllSubmatch(src, -1) {
				names[string(m[1])] = true
			}
			for _, m := range triple.FindAllSubmatch(src, -1) {
				names[string(m[1])+"_"+string(m[2])+"_"+string(m[3])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for n := range names {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[n+suffix] = true
		}
	}
	if !names["flagforge_publisher_outbox_lag_seconds"] || !names["flagforge_evaluator_manifest_version"] {
		t.Fatalf("the metric scan found too little: %d names", len(names))
	}
	return names
}

// unknownMetrics returns a problem for every metric an expression selects that
// no code exports (an alert on a misspelt metric never fires), or the parse
// error.
func unknownMetrics(where, expr string, exported map[string]bool) []string {
	e, err := promParser.ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	var problems []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && !exported[vs.Name] {
			problems = append(problems, fmt.Sprintf("%s selects %q, which no FlagForge code exports", where, vs.Name))
		}
		return nil
	})
	return problems
}

func checkMetricsExist(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	for _, p := range unknownMetrics(where, expr, exported) {
		t.Error(p)
	}
}

func TestAlertRulesParseAndQueryExportedMetrics(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	file := parseRules(t, "alerts.yml", data)
	exported := exportedMetrics(t)
	var alerts []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkMetricsExist(t, "alert "+r.Alert, r.Expr, exported)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s needs a severity label and a summary", r.Alert)
			}
			if rb := r.Annotations["runbook"]; rb != "docs/operations.md#"+strings.ToLower(r.Alert) {
				t.Errorf("alert %s: runbook %q, want its section in docs/operations.md", r.Alert, rb)
			}
		}
	}
	for _, want := range []string{"FlagForgeEvaluatorBehind", "FlagForgeOutboxLag", "FlagForgePublishRedisFailures", "FlagForgeAuditChainBroken"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s (evaluator staleness, outbox lag, publish failures, audit verification)", want)
		}
	}
	ops, err := os.ReadFile(filepath.Join(deployDir, "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !strings.Contains(string(ops), "### "+a+"\n") {
			t.Errorf("docs/operations.md has no section \"### %s\"", a)
		}
	}

	// The PrometheusRule of the Kubernetes base carries the same groups.
	pr, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "base", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocuments(pr)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(docs[0], &spec); err != nil {
		t.Fatal(err)
	}
	specYAML, err := yaml.JSONToYAML(spec.Spec)
	if err != nil {
		t.Fatal(err)
	}
	operator := parseRules(t, "prometheusrule.yaml", specYAML)
	a, _ := json.Marshal(file)
	b, _ := json.Marshal(operator)
	if string(a) != string(b) {
		t.Errorf("deploy/kubernetes/base/prometheusrule.yaml and deploy/prometheus/alerts.yml differ:\n%s\n%s", a, b)
	}
}

func TestRuleParserRefusesBrokenRules(t *testing.T) {
	t.Parallel()
	for name, rules := range map[string]string{
		"bad PromQL":     "groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m]'}]}]",
		"unknown field":  "groups: [{name: g, rules: [{alert: A, expr: up, fro: 5m}]}]",
		"no expression":  "groups: [{name: g, rules: [{alert: A}]}]",
		"duplicate name": "groups: [{name: g, rules: []}, {name: g, rules: []}]",
	} {
		if _, errs := rulefmt.Parse([]byte(rules), false, model.UTF8Validation, promParser, slog.New(slog.NewTextHandler(io.Discard, nil))); len(errs) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
	exported := map[string]bool{"flagforge_real": true}
	if got := unknownMetrics("probe", "rate(flagforge_not_real[5m]) > flagforge_real", exported); len(got) != 1 {
		t.Errorf("unknown metrics found: %v, want flagforge_not_real only", got)
	}
}

func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "base", "dashboards", "flagforge.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) < 10 {
		t.Fatalf("dashboard uid %q title %q with %d panels", dash.UID, dash.Title, len(dash.Panels))
	}
	exported := exportedMetrics(t)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			// Grafana's interval variables are not PromQL.
			expr := strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m")
			checkMetricsExist(t, "panel "+p.Title, expr, exported)
		}
	}
}
