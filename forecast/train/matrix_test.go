package train_test

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/internal/sim/synth"
)

// TestServingFeaturesEqualTrainingMatrix builds the training matrix (batch,
// whole-history rings), writes and reads it back as Parquet, and compares
// every column with rows the serving path builds from small rings fed one
// window at a time (with gaps), for the same timestamps.
func TestServingFeaturesEqualTrainingMatrix(t *testing.T) {
	svc := synth.Services(2, 7)
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC).UnixMilli()
	var ws = synth.Generate(svc[0], start, 9*1440, 60, 7)
	ws = append(ws, synth.Generate(svc[1], start, 9*1440, 60, 7)...)
	// Gaps: drop an hour of qps of the first service.
	kept := ws[:0]
	for _, w := range ws {
		if w.Entity == svc[0].Entity && w.Signal == "qps" && w.StartMs >= start+8*86400e3 && w.StartMs < start+8*86400e3+3600e3 {
			continue
		}
		kept = append(kept, w)
	}
	ws = kept
	h, err := features.FromWindows(ws, 60)
	if err != nil {
		t.Fatal(err)
	}
	spec := features.DefaultSpec("qps", 60, 5, []string{"cpu", "gpu_util"})
	from := h.Last - 2000
	m, err := train.BuildMatrix(h, spec, from, h.Last-5)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := train.WriteParquet(&buf, m); err != nil {
		t.Fatal(err)
	}
	names := spec.Names()
	cols := make([]string, len(names))
	for i, n := range names {
		cols[i] = "f:" + n
	}
	got, origins, err := train.ReadParquetColumns(t.Context(), bytes.NewReader(buf.Bytes()), cols)
	if err != nil {
		t.Fatal(err)
	}
	// Serving: rings of Lookback steps, fed in stream order.
	b, _ := features.NewBuilder(spec)
	stream := map[string]features.Entity{}
	row := make([]float64, b.NumFeatures())
	type key struct {
		e string
		o int64
	}
	want := map[key][]float64{}
	byStep := map[int64][]int{}
	for i, w := range ws {
		s := features.Step(w.StartMs, 60)
		byStep[s] = append(byStep[s], i)
	}
	for s := h.First; s <= h.Last-5; s++ {
		for _, i := range byStep[s] {
			w := ws[i]
			e := stream[w.Entity]
			if e == nil {
				e = features.Entity{}
				stream[w.Entity] = e
			}
			if e[w.Signal] == nil {
				e[w.Signal] = features.NewRing(spec.Lookback())
			}
			e[w.Signal].Set(s, w.Value())
		}
		if s < from {
			continue
		}
		for ent, e := range stream {
			if _, err := b.Row(e, s, row); err == nil {
				want[key{ent, s * 60000}] = append([]float64(nil), row...)
			}
		}
	}
	if len(want) != m.Rows() || len(origins) != m.Rows() {
		t.Fatalf("serving built %d rows, matrix holds %d (%d read back)", len(want), m.Rows(), len(origins))
	}
	for j, n := range names {
		col := got[cols[j]]
		for i, o := range origins {
			w := want[key{m.Entity[i], o}]
			if w == nil {
				t.Fatalf("row %s@%d missing from serving", m.Entity[i], o)
			}
			if !(w[j] == col[i] || (math.IsNaN(w[j]) && math.IsNaN(col[i]))) {
				t.Fatalf("feature %s, %s at %d: serving %v, matrix %v", n, m.Entity[i], o, w[j], col[i])
			}
		}
	}
	// The gap is visible as NaN lags, not zeros.
	nan := 0
	for _, v := range got["f:y_lag1"] {
		if math.IsNaN(v) {
			nan++
		}
	}
	if nan == 0 {
		t.Error("the one-hour gap left no NaN lag1 in the matrix")
	}
}
