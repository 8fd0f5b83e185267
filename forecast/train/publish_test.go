package train_test

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/internal/history"
)

// bundledRaw is the bundled qps model's JSON without its verdict, as
// train.py writes a model before the gate judges it.
func bundledRaw(t *testing.T) string {
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
	raw, err = model.SetAttributes(raw, map[string]string{model.AttrGate: ""})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "qps.model.json")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func figures(r float64) []model.HorizonMetric {
	var hs []model.HorizonMetric
	for k := 1; k <= 5; k++ {
		hs = append(hs, model.HorizonMetric{Horizon: k, N: 1000, MAE: 10 * r, MAELast: 10, RatioLast: r})
	}
	return hs
}

// TestPublish: a promoted model replaces the served file (and the bundled
// .gz of its signal) and is archived; a rejected one goes to rejected/
// with its report and leaves the served file alone. Both carry their
// verdict.
func TestPublish(t *testing.T) {
	local := bundledRaw(t)
	store := t.TempDir()
	if err := os.WriteFile(filepath.Join(store, "qps"+model.SuffixGz), []byte("older bundled model"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := model.DefaultGate()
	good := train.Meta{Signal: "qps", Version: "v1", Test: figures(0.8)}
	good.Gate = g.Judge(60, 5, good.Test)
	if err := train.Publish(history.LocalFS{}, store, &good, local); err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(store, "qps.model.json")
	if good.ModelPath != served {
		t.Fatalf("promoted model at %s", good.ModelPath)
	}
	if _, err := os.Stat(filepath.Join(store, "qps"+model.SuffixGz)); !os.IsNotExist(err) {
		t.Fatalf("the older bundled model is still there: %v", err)
	}
	for _, p := range []string{served, filepath.Join(store, "qps.meta.json"), filepath.Join(store, "versions", "v1", "qps.model.json")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(served)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.LoadBytes(b, "qps.model.json")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Gate.Promoted() {
		t.Fatalf("served model's verdict %+v", m.Gate)
	}

	bad := train.Meta{Signal: "qps", Version: "v2", Test: figures(1.0)}
	bad.Gate = g.Judge(60, 5, bad.Test)
	if err := train.Publish(history.LocalFS{}, store, &bad, local); err != nil {
		t.Fatal(err)
	}
	if bad.ModelPath != filepath.Join(store, "rejected", "v2", "qps.model.json") {
		t.Fatalf("rejected model at %s", bad.ModelPath)
	}
	after, err := os.ReadFile(served)
	if err != nil || string(after) != string(b) {
		t.Fatalf("the rejected model touched the served file (%v)", err)
	}
	var report train.Meta
	mb, err := os.ReadFile(filepath.Join(store, "rejected", "v2", "qps.meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mb, &report); err != nil {
		t.Fatal(err)
	}
	if report.Gate.Verdict != model.Rejected || report.Gate.Reason != model.ReasonLosesToLastValue || len(report.Test) != 5 {
		t.Fatalf("report %+v", report.Gate)
	}
	if _, err := os.Stat(filepath.Join(store, "versions", "v2")); !os.IsNotExist(err) {
		t.Fatal("a rejected model was archived as a version")
	}
}
