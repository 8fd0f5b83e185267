package deploytest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaVars are the Grafana variables the dashboard's queries use,
// replaced by values of their kind before parsing ($__rate_interval is a
// range, $namespace sits inside a regex matcher).
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "${datasource}", "ds", "$namespace", "ns")

var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// MetricNames parses a PromQL expression (Grafana variables replaced, and
// Grafana's label_values(selector, label) reduced to its selector) with
// Prometheus' own parser and returns the metric names its selectors name.
// A selector with no metric name is an error: it would match anything.
func MetricNames(expr string) ([]string, error) {
	e := grafanaVars.Replace(expr)
	if m := labelValues.FindStringSubmatch(e); m != nil {
		e = m[1]
	}
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(e)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if m.Type != labels.MatchEqual {
					bad = fmt.Errorf("selector %s matches metric names by %s", vs, m.Type)
				}
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}

// Unregistered returns the metric names expr uses that are not in reg
// (allowed: names Prometheus itself makes, such as up).
func Unregistered(expr string, reg map[string]bool, allowed ...string) ([]string, error) {
	names, err := MetricNames(expr)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if !reg[n] && !contains(allowed, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
