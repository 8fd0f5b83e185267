package backtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

func tracesDir(t testing.TB) string {
	t.Helper()
	d, err := trace.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func nasa(t testing.TB) *Series {
	t.Helper()
	s, err := ReadTraceFile(filepath.Join(tracesDir(t), "nasa_requests_per_minute.csv"), "nasa", trace.Options{ValueCol: "number_of_requests"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nasaSetup scores three days of the NASA trace, with the bundled model
// (trained on simulated traffic, never on this trace).
func nasaSetup(t testing.TB, days int) (*Series, Setup) {
	t.Helper()
	s := nasa(t)
	m, seen, err := LoadModel(context.Background(), "../../testdata/models", "qps", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(0)
	from := time.Date(1995, 7, 10, 0, 0, 0, 0, time.UTC)
	cfg.FromMs, cfg.ToMs = from.UnixMilli(), from.Add(time.Duration(days)*24*time.Hour).UnixMilli()
	cfg.Capacity = s.Quantile(s.Index(cfg.FromMs), s.Index(cfg.ToMs), 0.99) / (cfg.Target * 20)
	return s, Setup{Series: s, Config: cfg, HPA: DefaultHPAConfig(), Model: m, ModelSeen: seen}
}

func runAll(t testing.TB, s *Series, su Setup) *Result {
	t.Helper()
	ps, notes, err := Build(PolicyNames, su)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(s, su.Config, ps, nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Notes = notes
	return res
}

// TestNASASpanStructure runs every policy on three days of a real trace
// and checks facts that hold whatever the figures are.
func TestNASASpanStructure(t *testing.T) {
	s, su := nasaSetup(t, 3)
	res := runAll(t, s, su)
	if len(res.Policies) != len(PolicyNames) {
		t.Fatalf("%d policies in the result, want %d", len(res.Policies), len(PolicyNames))
	}
	if want := 3 * 24 * 60.0; res.Minutes != want {
		t.Errorf("scored %.0f minutes, want %.0f (no gap in this span)", res.Minutes, want)
	}
	static := res.Policy(PolicyStatic)
	for i := range res.Policies {
		p := &res.Policies[i]
		t.Logf("%-10s replica-min %8.0f  under %7.1f  over SLO %5d  events %5d  reversals %5d  replicas %d..%d  reasons %v",
			p.Policy, p.ReplicaMinutes, p.UnderProvisionedMinutes, p.MinutesOverSLO, p.ScaleEvents, p.Reversals, p.MinReplicas, p.MaxReplicas, p.Reasons)
		if p.MinReplicas < su.Config.MinReplicas || p.MaxReplicas > su.Config.MaxReplicas {
			t.Errorf("%s: replicas %d..%d outside %d..%d", p.Policy, p.MinReplicas, p.MaxReplicas, su.Config.MinReplicas, su.Config.MaxReplicas)
		}
		if p.ReadyReplicaMinutes > p.ReplicaMinutes {
			t.Errorf("%s: more ready replica-minutes (%.0f) than replica-minutes (%.0f)", p.Policy, p.ReadyReplicaMinutes, p.ReplicaMinutes)
		}
		if p.UnderProvisionedMinutes > res.Minutes || float64(p.MinutesOverSLO) > res.Minutes+1 {
			t.Errorf("%s: more bad minutes than minutes", p.Policy)
		}
		if p.ScaleUps+p.ScaleDowns != p.ScaleEvents || p.Reversals > p.ScaleEvents {
			t.Errorf("%s: %d events = %d up + %d down, %d reversals", p.Policy, p.ScaleEvents, p.ScaleUps, p.ScaleDowns, p.Reversals)
		}
		if len(p.Plot) != len(res.PlotLoad) {
			t.Errorf("%s: plot has %d points, load %d", p.Policy, len(p.Plot), len(res.PlotLoad))
		}
		if p.Policy != PolicyStatic && p.ReplicaMinutes >= static.ReplicaMinutes {
			t.Errorf("%s uses %.0f replica-minutes, no fewer than static peak provisioning (%.0f)", p.Policy, p.ReplicaMinutes, static.ReplicaMinutes)
		}
		if p.Policy != PolicyStatic && p.ScaleEvents == 0 {
			t.Errorf("%s never scaled over three days of a diurnal trace", p.Policy)
		}
	}
	// Static scales once (from the initial count to the peak's) and is
	// then never short of ready capacity after its start-up.
	if static.ScaleEvents > 1 || static.UnderProvisionedMinutes > su.Config.StartupDelay.Minutes() {
		t.Errorf("static: %d events, %.1f min under-provisioned", static.ScaleEvents, static.UnderProvisionedMinutes)
	}
	// The ebbflow row says which model forecast.
	if !strings.Contains(strings.Join(res.Notes, "\n"), "ebbflow-qps") {
		t.Errorf("notes do not name the model: %q", res.Notes)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, res); err != nil {
		t.Fatal(err)
	}
	for _, n := range PolicyNames {
		if !strings.Contains(buf.String(), n) {
			t.Errorf("table lacks %s:\n%s", n, buf.String())
		}
	}
	dir := t.TempDir()
	p, err := WritePNG(res, dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() < 1000 {
		t.Errorf("plot %s: %v", p, err)
	}
}

// TestDeterministic: the same input gives byte-identical JSON.
func TestDeterministic(t *testing.T) {
	s, su := nasaSetup(t, 1)
	a, _ := json.Marshal(NewReport(runAll(t, s, su)))
	b, _ := json.Marshal(NewReport(runAll(t, s, su)))
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of the same input differ")
	}
}

func TestBadInput(t *testing.T) {
	if _, err := ParsePolicies("ebbflow,kpa"); err == nil || !strings.Contains(err.Error(), `"kpa"`) {
		t.Errorf("unknown policy: %v, want an error naming kpa", err)
	}
	if _, err := ParsePolicies("hpa,hpa"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("repeated policy: %v", err)
	}
	if _, err := ReadTraceFile(filepath.Join(tracesDir(t), "no_such_trace.csv"), "x", trace.Options{}); err == nil || !strings.Contains(err.Error(), "no_such_trace.csv") {
		t.Errorf("missing trace: %v, want an error naming the file", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("time,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTraceFile(bad, "bad", trace.Options{}); err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "bad.csv") {
		t.Errorf("unparsable row: %v, want an error naming the file and line", err)
	}
	// A model of one-minute windows on a five-minute trace.
	elb, err := ReadTraceFile(filepath.Join(tracesDir(t), "elb_request_count_8c0756.csv"), "elb", trace.Options{ValueCol: "value"})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := LoadModel(context.Background(), "../../testdata/models", "qps", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(10)
	if _, _, err := Build([]string{PolicyEbbflow}, Setup{Series: elb, Config: cfg, Model: m}); !errors.Is(err, ErrModelMismatch) || !strings.Contains(err.Error(), m.Name) {
		t.Errorf("step mismatch: %v, want ErrModelMismatch naming %s", err, m.Name)
	}
	if _, _, err := Build([]string{PolicyEbbflow}, Setup{Series: elb, Config: cfg}); !errors.Is(err, ErrNoModel) {
		t.Errorf("no model: %v, want ErrNoModel", err)
	}
	if _, _, err := LoadModel(context.Background(), "../../testdata/models", "latency", nil); err == nil || !strings.Contains(err.Error(), "latency") {
		t.Errorf("no model for a signal: %v", err)
	}
	// A model may not be scored on the span it was trained on.
	s, su := nasaSetup(t, 1)
	su.ModelSeen = Span{FromMs: s.StartMs, ToMs: su.Config.FromMs + 3600_000}
	if _, _, err := Build([]string{PolicyEbbflow}, su); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("training span overlap: %v", err)
	}
	cfg.Capacity = 0
	if _, err := Run(elb, cfg, []Policy{&script{}}, nil); err == nil || !strings.Contains(err.Error(), "capacity") {
		t.Errorf("zero capacity: %v", err)
	}
}

// BenchmarkNASA30Days replays 30 days of a one-minute trace through all
// four policies (the real model scoring every window for ebbflow) and
// reports trace-days per second, and the ratio to the target of
// 30 days in a minute (0.5 trace-days/s).
func BenchmarkNASA30Days(b *testing.B) {
	s, su := nasaSetup(b, 30)
	su.Config.FromMs = time.Date(1995, 7, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
	su.Config.ToMs = su.Config.FromMs + 30*86400_000
	b.ResetTimer()
	for range b.N {
		ps, _, err := Build(PolicyNames, su)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Run(s, su.Config, ps, nil); err != nil {
			b.Fatal(err)
		}
	}
	perSec := 30 * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(perSec, "trace-days/s")
	b.ReportMetric(perSec/0.5, "x-target")
}
