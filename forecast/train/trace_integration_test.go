//go:build integration

package train_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

// traceCase is one real trace, bounded to a slice that trains in a minute
// or two on two cores.
type traceCase struct {
	name, file, valueCol string
	start                time.Time // offset traces only
	days                 int
}

var traceCases = []traceCase{
	{name: "nasa", file: "nasa_requests_per_minute.csv", valueCol: "number_of_requests", days: 28},
	{name: "philly", file: "philly_node_sequence.csv", valueCol: "active", days: 21},
	{name: "elb", file: "elb_request_count_8c0756.csv", valueCol: "value", days: 14},
	{name: "azure", file: "vm_cpu_readings_month_aggregated_cpu_mem.csv", valueCol: "cpu_usage", days: 30, start: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)},
}

// TestTracesBeatLastValue trains real XGBoost on a slice of each real
// trace (train, validation and test spans), checks that Go's backtest of
// the trained model on the test span reproduces the trainer's test figures
// (train → serve round trip through the same builder and the Go scorer),
// that on the test span — never used to fit or choose — the model beats
// last value, seasonal naive and the plain lag-only XGBoost trained in the
// same run at the horizons the deciders use (3–5 min: h3–h5 at 60 s steps,
// h1 at 300 s), and that the promotion gate promoted it.
func TestTracesBeatLastValue(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: it must name the venv python with xgboost (make test sets it)")
	}
	for _, tc := range traceCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := trace.SharedPath(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatalf("open trace: %v", err)
			}
			defer f.Close()
			ws, st, err := trace.Read(f, trace.Options{Entity: "svc/trace/" + tc.name + "/web", Signal: "qps", ValueCol: tc.valueCol, Start: tc.start})
			if err != nil {
				t.Fatal(err)
			}
			h, err := features.FromWindows(ws, st.StepS)
			if err != nil {
				t.Fatal(err)
			}
			steps := int64(tc.days) * 86400 / st.StepS
			out := t.TempDir()
			metas, err := train.Train(context.Background(), h, train.Options{
				Python: py, Script: "../python/train.py", Out: out, Signals: []string{"qps"}, Horizons: 5,
				FromStep: h.First, ToStep: h.First + steps - 1, Rounds: 200, Version: "test", Progress: testWriter{t},
			})
			if err != nil {
				t.Fatal(err)
			}
			meta := metas[0]
			m, err := loadModel(meta.ModelPath)
			if err != nil {
				t.Fatal(err)
			}
			// The test span ends at the last origin of the slice.
			ev, err := train.Evaluate(h, m, features.Step(meta.TestFromMs, st.StepS), features.Step(meta.TestToMs, st.StepS), 0)
			if err != nil {
				t.Fatal(err)
			}
			gate := model.DefaultGate().Horizons(st.StepS, 5)
			for k, py := range meta.Test {
				g := ev.Horizons[k]
				if g.N != py.N || !close(g.MAE, py.MAE) || !close(g.MAELast, py.MAELast) || !close(g.MAESeasonal, py.MAESeasonal) || !close(g.SMAPE, py.SMAPE) {
					t.Errorf("h%d: Go backtest %+v differs from the trainer's test figures %+v", k+1, g, py)
				}
				t.Logf("%s (step %ds) test h%d: MAE %.4g, last %.4g, seasonal %.4g, plain XGBoost %.4g: ratio to last %.3f, to seasonal %.3f, to plain %.3f",
					tc.name, st.StepS, k+1, g.MAE, g.MAELast, g.MAESeasonal, py.MAEPlain, g.RatioLast, g.RatioSeasonal, py.RatioPlain)
				if !slices.Contains(gate, k+1) {
					continue
				}
				if !(g.RatioLast < 1) {
					t.Errorf("h%d: model test MAE %.4g does not beat last value %.4g", k+1, g.MAE, g.MAELast)
				}
				if !(g.RatioSeasonal < 1) {
					t.Errorf("h%d: model test MAE %.4g does not beat seasonal naive %.4g", k+1, g.MAE, g.MAESeasonal)
				}
				if !(py.RatioPlain < 1) {
					t.Errorf("h%d: model test MAE %.4g does not beat the plain lag XGBoost %.4g", k+1, py.MAE, py.MAEPlain)
				}
			}
			if !meta.Gate.Promoted() {
				t.Errorf("the gate did not promote the model: %+v", meta.Gate)
			}
		})
	}
}

func close(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func loadModel(path string) (*model.Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return model.Load(f, filepath.Base(path))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
