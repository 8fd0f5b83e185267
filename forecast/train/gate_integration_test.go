//go:build integration

package train_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

// series turns values (one per minute from start) into a history of one
// entity's qps.
func series(t *testing.T, vals []float64) *features.History {
	t.Helper()
	start := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	ws := make([]schemas.Window, len(vals))
	for i, v := range vals {
		ws[i] = schemas.Window{Entity: "svc/test/noise/web", Signal: "qps", StartMs: start + int64(i)*60000, SizeS: 60, Kind: schemas.KindGauge, Count: 1, Sum: v, Min: v, Max: v, Mean: v, Last: v}
	}
	h, err := features.FromWindows(ws, 60)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestGateRejectsNoiseModels trains real XGBoost twice into one model store:
// first on i.i.d. noise around a level, where forecasting the level beats
// last value by about 29 % (E|x−x'| = √2 × E|x−μ| for Gaussian noise), so
// the gate must promote it; then on a random walk, where last value is the
// optimal forecast and nothing can beat it by the gate's margin, so the
// gate must reject it: written aside under rejected/ with its report, and
// the forecaster's registry, reloading the store, keeps serving the first
// model. Copied into a served directory by hand, the rejected model is
// still refused, and counted.
func TestGateRejectsNoiseModels(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: it must name the venv python with xgboost (make test sets it)")
	}
	const days = 8
	rng := rand.New(rand.NewPCG(11, 12))
	iid := make([]float64, days*1440)
	walk := make([]float64, days*1440)
	level := 1000.0
	for i := range iid {
		iid[i] = 200 + 20*rng.NormFloat64()
		level += 5 * rng.NormFloat64()
		walk[i] = max(level, 0)
	}
	store := t.TempDir()
	reg := model.NewRegistry(history.LocalFS{}, store, nil, prometheus.NewRegistry())
	opts := func(version string) train.Options {
		return train.Options{Python: py, Script: "../python/train.py", Out: store, Signals: []string{"qps"}, Horizons: 5,
			FromStep: math.MinInt64, ToStep: math.MaxInt64, Rounds: 150, Version: version, Progress: testWriter{t}}
	}

	metas, err := train.Train(context.Background(), series(t, iid), opts("iid"))
	if err != nil {
		t.Fatal(err)
	}
	good := metas[0]
	t.Logf("i.i.d. noise: %s (%s): %s", good.Gate.Verdict, good.Gate.Reason, good.Gate.Detail)
	if !good.Gate.Promoted() {
		t.Fatalf("a model of i.i.d. noise should beat last value and be promoted: %+v", good.Gate)
	}
	if good.ModelPath != filepath.Join(store, "qps.model.json") {
		t.Fatalf("promoted model written to %s", good.ModelPath)
	}
	if _, err := os.Stat(filepath.Join(store, "versions", "iid", "qps.model.json")); err != nil {
		t.Fatalf("promoted model not archived: %v", err)
	}
	if err := reg.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := reg.Current().For("qps"); m == nil || m.Version != "iid" {
		t.Fatalf("registry serves %v, want the promoted iid model", m)
	}

	metas, err = train.Train(context.Background(), series(t, walk), opts("walk"))
	if err != nil {
		t.Fatal(err)
	}
	bad := metas[0]
	for _, r := range bad.Test {
		t.Logf("random walk test h%d: MAE %.4g, last value %.4g, ratio %.4f; plain XGBoost ratio %.4f", r.Horizon, r.MAE, r.MAELast, r.RatioLast, r.RatioPlain)
	}
	t.Logf("random walk: %s (%s): %s", bad.Gate.Verdict, bad.Gate.Reason, bad.Gate.Detail)
	if bad.Gate.Promoted() || bad.Gate.Reason != model.ReasonLosesToLastValue {
		t.Fatalf("a random-walk model must be rejected as not beating last value: %+v", bad.Gate)
	}
	want := filepath.Join(store, "rejected", "walk", "qps.model.json")
	if bad.ModelPath != want {
		t.Fatalf("rejected model written to %s, want %s", bad.ModelPath, want)
	}
	for _, p := range []string{want, filepath.Join(store, "rejected", "walk", "qps.meta.json")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("rejected model's files: %v", err)
		}
	}
	if err := reg.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := reg.Current().For("qps"); m == nil || m.Version != "iid" {
		t.Fatalf("after the rejected training the registry serves %v, want the earlier promoted model", m)
	}

	// Even placed where the forecaster reads, the rejected model is refused.
	served := t.TempDir()
	raw, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(served, "qps.model.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	pr := prometheus.NewRegistry()
	reg2 := model.NewRegistry(history.LocalFS{}, served, nil, pr)
	if err := reg2.Reload(t.Context()); err == nil {
		t.Fatal("the registry loaded a rejected model without an error")
	}
	if m := reg2.Current().For("qps"); m != nil {
		t.Fatalf("the registry serves the rejected model %s", m.Version)
	}
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	rejected := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "ebbflow_forecast_models_rejected_total" {
			for _, m := range mf.GetMetric() {
				rejected += m.GetCounter().GetValue()
			}
		}
	}
	if rejected != 1 {
		t.Fatalf("ebbflow_forecast_models_rejected_total = %v, want 1", rejected)
	}
}
