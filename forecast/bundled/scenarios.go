// Package bundled is the recipe and the held-out check of the forecast
// models bundled in testdata/models: they are trained (retrain, a main)
// on traffic from internal/sim/traffic — the shape `ebbflow dev`
// simulates — and backtested on held-out seeds against the last value.
package bundled

import (
	"fmt"
	"github.com/ebbflow/ebbflow/schemas"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/sim/traffic"
)

// Scenario is a held-out evaluation: a history and the first step to score.
type Scenario struct {
	Name       string
	History    *features.History
	From       int64
	MinHistory int
}

// ColdStart is what an `ebbflow dev` run sees: n services, each starting
// from empty history at a random point of its pattern and running hours
// hours; every origin from the forecaster's fifth step on is scored.
func ColdStart(seed int64, n, hours int) (Scenario, error) {
	r := rand.New(rand.NewPCG(uint64(seed), 0xc01d))
	svcs := traffic.Services(n, seed)
	eps := make([]traffic.Episode, n)
	for i, s := range svcs {
		eps[i] = traffic.Episode{Service: s, Offset: time.Duration(r.IntN(7*1440)) * time.Minute, Minutes: hours * 60}
	}
	h, err := History(eps)
	if err != nil {
		return Scenario{}, err
	}
	return Scenario{Name: "cold start", History: h, From: h.First, MinHistory: 5}, nil
}

// Warm is a long-running forecaster: n services with days days of
// history; only the last scoreDays days are scored (a day and a week of
// history are there for the seasonal features).
func Warm(seed int64, n, days, scoreDays int) (Scenario, error) {
	svcs := traffic.Services(n, seed)
	eps := make([]traffic.Episode, n)
	for i, s := range svcs {
		eps[i] = traffic.Episode{Service: s, Minutes: days * 1440}
	}
	h, err := History(eps)
	if err != nil {
		return Scenario{}, err
	}
	return Scenario{Name: "warm", History: h, From: h.Last - int64(scoreDays*1440), MinHistory: 5}, nil
}

// The training set of the bundled models (forecast/bundled/retrain).
const (
	TrainSeed     = 1
	TrainLong     = 16 // services with TrainDays days of traffic each
	TrainShort    = 64 // cold-start episodes of 4–30 hours
	TrainDays     = 10
	TrainRounds   = 150
	TrainMaxDepth = 4
	ModelVersion  = "simtraffic-v1"
)

// HeldOutSeed (and HeldOutSeed+1) generate the held-out evaluation; no
// training run uses them.
const HeldOutSeed = 90210

// TrainingDescription says, for the models' metadata, what they were
// trained on.
func TrainingDescription() string {
	return fmt.Sprintf("internal/sim/traffic (internal/sim load patterns, 15 s steps averaged into 60 s windows; cpu and gpu_util from a reactive replica policy): "+
		"seed %d, %d services × %d days and %d cold-start episodes of 4–30 h; go run ./forecast/bundled/retrain -out testdata/models",
		TrainSeed, TrainLong, TrainDays, TrainShort)
}

// History generates every episode into one history of one-minute steps.
func History(eps []traffic.Episode) (*features.History, error) {
	var ws []schemas.Window
	for i, e := range eps {
		ws = append(ws, e.Windows(i)...)
	}
	return features.FromWindows(ws, 60)
}

// HorizonMAE is one horizon's backtest figures.
type HorizonMAE struct {
	Horizon        int
	N              int
	Model, LastVal float64
	Ratio          float64
}

// Backtest forecasts every origin of every entity from the history up to
// it, as the forecaster would, once an entity holds minHistory steps (the
// forecaster's min_history_steps; before that it falls back to last
// value), from step from on, and returns the model's and last value's MAE
// per horizon.
func Backtest(h *features.History, m *model.Model, minHistory int, from int64) []HorizonMAE {
	H := m.Spec.Horizons
	p := model.NewPredictor(m)
	fc := make([]float64, H)
	out := make([]HorizonMAE, H)
	for k := range out {
		out[k].Horizon = k + 1
	}
	for _, ent := range h.EntityNames() {
		y := h.Entities[ent].Ring(m.Signal())
		if y == nil {
			continue
		}
		first := int64(-1)
		for t := h.First; t <= h.Last; t++ {
			if math.IsNaN(y.At(t)) {
				continue
			}
			if first < 0 {
				first = t
			}
			if t-first+1 < int64(minHistory) || t < from {
				continue
			}
			r, err := p.Forecast(h.Entities[ent], t, fc)
			if err != nil {
				continue
			}
			for k := 1; k <= H; k++ {
				a := y.At(t + int64(k))
				if math.IsNaN(a) {
					continue
				}
				c := &out[k-1]
				c.N++
				c.Model += math.Abs(fc[k-1] - a)
				c.LastVal += math.Abs(r.Current - a)
			}
		}
	}
	for k := range out {
		if c := &out[k]; c.N > 0 {
			c.Model /= float64(c.N)
			c.LastVal /= float64(c.N)
			if c.LastVal > 0 {
				c.Ratio = c.Model / c.LastVal
			}
		}
	}
	return out
}
