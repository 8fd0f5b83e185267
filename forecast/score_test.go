package forecast_test

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim/synth"
	"github.com/ebbflow/ebbflow/schemas"
)

// Every forecast is judged once, when the window it forecast closes,
// against the value that came and against the last value at its origin
// (the error the dashboard and the ForecastWorseThanLastValue alert use).
func TestProcessorScoresForecastsAgainstLastValue(t *testing.T) {
	dir := t.TempDir()
	copyModels(t, dir, "qps")
	reg := model.NewRegistry(history.LocalFS{}, dir, nil, prometheus.NewRegistry())
	if err := reg.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg := forecast.DefaultConfig()
	p := forecast.NewProcessor(cfg, reg.Current)
	var got []forecast.Score
	p.OnScore = func(s forecast.Score) { got = append(got, s) }
	svc := synth.Services(1, 3)[0]
	start := time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	ws := synth.Generate(svc, start, 1500, 60, 3)
	type key struct {
		signal string
		at     int64
	}
	issued := map[key][]schemas.Forecast{} // forecasts by the AtMs they target
	var models, baselines int
	for _, w := range ws {
		got = got[:0]
		f, ok := p.Observe(w)
		if !ok {
			t.Fatalf("window %s gave no forecast", w.EventID())
		}
		want := issued[key{w.Signal, w.EndMs}]
		if len(got) != len(want) {
			t.Fatalf("window %s: %d scores, want %d (one per earlier forecast targeting it)", w.EventID(), len(got), len(want))
		}
		for _, s := range got {
			var from schemas.Forecast
			for _, c := range want {
				if c.Horizons[s.Horizon-1].AtMs == w.EndMs {
					from = c
				}
			}
			if from.ID == "" {
				t.Fatalf("score %+v matches no forecast targeting %d", s, w.EndMs)
			}
			pred := from.Horizons[s.Horizon-1].Value
			if math.Abs(s.AbsErr-math.Abs(pred-w.Value())) > 1e-9 || math.Abs(s.LastValueAbsErr-math.Abs(from.Observed-w.Value())) > 1e-9 {
				t.Fatalf("score %+v: want |%v-%v| and |%v-%v|", s, pred, w.Value(), from.Observed, w.Value())
			}
			if s.Method == "model" {
				models++
			} else {
				baselines++
				if from.Fallback == schemas.FallbackLastValue && s.AbsErr != s.LastValueAbsErr {
					t.Fatalf("a last-value forecast scored differently from last value: %+v", s)
				}
			}
		}
		for _, h := range f.Horizons {
			k := key{f.Signal, h.AtMs}
			issued[k] = append(issued[k], f)
		}
		// A revision of the newest window forecasts again but is not judged twice.
		if w.Signal == "qps" && w.StartMs == ws[len(ws)-1].StartMs {
			r := w
			r.Revision = 1
			got = got[:0]
			if _, ok := p.Observe(r); !ok {
				t.Fatal("revision of the newest window gave no forecast")
			}
			if len(got) != 0 {
				t.Fatalf("revision scored again: %+v", got)
			}
		}
	}
	if models == 0 || baselines == 0 {
		t.Fatalf("scored %d model and %d baseline forecasts; want both", models, baselines)
	}
}
