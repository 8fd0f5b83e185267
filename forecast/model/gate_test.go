package model_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
)

func TestGateHorizons(t *testing.T) {
	g := model.DefaultGate()
	for _, c := range []struct {
		step int64
		want []int
	}{{60, []int{3, 4, 5}}, {30, []int{6, 7, 8, 9, 10}}, {300, []int{1}}, {600, []int{1}}, {15, []int{12, 13, 14, 15, 16, 17, 18, 19, 20}}} {
		maxH := 5
		if c.step < 60 {
			maxH = 20
		}
		if got := g.Horizons(c.step, maxH); !slices.Equal(got, c.want) {
			t.Errorf("step %ds: gate horizons %v, want %v", c.step, got, c.want)
		}
	}
}

func figures(ratios ...float64) []model.HorizonMetric {
	var hs []model.HorizonMetric
	for i, r := range ratios {
		hs = append(hs, model.HorizonMetric{Horizon: i + 1, N: 500, MAE: 10 * r, MAELast: 10, RatioLast: r})
	}
	return hs
}

func TestGateJudge(t *testing.T) {
	g := model.DefaultGate()
	for _, c := range []struct {
		name   string
		test   []model.HorizonMetric
		reason model.Reason
	}{
		{"beats at 3–5, loses at 1", figures(1.02, 1.0, 0.95, 0.9, 0.89), model.ReasonBeatsLastValue},
		{"within the margin at h4", figures(0.9, 0.9, 0.95, 0.995, 0.9), model.ReasonLosesToLastValue},
		{"loses at h5", figures(0.9, 0.9, 0.9, 0.9, 1.01), model.ReasonLosesToLastValue},
		{"undefined ratio", figures(0.9, 0.9, math.NaN(), 0.9, 0.9), model.ReasonLosesToLastValue},
		{"three horizons only", figures(0.5, 0.5, 0.5), model.ReasonNoTestFigures},
		{"too few rows", func() []model.HorizonMetric { f := figures(0.5, 0.5, 0.5, 0.5, 0.5); f[3].N = 20; return f }(), model.ReasonTooFewTestRows},
	} {
		v := g.Judge(60, 5, c.test)
		if v.Reason != c.reason || v.Promoted() != (c.reason == model.ReasonBeatsLastValue) {
			t.Errorf("%s: verdict %s (%s: %s), want reason %s", c.name, v.Verdict, v.Reason, v.Detail, c.reason)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Errorf("%s: verdict does not encode: %v", c.name, err)
		}
	}
	// 5-minute steps: the gate horizon is h1 (5 minutes).
	if v := g.Judge(300, 5, figures(0.95, 1.2, 1.2, 1.2, 1.2)); !v.Promoted() || !slices.Equal(v.Horizons, []int{1}) {
		t.Errorf("300 s steps: %+v", v)
	}
}

// bundled returns the bundled qps model's JSON with the given attributes.
func bundled(t *testing.T, attrs map[string]string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "models", "qps"+model.SuffixGz))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	out, err := model.SetAttributes(raw, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func verdictAttr(t *testing.T, v model.Verdict) map[string]string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{model.AttrGate: string(b)}
}

func TestSetAttributesKeepsTheTrees(t *testing.T) {
	promoted := model.DefaultGate().Judge(60, 5, figures(0.9, 0.9, 0.9, 0.9, 0.9))
	a, err := model.LoadBytes(bundled(t, nil), "a.model.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.LoadBytes(bundled(t, verdictAttr(t, promoted)), "b.model.json")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Gate.Promoted() || b.GateErr != nil {
		t.Fatalf("verdict not read back: %+v %v", b.Gate, b.GateErr)
	}
	row := make([]float64, a.Spec.NumFeatures())
	for i := range row {
		row[i] = float64(i%7) * 0.1
	}
	pa, pb := make([]float64, a.Spec.Horizons), make([]float64, a.Spec.Horizons)
	a.XGB.PredictMulti(row, pa)
	b.XGB.PredictMulti(row, pb)
	if !slices.Equal(pa, pb) {
		t.Fatalf("predictions changed by rewriting attributes: %v vs %v", pa, pb)
	}
}

func gather(t *testing.T, pr *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			if m.GetCounter() != nil {
				out[key] = m.GetCounter().GetValue()
			} else {
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestRegistryServesOnlyPromotedModels: a model without a verdict or with
// a rejected one is refused and counted; a rejected model replacing a
// promoted one leaves the promoted one serving; rejected/ is never read.
func TestRegistryServesOnlyPromotedModels(t *testing.T) {
	g := model.DefaultGate()
	promoted := g.Judge(60, 5, figures(0.9, 0.9, 0.9, 0.9, 0.9))
	rejected := g.Judge(60, 5, figures(1, 1, 1, 1, 1))
	dir := t.TempDir()
	// Each write gets a later modification time than the one before, set
	// explicitly: no sleep, whatever the file system's time granularity.
	mtime := time.Now().Add(-time.Hour)
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(filepath.Join(dir, name), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	pr := prometheus.NewRegistry()
	reg := model.NewRegistry(history.LocalFS{}, dir, nil, pr)

	write("qps.model.json", bundled(t, map[string]string{model.AttrGate: ""}))
	write("rejected/v2/qps.model.json", bundled(t, verdictAttr(t, promoted))) // never read: a subdirectory
	if err := reg.Reload(t.Context()); err == nil {
		t.Fatal("a model without a verdict was accepted")
	}
	if reg.Current().For("qps") != nil {
		t.Fatal("a model without a verdict serves")
	}
	if got := gather(t, pr, "ebbflow_forecast_models_rejected_total"); got["reason=missing_verdict,signal=qps,"] != 1 {
		t.Fatalf("rejected counter %v", got)
	}
	if got := gather(t, pr, "ebbflow_forecast_model_promoted"); got["signal=qps,"] != 0 {
		t.Fatalf("promoted gauge %v", got)
	}

	write("qps.model.json", bundled(t, verdictAttr(t, promoted)))
	if err := reg.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := reg.Current().For("qps"); m == nil || !m.Gate.Promoted() {
		t.Fatal("the promoted model does not serve")
	}
	if got := gather(t, pr, "ebbflow_forecast_model_promoted"); got["signal=qps,"] != 1 {
		t.Fatalf("promoted gauge %v", got)
	}

	before := reg.Current().For("qps")
	write("qps.model.json", bytes.Clone(bundled(t, verdictAttr(t, rejected))))
	if err := reg.Reload(t.Context()); err == nil {
		t.Fatal("a rejected model was accepted")
	}
	if reg.Current().For("qps") != before {
		t.Fatal("a rejected model replaced the promoted one")
	}
	if got := gather(t, pr, "ebbflow_forecast_models_rejected_total"); got["reason=loses_to_last_value,signal=qps,"] != 1 {
		t.Fatalf("rejected counter %v", got)
	}
}
