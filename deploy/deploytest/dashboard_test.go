package deploytest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const dashboardFile = "../monitoring/grafana/ebbflow.json"

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// queries returns every PromQL query of the dashboard, named by where it is.
func (d dashboard) queries(t *testing.T) map[string]string {
	t.Helper()
	q := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				q[p.Title+" / "+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var s struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &s); err != nil {
			var plain string
			if err := json.Unmarshal(v.Query, &plain); err != nil {
				t.Fatalf("variable %s: query is neither a string nor {query}: %s", v.Name, v.Query)
			}
			s.Query = plain
		}
		q["variable "+v.Name] = s.Query
	}
	return q
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s is not valid JSON", dashboardFile)
	}
	return d
}

// The dashboard parses, every query parses with Prometheus' PromQL parser,
// and every metric a query names is one ebbflow's components register.
func TestDashboardQueriesUseRegisteredMetrics(t *testing.T) {
	reg, err := Registered()
	if err != nil {
		t.Fatal(err)
	}
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Fatalf("dashboard has no title or uid: %q %q", d.Title, d.UID)
	}
	qs := d.queries(t)
	if len(qs) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	used := map[string]bool{}
	for where, expr := range qs {
		names, err := MetricNames(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
			continue
		}
		for _, n := range names {
			used[n] = true
			if !reg[n] {
				t.Errorf("%s: metric %s is not registered by any ebbflow component", where, n)
			}
		}
	}
	// The areas the dashboard must cover, each by the metric that shows it.
	for _, n := range []string{
		"ebbflow_ingest_remote_write_requests_total", "ebbflow_ingest_samples_received_total", "ebbflow_ingest_duplicate_requests_total",
		"ebbflow_ingest_publish_latency_seconds_bucket", "ebbflow_window_windows_emitted_total", "ebbflow_window_consumer_lag_records",
		"ebbflow_forecast_abs_error_total", "ebbflow_forecast_last_value_abs_error_total", "ebbflow_autoscale_decisions_total",
		"ebbflow_actuate_actions_total", "ebbflow_mixing_nodes", "ebbflow_actuate_nodes_in_handover",
		"ebbflow_training_waiting_workloads", "ebbflow_training_preemptions_total",
	} {
		if !used[n] {
			t.Errorf("the dashboard does not show %s", n)
		}
	}
}

// The check above can fail: a misspelt or unregistered name, a selector
// without a name and a query that does not parse are all caught.
func TestMetricCheckCatchesBadQueries(t *testing.T) {
	reg, err := Registered()
	if err != nil {
		t.Fatal(err)
	}
	if len(reg) < 100 || !reg["ebbflow_actuate_apply_seconds_bucket"] || reg["ebbflow_actuate_apply_seconds"] || !reg["go_goroutines"] {
		t.Fatalf("registered names look wrong (%d): %v", len(reg), Sorted(reg))
	}
	if bad, err := Unregistered(`sum(rate(ebbflow_ingest_requests_total{code="503"}[5m]))`, reg); err != nil || len(bad) != 1 {
		t.Fatalf("a name no component registers passed: %v %v", bad, err)
	}
	if bad, err := Unregistered(`rate(ebbflow_actuate_apply_seconds[5m])`, reg); err != nil || len(bad) != 1 {
		t.Fatalf("a histogram's bare name passed: %v %v", bad, err)
	}
	if _, err := MetricNames(`sum(rate({code="503"}[5m]))`); err == nil {
		t.Fatal("a selector without a metric name passed")
	}
	if _, err := MetricNames(`sum(rate(ebbflow_ingest_remote_write_requests_total[5m])`); err == nil {
		t.Fatal("an unbalanced query parsed")
	}
	names, err := MetricNames(`label_values(ebbflow_actuate_leader{namespace=~"$namespace"}, namespace)`)
	if err != nil || len(names) != 1 || names[0] != "ebbflow_actuate_leader" {
		t.Fatalf("label_values: %v %v", names, err)
	}
}

// Panels have unique ids and use the dashboard's datasource variable, so
// the JSON imports into any Grafana with any Prometheus datasource.
func TestDashboardPanels(t *testing.T) {
	d := loadDashboard(t)
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, ok := ids[p.ID]; ok {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				if p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q uses datasource %q, not ${datasource}", p.Title, p.Datasource.UID)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}
