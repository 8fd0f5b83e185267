//go:build integration

package forecast_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestRetrainerPublishesAndReloads: a scheduled retrain reads the Parquet
// history (internal/history, local backend), trains the signals it has
// history for with real XGBoost, publishes the promoted model to the
// model store, and the registry serves it at once (hot reload).
func TestRetrainerPublishesAndReloads(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: it must name the venv python with xgboost (make test sets it)")
	}
	root, store := t.TempDir(), t.TempDir()
	start := time.Date(2025, 4, 7, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	const steps = 6 * 1440
	var ws []schemas.Window
	for i := range steps {
		// I.i.d. noise around a level: forecasting the level beats last value.
		v := 300 + 20*rng.NormFloat64()
		ws = append(ws, schemas.Window{Entity: "svc/test/retrain/web", Signal: schemas.SignalQPS, Kind: schemas.KindGauge, SizeS: 60,
			StartMs: start.Add(time.Duration(i) * time.Minute).UnixMilli(), EndMs: start.Add(time.Duration(i+1) * time.Minute).UnixMilli(),
			Count: 1, Sum: v, Min: v, Max: v, Mean: v, Last: v, P50: v, P95: v, P99: v})
	}
	if _, err := history.WriteWindows(t.Context(), history.LocalFS{}, root, ws, "test.parquet"); err != nil {
		t.Fatal(err)
	}
	cfg := forecast.DefaultConfig()
	cfg.ModelDir = store
	cfg.Retrain.Interval, cfg.Retrain.Days, cfg.Retrain.Python = time.Hour, 10, py
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pr := prometheus.NewRegistry()
	reg := model.NewRegistry(history.LocalFS{}, store, nil, pr)
	r := forecast.NewRetrainer(cfg, history.LocalFS{}, root, history.LocalFS{}, reg, nil, pr)
	r.Now = func() time.Time { return start.Add(steps * time.Minute) }
	metas, err := r.Once(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 || metas[0].Signal != "qps" {
		t.Fatalf("trained %+v, want qps only (the history has no cpu or gpu_util)", metas)
	}
	if !metas[0].Gate.Promoted() {
		t.Fatalf("not promoted: %+v", metas[0].Gate)
	}
	m := reg.Current().For("qps")
	if m == nil || m.Version != metas[0].Version {
		t.Fatalf("the registry serves %v after the retrain, want version %s", m, metas[0].Version)
	}
	if _, err := os.Stat(filepath.Join(store, "versions", metas[0].Version, "qps.model.json")); err != nil {
		t.Fatal(err)
	}
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "ebbflow_forecast_trained_models_total" {
			for _, x := range mf.GetMetric() {
				found = found || x.GetCounter().GetValue() == 1
			}
		}
	}
	if !found {
		t.Fatal("ebbflow_forecast_trained_models_total not counted")
	}
}
