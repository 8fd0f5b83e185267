package mixing

import (
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"reflect"
	"strings"
	"testing"
)

// tracesDir is the shared traces directory (../shared/traces beside the
// repository), read in place.
func tracesDir(t testing.TB) string {
	t.Helper()
	d, err := trace.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The targets on every inference trace at the default settings:
// ≥ 65 % of the jobs that ran on mixed nodes complete, a kill rate of at
// most 0.75 %, and no more Pending minutes than WPAI's reactive rule.
func TestBacktestTargets(t *testing.T) {
	for _, name := range []string{"nasa", "elb", "vm_cpu"} {
		t.Run(name, func(t *testing.T) {
			res, err := Backtest(DefaultBacktest(tracesDir(t), name))
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]PolicyResult{}
			for _, p := range res.Policies {
				byName[p.Policy] = p
				t.Logf("%-28s jobs_on_mixed=%d completed=%.3f killed=%d/%d kill_rate=%.4f flips=%d (%.2f/h) pending_min=%d offline_node_h=%.0f busy_node_h=%.0f lost_node_h=%.1f censored=%d jobs_done=%d",
					p.Policy, p.JobsOnMixed, p.CompletedShare, p.Killed, p.Attempts, p.KillRate, p.Flips, p.FlipsPerHour, p.PendingMinutes, p.OfflineNodeHours, p.MixedBusyNodeHours, p.LostWorkNodeHours, p.Censored, p.JobsCompleted)
			}
			eb, wpai := byName[PolicyEbbflowSeasonal], byName[PolicyReactive]
			if eb.Attempts > 0 && eb.CompletedShare < 0.65 {
				t.Errorf("ebbflow: %.3f of mixed jobs completed, target ≥ 0.65", eb.CompletedShare)
			}
			if eb.KillRate > 0.0075 {
				t.Errorf("ebbflow: kill rate %.4f, target ≤ 0.0075", eb.KillRate)
			}
			if eb.PendingMinutes > wpai.PendingMinutes {
				t.Errorf("ebbflow: %d Pending minutes, WPAI's reactive rule %d", eb.PendingMinutes, wpai.PendingMinutes)
			}
			if res.Jobs == 0 || res.GeneratorMAE <= 0 {
				t.Errorf("no job stream: %d jobs, MAE %.2f", res.Jobs, res.GeneratorMAE)
			}
		})
	}
}

// On a trace with a deep daily pattern mixing happens at all: nodes go
// offline and training runs on them under both policies.
func TestBacktestMixes(t *testing.T) {
	cfg := DefaultBacktest(tracesDir(t), "nasa")
	cfg.Days = 2
	res, err := Backtest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Policies {
		if p.Flips == 0 || p.Attempts == 0 || p.MixedBusyNodeHours < 50 {
			t.Fatalf("%s: %d flips, %d attempts, %.0f busy node-hours: nothing mixed", p.Policy, p.Flips, p.Attempts, p.MixedBusyNodeHours)
		}
	}
	again, err := Backtest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res, again) {
		t.Fatalf("two runs of the same configuration differ:\n%+v\n%+v", res.Policies, again.Policies)
	}
}

func TestBacktestRefusesBadConfig(t *testing.T) {
	cases := map[string]func(*BacktestConfig){
		"inference":  func(c *BacktestConfig) { c.Inference = "wikipedia" },
		"days":       func(c *BacktestConfig) { c.Days = 0 },
		"peak_share": func(c *BacktestConfig) { c.PeakShare = 1.5 },
		"min_rate":   func(c *BacktestConfig) { c.Policy.MinRate = 0.9 },
	}
	for field, edit := range cases {
		cfg := DefaultBacktest(tracesDir(t), "nasa")
		edit(&cfg)
		if _, err := Backtest(cfg); err == nil || !strings.Contains(err.Error(), field) {
			t.Fatalf("%s: got %v, want an error naming it", field, err)
		}
	}
	cfg := DefaultBacktest(tracesDir(t), "elb")
	cfg.Days = 30
	if _, err := Backtest(cfg); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Fatalf("a span past the trace's end: got %v", err)
	}
}
