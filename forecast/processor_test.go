package forecast_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim/synth"
	"github.com/ebbflow/ebbflow/schemas"
)

func copyModels(t testing.TB, dir string, signals ...string) {
	t.Helper()
	for _, s := range signals {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "models", s+model.SuffixGz))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, s+model.SuffixGz), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProcessorModelsAndFallbacks(t *testing.T) {
	dir := t.TempDir()
	copyModels(t, dir, "qps")
	reg := model.NewRegistry(history.LocalFS{}, dir, nil, prometheus.NewRegistry())
	if err := reg.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg := forecast.DefaultConfig()
	p := forecast.NewProcessor(cfg, reg.Current)
	svc := synth.Services(1, 3)[0]
	start := time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	ws := synth.Generate(svc, start, 1500, 60, 3)
	var last = map[string]schemas.Forecast{}
	for i, w := range ws {
		f, ok := p.Observe(w)
		if !ok {
			t.Fatalf("window %d (%s) gave no forecast", i, w.Signal)
		}
		if _, err := schemas.Marshal(f); err != nil {
			t.Fatalf("forecast does not validate: %v", err)
		}
		if i < 3 && f.Fallback != schemas.FallbackLastValue {
			t.Fatalf("first windows: fallback %q, want last_value (reason %q)", f.Fallback, f.FallbackReason)
		}
		last[w.Signal] = f
	}
	q := last["qps"]
	if q.Fallback != "" || q.Model.FeatureSpec == "" || q.Model.ID == "" {
		t.Fatalf("qps with a model and a day of history fell back: %+v", q)
	}
	if len(q.Horizons) != 5 || q.Horizons[4].Minutes != 5 || q.Horizons[0].AtMs != q.OriginMs+60000 {
		t.Fatalf("horizons: %+v", q.Horizons)
	}
	c := last["cpu"]
	if c.Fallback != schemas.FallbackSeasonalNaive || !strings.Contains(c.FallbackReason, "no model") {
		t.Fatalf("cpu without a model after a day: fallback %q reason %q", c.Fallback, c.FallbackReason)
	}
	// A revision of an older window updates history but does not forecast.
	old := ws[len(ws)-30]
	old.Revision = 1
	if _, ok := p.Observe(old); ok {
		t.Fatal("a revision of an older window produced a forecast")
	}
}

func TestRegistryRefusesBrokenModelAndKeepsServing(t *testing.T) {
	dir := t.TempDir()
	copyModels(t, dir, "qps")
	pr := prometheus.NewRegistry()
	reg := model.NewRegistry(history.LocalFS{}, dir, nil, pr)
	if err := reg.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := reg.Current().For("qps")
	if good == nil {
		t.Fatal("qps model not loaded")
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	forest, err := os.ReadFile(filepath.Join("..", "testdata", "xgboost", "forest_squarederror.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		body []byte
		want string
	}{
		{"truncated", gz([]byte(`{"learner": {`)), "not valid XGBoost JSON"},
		{"not gzip", []byte("garbage"), "not gzip"},
		{"no spec", gz(forest), "not an ebbflow forecast model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The broken file replaces the good one under the same name.
			p := filepath.Join(dir, "qps"+model.SuffixGz)
			if err := os.WriteFile(p, tc.body, 0o644); err != nil {
				t.Fatal(err)
			}
			future := time.Now().Add(time.Duration(len(tc.name)) * time.Second)
			os.Chtimes(p, future, future)
			err := reg.Reload(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload error %v, want %q", err, tc.want)
			}
			if reg.Current().For("qps") != good {
				t.Fatal("the previous qps model stopped serving after a broken file")
			}
		})
	}
	if n := counterValue(t, pr, "ebbflow_forecast_model_load_errors_total"); n != float64(len(cases)) {
		t.Fatalf("load errors counter %v, want %d", n, len(cases))
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
