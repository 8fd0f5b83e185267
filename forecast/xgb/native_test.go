//go:build xgbnative && cgo

package xgb

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nativebench "github.com/ebbflow/ebbflow/forecast/xgb/native_bench"
)

// openNative loads the golden model at path into XGBoost's own predictor
// (libxgboost.so from EBBFLOW_XGBOOST_LIB). XGBoost cannot read gzip, so a
// .gz model is decompressed into a temporary file first.
func openNative(tb testing.TB, path string) *nativebench.Booster {
	tb.Helper()
	lib := os.Getenv("EBBFLOW_XGBOOST_LIB")
	if lib == "" {
		tb.Fatal("EBBFLOW_XGBOOST_LIB is not set: point it at libxgboost.so (e.g. .venv/lib/python3.11/site-packages/xgboost/lib/libxgboost.so) to build with -tags xgbnative")
	}
	if err := nativebench.Open(lib); err != nil {
		tb.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		f, err := os.Open(path)
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			tb.Fatal(err)
		}
		tmp := filepath.Join(tb.TempDir(), strings.TrimSuffix(filepath.Base(path), ".gz"))
		out, err := os.Create(tmp)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(out, zr); err != nil {
			tb.Fatal(err)
		}
		out.Close()
		path = tmp
	}
	b, err := nativebench.LoadBooster(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b
}

// TestNativeParity checks the Go scorer against libxgboost directly, in
// process, on every golden case that uses all trees: margins must be
// bit-identical for gbtree models.
func TestNativeParity(t *testing.T) {
	for _, c := range readManifest(t, goldenDir).Cases {
		if c.IterationRange != [2]int{0, 0} {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			path := filepath.Join(goldenDir, c.Model)
			m, err := LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			nb := openNative(t, path)
			g := readGolden(t, filepath.Join(goldenDir, c.Golden), c.Outputs)
			mat := nativebench.NewMatrix(g.x, g.nrows, g.ncols)
			defer mat.Free()
			for _, margin := range []bool{true, false} {
				want, err := nb.PredictAll(mat, margin)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]float64, len(want))
				if margin {
					m.PredictMatrixMargin(g.x, g.nrows, g.ncols, got)
				} else {
					m.PredictMatrix(g.x, g.nrows, g.ncols, got)
				}
				exact := 0
				for i := range want {
					w := float64(want[i])
					if !close(got[i], w) {
						t.Errorf("margin=%v row %d: Go %.9g, libxgboost %.9g", margin, i/c.Outputs, got[i], w)
					}
					if float32(got[i]) == want[i] {
						exact++
					}
				}
				if margin && exact != len(want) && !strings.HasPrefix(c.Name, "dart") {
					t.Errorf("%d of %d margins differ from libxgboost in float32", len(want)-exact, len(want))
				}
			}
		})
	}
}

// BenchmarkNative measures XGBoost's own CPU predictor (in-place dense
// prediction, one thread, the path Python's inplace_predict takes) on the
// same model and rows as BenchmarkPredict.
func BenchmarkNative(b *testing.B) {
	m, path, data := benchData(b)
	nb := openNative(b, path)
	mat := nativebench.NewMatrix(data, benchRows, m.NumFeatures())
	b.Cleanup(mat.Free)
	b.Run("deep/single-row", func(b *testing.B) {
		r := 0
		for b.Loop() {
			p, err := nb.PredictRow(mat, r, false)
			if err != nil {
				b.Fatal(err)
			}
			sink += float64(p[0])
			r = (r + 1) % benchRows
		}
	})
	b.Run("deep/batch", func(b *testing.B) {
		for b.Loop() {
			if _, err := nb.PredictAll(mat, false); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkRatio times the Go scorer and libxgboost alternately, in the
// same iterations, and reports Go's cost relative to XGBoost's: on a shared,
// noisy machine a ratio measured this way is steadier than two separate
// benchmarks. Targets: latency ratio ≤ 1, throughput ratio ≥ 1.
func BenchmarkRatio(b *testing.B) {
	m, path, data := benchData(b)
	nf := m.NumFeatures()
	nb := openNative(b, path)
	mat := nativebench.NewMatrix(data, benchRows, nf)
	b.Cleanup(mat.Free)
	b.Run("deep/single-row", func(b *testing.B) {
		const chunk = 256
		var goT, nativeT time.Duration
		r := 0
		for b.Loop() {
			t0 := time.Now()
			for i := range chunk {
				sink += m.Predict(data[(r+i)*nf : (r+i+1)*nf])
			}
			t1 := time.Now()
			for i := range chunk {
				p, err := nb.PredictRow(mat, r+i, false)
				if err != nil {
					b.Fatal(err)
				}
				sink += float64(p[0])
			}
			nativeT += time.Since(t1)
			goT += t1.Sub(t0)
			r = (r + chunk) % benchRows
		}
		n := float64(b.N * chunk)
		b.ReportMetric(float64(goT.Nanoseconds())/n, "go-ns/row")
		b.ReportMetric(float64(nativeT.Nanoseconds())/n, "native-ns/row")
		b.ReportMetric(float64(goT)/float64(nativeT), "go/native-latency")
	})
	b.Run("deep/batch", func(b *testing.B) {
		out := make([]float64, benchRows)
		var goT, nativeT time.Duration
		for b.Loop() {
			t0 := time.Now()
			m.PredictMatrix(data, benchRows, nf, out)
			t1 := time.Now()
			if _, err := nb.PredictAll(mat, false); err != nil {
				b.Fatal(err)
			}
			nativeT += time.Since(t1)
			goT += t1.Sub(t0)
		}
		n := float64(b.N * benchRows)
		b.ReportMetric(n/goT.Seconds(), "go-rows/s")
		b.ReportMetric(n/nativeT.Seconds(), "native-rows/s")
		b.ReportMetric(nativeT.Seconds()/goT.Seconds(), "go/native-throughput")
	})
}
