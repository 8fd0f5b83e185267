package xgb

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// goldenDir holds models and XGBoost's predictions for them, written by
// forecast/python/make_golden.py.
const goldenDir = "../../testdata/xgboost"

type goldenCase struct {
	Name           string            `json:"name"`
	Model          string            `json:"model"`
	Golden         string            `json:"golden"`
	Outputs        int               `json:"outputs"`
	IterationRange [2]int            `json:"iteration_range"`
	FeatureNames   []string          `json:"feature_names"`
	Attributes     map[string]string `json:"attributes"`
	BestIteration  *int              `json:"best_iteration"`
}

type goldenManifest struct {
	XGBoostVersion string       `json:"xgboost_version"`
	Seed           int          `json:"seed"`
	Cases          []goldenCase `json:"cases"`
}

// goldenRows is one golden file: test rows and XGBoost's margins and
// predictions for them, row-major.
type goldenRows struct {
	nrows, ncols, nout int
	x, margin, pred    []float64
}

func readManifest(t testing.TB, dir string) goldenManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m goldenManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s/manifest.json: %v", dir, err)
	}
	if len(m.Cases) == 0 {
		t.Fatalf("%s/manifest.json lists no cases", dir)
	}
	return m
}

func readGolden(t testing.TB, path string, nout int) goldenRows {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	head := recs[0]
	g := goldenRows{nrows: len(recs) - 1, nout: nout}
	for _, h := range head {
		if strings.HasPrefix(h, "x") {
			g.ncols++
		}
	}
	if len(head) != g.ncols+2*nout {
		t.Fatalf("%s: header %v does not have %d margin and prediction columns", path, head, nout)
	}
	for i, rec := range recs[1:] {
		for j, s := range rec {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s: row %d column %s: %v", path, i+1, head[j], err)
			}
			switch {
			case j < g.ncols:
				g.x = append(g.x, v)
			case j < g.ncols+nout:
				g.margin = append(g.margin, v)
			default:
				g.pred = append(g.pred, v)
			}
		}
	}
	return g
}

// close reports whether got matches XGBoost's want: 1e-5 relative, or 1e-6
// absolute near zero.
func close(got, want float64) bool {
	d := math.Abs(got - want)
	return d <= 1e-6 || d <= 1e-5*math.Abs(want)
}

