package xgb

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// benchRows is how many rows a batch benchmark scores per operation.
const benchRows = 4096

// benchData loads the deep golden model (200 trees, depth 8) and makes
// benchRows rows like its test rows: each golden row with its present values
// jittered by a fixed-seed 10%, NaNs kept.
func benchData(tb testing.TB) (m *Model, path string, data []float64) {
	tb.Helper()
	var c goldenCase
	for _, cc := range readManifest(tb, goldenDir).Cases {
		if cc.Name == "deep_squarederror" {
			c = cc
		}
	}
	if c.Name == "" {
		tb.Fatal("no deep_squarederror case in the golden manifest")
	}
	path = filepath.Join(goldenDir, c.Model)
	m, err := LoadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	g := readGolden(tb, filepath.Join(goldenDir, c.Golden), 1)
	rng := rand.New(rand.NewPCG(1, 2))
	data = make([]float64, 0, benchRows*g.ncols)
	for r := range benchRows {
		for _, x := range g.x[(r%g.nrows)*g.ncols : (r%g.nrows+1)*g.ncols] {
			if !math.IsNaN(x) {
				x *= 1 + 0.1*rng.NormFloat64()
			}
			data = append(data, x)
		}
	}
	return m, path, data
}

var sink float64

// BenchmarkPredict measures the Go scorer on the deep model: one row per
// call (latency) and benchRows rows per call (throughput, on one goroutine).
// With the xgbnative build tag, BenchmarkNative and BenchmarkRatio compare
// it with XGBoost's own predictor.
func BenchmarkPredict(b *testing.B) {
	m, _, data := benchData(b)
	nf := m.NumFeatures()
	b.Run("deep/single-row", func(b *testing.B) {
		b.ReportAllocs()
		r := 0
		for b.Loop() {
			sink += m.Predict(data[r*nf : (r+1)*nf])
			r = (r + 1) % benchRows
		}
	})
	b.Run("deep/batch", func(b *testing.B) {
		out := make([]float64, benchRows)
		b.ReportAllocs()
		for b.Loop() {
			m.PredictMatrix(data, benchRows, nf, out)
		}
		b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("deep/batch-parallel", func(b *testing.B) {
		out := make([]float64, benchRows)
		for b.Loop() {
			m.PredictMatrixParallel(data, benchRows, nf, out, 4)
		}
		b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
	})
}
