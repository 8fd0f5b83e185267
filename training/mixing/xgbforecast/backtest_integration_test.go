//go:build integration

package xgbforecast

import (
	"context"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"os"
	"testing"

	"github.com/ebbflow/ebbflow/training/mixing"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// The mixing backtest with ebbflow's real XGBoost forecaster, trained on
// the warm-up days only, meets the targets on the traces with a daily
// pattern, as the seasonal variant does.
func TestBacktestWithXGBoost(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: it must name the venv python with xgboost (make test sets it)")
	}
	for _, name := range []string{"nasa", "elb", "vm_cpu"} {
		t.Run(name, func(t *testing.T) {
			cfg := mixing.DefaultBacktest(tracesDir(t), name)
			cfg.ShortTerm = Trainer(Options{Python: py, Script: "../../../forecast/python/train.py", Progress: logWriter{t}})
			res, err := mixing.BacktestContext(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			by := map[string]mixing.PolicyResult{}
			for _, p := range res.Policies {
				by[p.Policy] = p
				t.Logf("%-28s jobs_on_mixed=%d completed=%.3f killed=%d/%d kill_rate=%.4f flips/h=%.2f pending_min=%d busy_node_h=%.0f jobs_done=%d",
					p.Policy, p.JobsOnMixed, p.CompletedShare, p.Killed, p.Attempts, p.KillRate, p.FlipsPerHour, p.PendingMinutes, p.MixedBusyNodeHours, p.JobsCompleted)
			}
			x, ok := by[mixing.PolicyEbbflowXGB]
			if !ok {
				t.Fatal("no ebbflow-xgb result")
			}
			if x.Attempts > 0 && x.CompletedShare < 0.65 {
				t.Errorf("ebbflow-xgb: %.3f completed, target ≥ 0.65", x.CompletedShare)
			}
			if x.KillRate > 0.0075 {
				t.Errorf("ebbflow-xgb: kill rate %.4f, target ≤ 0.0075", x.KillRate)
			}
			if r := by[mixing.PolicyReactive]; x.PendingMinutes > r.PendingMinutes {
				t.Errorf("ebbflow-xgb: %d Pending minutes, reactive %d", x.PendingMinutes, r.PendingMinutes)
			}
		})
	}
}

func tracesDir(t testing.TB) string {
	t.Helper()
	d, err := trace.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
