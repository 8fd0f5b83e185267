package deploytest

import (
	"io"
	"os"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

const ruleFile = "../monitoring/prometheusrule.yaml"

type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Record      string            `json:"record"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// The PrometheusRule's expressions parse with Prometheus' PromQL parser and
// name only registered metrics (and Prometheus' own up); durations parse;
// annotation templates parse; the alerts issue #15 asks for are there.
func TestPrometheusRule(t *testing.T) {
	reg, err := Registered()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		t.Fatalf("%s: %v", ruleFile, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("%s is %s %s", ruleFile, pr.APIVersion, pr.Kind)
	}
	// Prometheus' template functions the annotations use (values do not matter to parsing).
	funcs := template.FuncMap{"humanize": fmtAny, "humanizePercentage": fmtAny, "humanizeDuration": fmtAny}
	alerts := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert name", g.Name)
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s twice", r.Alert)
			}
			alerts[r.Alert] = true
			bad, err := Unregistered(r.Expr, reg, "up")
			if err != nil {
				t.Errorf("%s: %q does not parse: %v", r.Alert, r.Expr, err)
			}
			for _, n := range bad {
				t.Errorf("%s: metric %s is not registered by any ebbflow component", r.Alert, n)
			}
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: needs a severity label and a summary", r.Alert)
			}
			for k, a := range r.Annotations {
				// Prometheus defines these variables before an annotation's text.
				tm, err := template.New(k).Funcs(funcs).Option("missingkey=zero").Parse(
					"{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}" + a)
				if err != nil {
					t.Errorf("%s: annotation %s: %v", r.Alert, k, err)
					continue
				}
				data := struct {
					Labels, ExternalLabels map[string]string
					ExternalURL            string
					Value                  float64
				}{Labels: map[string]string{}, ExternalLabels: map[string]string{}, Value: 1}
				if err := tm.Execute(io.Discard, data); err != nil {
					t.Errorf("%s: annotation %s: %v", r.Alert, k, err)
				}
			}
		}
	}
	for _, a := range []string{"EbbflowIngestAnswering503", "EbbflowWindowConsumerLag", "EbbflowForecastWorseThanLastValue", "EbbflowActionsFailing"} {
		if !alerts[a] {
			t.Errorf("alert %s is missing", a)
		}
	}
}

func fmtAny(v any) string { return "" }
