package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/mohproject/moh/fleet/exporter"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not installed (make deps, or apt-get install prometheus): %v", err)
	}
	return p
}

type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type rulesTest struct {
	Tests []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, v); err != nil && !strings.Contains(err.Error(), "not found in type") {
		t.Fatalf("%s: %v", path, err)
	}
}

func run(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAlertRules runs promtool's own checks and unit tests on the shipped
// rules, and insists that every alert is tested both ways: at a time it
// must fire (where promtool also proves the other series do not) and at
// one it must not.
func TestAlertRules(t *testing.T) {
	if out, err := run(t, "prometheus", "check", "rules", "moh.rules.yml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := run(t, "prometheus", "test", "rules", "moh.rules.test.yml"); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	var rules rulesFile
	readYAML(t, "prometheus/moh.rules.yml", &rules)
	var tests rulesTest
	readYAML(t, "prometheus/moh.rules.test.yml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, c := range tc.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				quiet[c.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("%s: no test where it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s: no test where it must stay quiet", r.Alert)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description a person reads", r.Alert)
			}
		}
	}
	if n < 15 {
		t.Errorf("only %d alerts found: the rules file did not parse as expected", n)
	}
}

// TestAlertRulesTestsCanFail: the promtool tests catch a rule that
// changed: a line-silent alert that waited 5 minutes instead of 30 s.
func TestAlertRulesTestsCanFail(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile("prometheus/moh.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	const want = "expr: moh_fleet_health_state == 2\n        for: 30s"
	if !strings.Contains(string(raw), want) {
		t.Fatalf("rules file no longer holds %q", want)
	}
	bad := strings.Replace(string(raw), want, "expr: moh_fleet_health_state == 2\n        for: 5m", 1)
	tests, err := os.ReadFile("prometheus/moh.rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "moh.rules.yml"), []byte(bad), 0o644)
	os.WriteFile(filepath.Join(dir, "moh.rules.test.yml"), tests, 0o644)
	out, err := run(t, dir, "test", "rules", "moh.rules.test.yml")
	if err == nil || !strings.Contains(out, "MohFleetLineSilent") {
		t.Fatalf("a 5-minute line-silent alert passed the tests: %v\n%s", err, out)
	}
}

// knownMetrics is every metric name moh serves: the box's /metrics
// (internal/metrics, read from its source so that no box is needed), the
// fleet exporter's, and Prometheus's own up.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{"up": true}
	files, _ := filepath.Glob("../internal/metrics/*.go")
	desc := regexp.MustCompile(`prometheus\.NewDesc\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	box := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range desc.FindAllStringSubmatch(string(raw), -1) {
			known[m[1]] = true
			box++
		}
	}
	if box < 10 {
		t.Fatalf("found only %d metric names in internal/metrics: the source layout changed", box)
	}
	for _, n := range exporter.MetricNames() {
		known[n] = true
	}
	return known
}

// promqlKeywords are the identifiers of PromQL that are not metric names
// (aggregations and functions are told apart by the parenthesis after
// them).
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true,
	// aggregations, which may be followed by "by (…)" before their "("
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// metricNames returns the metric names an expression selects: the
// identifiers outside label matchers, strings and ranges that are neither
// keywords, functions nor label lists.
func metricNames(expr string) []string {
	var out []string
	skipList := false // after by/on/…: the next (…) lists labels
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{' || c == '[':
			end := byte('}')
			if c == '[' {
				end = ']'
			}
			for i < len(expr) && expr[i] != end {
				if q := expr[i]; q == '"' || q == '\'' {
					for i++; i < len(expr) && expr[i] != q; i++ {
						if expr[i] == '\\' {
							i++
						}
					}
				}
				i++
			}
			i++
		case c == '(' && skipList:
			for i < len(expr) && expr[i] != ')' {
				i++
			}
			skipList = false
			i++
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(expr) && (expr[j] == '_' || expr[j] == ':' || expr[j] >= 'a' && expr[j] <= 'z' || expr[j] >= 'A' && expr[j] <= 'Z' || expr[j] >= '0' && expr[j] <= '9') {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			switch {
			case promqlKeywords[strings.ToLower(word)]:
				l := strings.ToLower(word)
				skipList = l == "by" || l == "without" || l == "on" || l == "ignoring" || l == "group_left" || l == "group_right"
			case k < len(expr) && expr[k] == '(':
				// a function or an aggregation
			default:
				out = append(out, word)
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			// a number, possibly 1e9 or a duration like 5m after offset
			j := i
			for j < len(expr) && (expr[j] >= '0' && expr[j] <= '9' || expr[j] == '.' || expr[j] == 'e' || expr[j] == 'E' || strings.ContainsRune("smhdwy", rune(expr[j]))) {
				j++
			}
			i = j
		default:
			i++
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (site) (rate(foo_total{a="b",c=~"x|y"}[5m])) and on (device, site) bar == 0`: {"foo_total", "bar"},
		`moh_a - time() < 30 * 86400`:                                                                       {"moh_a"},
		`count(moh_b{site=~"$site"} == 2) or vector(0)`:                                                     {"moh_b"},
		`moh_c unless on (version) topk(1, count by (version) (moh_c))`:                                     {"moh_c", "moh_c"},
		`label_replace(x, "dst", "$1", "src", "(.*)") * on (device) group_left (site, version) y offset 1h`: {"x", "y"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// grafanaVars stand in for the dashboard's variables, so each query is a
// valid expression promtool can parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d", "$site", ".*", "${site}", ".*")

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// TestRulesAndDashboardNameRealMetrics: a renamed metric must break this
// test rather than leave an alert that can never fire or an empty panel;
// and every dashboard query must parse.
func TestRulesAndDashboardNameRealMetrics(t *testing.T) {
	known := knownMetrics(t)
	check := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 && !strings.Contains(expr, "time()") {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("%s: %q names %s, which neither the box nor the fleet exporter serves", where, expr, n)
			}
		}
	}
	var rules rulesFile
	readYAML(t, "prometheus/moh.rules.yml", &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			check("rule "+r.Alert+r.Record, r.Expr)
		}
	}

	raw, err := os.ReadFile("grafana/moh-fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	var asRules strings.Builder
	asRules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for j, tg := range p.Targets {
			e := grafanaVars.Replace(tg.Expr)
			check(fmt.Sprintf("panel %q", p.Title), e)
			exprs = append(exprs, e)
			q, _ := json.Marshal(e) // a JSON string is a YAML string
			fmt.Fprintf(&asRules, "  - record: panel_%d_%d\n    expr: %s\n", i, j, q)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			s, _ := q["query"].(string)
			if m := regexp.MustCompile(`label_values\((\w+)`).FindStringSubmatch(s); m != nil && !known[m[1]] {
				t.Errorf("variable %s: %q names %s, which the exporter does not serve", v.Name, s, m[1])
			}
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d queries found in the dashboard", len(exprs))
	}
	// promtool parses each query as a recording rule would be.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dash.rules.yml"), []byte(asRules.String()), 0o644)
	if out, err := run(t, dir, "check", "rules", "dash.rules.yml"); err != nil {
		t.Fatalf("a dashboard query does not parse: %v\n%s", err, out)
	}
}