// checkGolden proves every case in dir against XGBoost's predictions through
// every prediction entry point.
func checkGolden(t *testing.T, dir string) {
	man := readManifest(t, dir)
	t.Logf("golden models from xgboost %s, seed %d", man.XGBoostVersion, man.Seed)
	for _, c := range man.Cases {
		t.Run(c.Name, func(t *testing.T) {
			full, err := LoadFile(filepath.Join(dir, c.Model))
			if err != nil {
				t.Fatal(err)
			}
			m := full
			if c.IterationRange != [2]int{0, 0} {
				if m, err = full.Iterations(c.IterationRange[0], c.IterationRange[1]); err != nil {
					t.Fatal(err)
				}
			}
			if m.NumOutputs() != c.Outputs {
				t.Fatalf("NumOutputs = %d, want %d", m.NumOutputs(), c.Outputs)
			}
			if c.FeatureNames != nil && !slices.Equal(m.FeatureNames(), c.FeatureNames) {
				t.Errorf("FeatureNames = %q, want %q", m.FeatureNames(), c.FeatureNames)
			}
			for k, v := range c.Attributes {
				if got := m.Attributes()[k]; got != v {
					t.Errorf("attribute %s = %q, want %q", k, got, v)
				}
			}
			if c.BestIteration != nil {
				if b, ok := m.BestIteration(); !ok || b != *c.BestIteration {
					t.Errorf("BestIteration = %d, %v; want %d", b, ok, *c.BestIteration)
				}
			}
			g := readGolden(t, filepath.Join(dir, c.Golden), c.Outputs)
			if g.ncols != m.NumFeatures() {
				t.Fatalf("golden rows have %d features, model %d", g.ncols, m.NumFeatures())
			}
			check := func(what string, got, want []float64) {
				t.Helper()
				bad, worst := 0, 0.0
				for i := range want {
					if !close(got[i], want[i]) {
						if bad < 5 {
							r := i / g.nout
							t.Errorf("%s: row %d output %d: got %.9g, XGBoost %.9g (row %v)", what, r, i%g.nout, got[i], want[i], g.x[r*g.ncols:(r+1)*g.ncols])
						}
						bad++
					}
					worst = max(worst, math.Abs(got[i]-want[i])/max(math.Abs(want[i]), 1e-6))
				}
				if bad > 0 {
					t.Errorf("%s: %d of %d values differ from XGBoost", what, bad, len(want))
				}
				if testing.Verbose() {
					t.Logf("%s: worst relative difference %.3g", what, worst)
				}
			}
			n := g.nrows * g.nout
			pred, margin := make([]float64, n), make([]float64, n)
			for r := range g.nrows {
				row := g.x[r*g.ncols : (r+1)*g.ncols]
				if g.nout == 1 {
					pred[r] = m.Predict(row)
					margin[r] = m.PredictMargin(row)
				} else {
					m.PredictMulti(row, pred[r*g.nout:(r+1)*g.nout])
					m.PredictMultiMargin(row, margin[r*g.nout:(r+1)*g.nout])
				}
			}
			check("Predict", pred, g.pred)
			check("PredictMargin", margin, g.margin)

			out := make([]float64, n)
			m.PredictMatrix(g.x, g.nrows, g.ncols, out)
			check("PredictMatrix", out, g.pred)
			m.PredictMatrixMargin(g.x, g.nrows, g.ncols, out)
			check("PredictMatrixMargin", out, g.margin)
			clear(out)
			m.PredictMatrixParallel(g.x, g.nrows, g.ncols, out, 3)
			check("PredictMatrixParallel", out, g.pred)
			rows := make([][]float64, g.nrows)
			for r := range rows {
				rows[r] = g.x[r*g.ncols : (r+1)*g.ncols]
			}
			clear(out)
			m.PredictBatch(rows, out)
			check("PredictBatch", out, g.pred)
			if g.nout == 1 {
				multi := make([]float64, 1)
				for r := range g.nrows {
					m.PredictMulti(rows[r], multi)
					out[r] = multi[0]
				}
				check("PredictMulti", out, g.pred)
			}
		})
	}
}

func TestGolden(t *testing.T) { checkGolden(t, goldenDir) }

// TestGoldenCoverage keeps the committed goldens covering what the package
// claims to support.
func TestGoldenCoverage(t *testing.T) {
	man := readManifest(t, goldenDir)
	seen := map[string]bool{}
	for _, c := range man.Cases {
		m, err := LoadFile(filepath.Join(goldenDir, c.Model))
		if err != nil {
			t.Fatal(err)
		}
		seen[m.Objective()] = true
		if _, ok := m.BestIteration(); ok && c.IterationRange != [2]int{0, 0} {
			seen["iteration_range"] = true
		}
		if m.NumOutputs() > 1 {
			seen["multi-output"] = true
		}
	}
	for name := range objectives {
		if name == "reg:linear" {
			continue // only written by XGBoost < 1.0
		}
		if !seen[name] {
			t.Errorf("no golden model for objective %s", name)
		}
	}
	for _, k := range []string{"iteration_range", "multi-output"} {
		if !seen[k] {
			t.Errorf("no golden model for %s", k)
		}
	}
}

func ExampleModel_Predict() {
	m, err := LoadFile("../../testdata/xgboost/named_features.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	row := make([]float64, m.NumFeatures())
	row[1] = math.NaN() // missing values follow each split's default direction
	fmt.Println(m.Objective(), m.FeatureNames()[:3], m.Attributes()["ebbflow_horizon_s"])
	fmt.Printf("%.4f\n", m.Predict(row))
	// Output:
	// reg:squarederror [cpu rps p99] 180
	// 52.1582
}
