package bundled

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ebbflow/ebbflow/forecast/model"
)

func loadBundled(t *testing.T, signal string) *model.Model {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "models", signal+".model.json.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := model.Load(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBundledModelsBeatLastValue loads the bundled models and backtests
// them on traffic from internal/sim's load patterns with a seed no
// training run used: a cold start (what `ebbflow dev` sees: hours of
// history at most) and a warm forecaster (a week and more). At horizons
// 3–5 the qps model must beat last value clearly; every model must at
// least not lose to it.
func TestBundledModelsBeatLastValue(t *testing.T) {
	cold, err := ColdStart(HeldOutSeed, 12, 4)
	if err != nil {
		t.Fatal(err)
	}
	warm, err := Warm(HeldOutSeed+1, 3, 9, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"qps", "cpu", "gpu_util"} {
		m := loadBundled(t, sig)
		for _, sc := range []Scenario{cold, warm} {
			res := Backtest(sc.History, m, sc.MinHistory, sc.From)
			for _, r := range res {
				t.Logf("%s %s h%d: model MAE %.3f, last value %.3f, ratio %.3f (n=%d)", sig, sc.Name, r.Horizon, r.Model, r.LastVal, r.Ratio, r.N)
				limit := 1.0
				if sig == "qps" && r.Horizon >= 3 {
					limit = 0.8
				}
				if r.N == 0 || r.Ratio > limit {
					t.Errorf("%s %s h%d: model/last-value MAE ratio %.3f, want ≤ %.2f", sig, sc.Name, r.Horizon, r.Ratio, limit)
				}
			}
		}
	}
}
