package backtest

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
)

// Forecaster forecasts the next windows from the windows closed so far.
type Forecaster interface {
	// Name says what forecasts (e.g. "model ebbflow-qps v3", "last value").
	Name() string
	// Horizons is how many steps ahead Forecast predicts.
	Horizons() int
	// Forecast writes the forecast of steps 1..Horizons after the last
	// known window into dst; ok is false when it cannot forecast (no
	// value at the origin). known grows by appending between calls.
	Forecast(known []float64, startMs, stepS int64, dst []float64) (ok bool)
}

// LastValue forecasts the last known value at every horizon, the
// baseline every model must beat.
type LastValue struct{ H int }

// Name implements Forecaster.
func (LastValue) Name() string { return "last value" }

// Horizons implements Forecaster.
func (l LastValue) Horizons() int { return max(l.H, 1) }

// Forecast implements Forecaster.
func (l LastValue) Forecast(known []float64, _, _ int64, dst []float64) bool {
	if len(known) == 0 || math.IsNaN(known[len(known)-1]) {
		return false
	}
	for i := range dst {
		dst[i] = known[len(known)-1]
	}
	return true
}

// ModelForecaster scores a forecast model on the series with the
// forecaster's own feature builder and XGBoost scorer, fed one closed
// window at a time through a ring of the spec's lookback, as the
// forecast service is.
type ModelForecaster struct {
	m      *model.Model
	p      *model.Predictor
	ring   *features.Ring
	src    features.Entity
	fed    int // known values pushed into the ring
	stepS  int64
	origin int64 // absolute step of known[0]
}

// ErrModelMismatch is wrapped by NewModelForecaster's refusals.
var ErrModelMismatch = errors.New("model does not match the series")

// NewModelForecaster checks that m forecasts the series' signal at the
// series' step and returns its forecaster. Signals the spec reads that a
// single series does not have (Spec.Others) are missing values, which
// XGBoost handles; MissingInputs names them so results can say so.
func NewModelForecaster(m *model.Model, s *Series) (*ModelForecaster, error) {
	if m == nil {
		return nil, fmt.Errorf("backtest: signal %s: %w", s.Signal, ErrNoModel)
	}
	if m.Spec.Signal != s.Signal {
		return nil, fmt.Errorf("backtest: model %s (%s) forecasts %s, the series is %s: %w", m.ID, m.Name, m.Spec.Signal, s.Signal, ErrModelMismatch)
	}
	if m.Spec.StepS != s.StepS {
		return nil, fmt.Errorf("backtest: model %s (%s) reads %d s windows, the series has %d s steps (train one on this step with `ebbflow forecast train --step %d`): %w",
			m.ID, m.Name, m.Spec.StepS, s.StepS, s.StepS, ErrModelMismatch)
	}
	if s.StartMs%(s.StepS*1000) != 0 {
		return nil, fmt.Errorf("backtest: series %s starts at %s, not on a multiple of its %d s step (the model's time-of-day features assume aligned windows)", s.Name, fmtMs(s.StartMs), s.StepS)
	}
	r := features.NewRing(m.Spec.Lookback())
	return &ModelForecaster{m: m, p: model.NewPredictor(m), ring: r, src: features.Entity{m.Spec.Signal: r},
		stepS: s.StepS, origin: features.Step(s.StartMs, s.StepS)}, nil
}

// MissingInputs are the other signals the model reads that a single
// series lacks.
func (f *ModelForecaster) MissingInputs() []string { return slices.Clone(f.m.Spec.Others) }

// Name implements Forecaster.
func (f *ModelForecaster) Name() string {
	return fmt.Sprintf("model %s %s (%s)", f.m.ID, f.m.Version, f.m.Name)
}

// Horizons implements Forecaster.
func (f *ModelForecaster) Horizons() int { return f.m.Spec.Horizons }

// Forecast implements Forecaster.
func (f *ModelForecaster) Forecast(known []float64, _, _ int64, dst []float64) bool {
	if len(known) == 0 {
		return false
	}
	// Push what closed since the last call; a long jump only needs the lookback.
	start := max(f.fed, len(known)-f.m.Spec.Lookback())
	for i := start; i < len(known); i++ {
		if !math.IsNaN(known[i]) {
			f.ring.Set(f.origin+int64(i), known[i])
		}
	}
	f.fed = len(known)
	origin := f.origin + int64(len(known)) - 1
	if newest, ok := f.ring.Newest(); !ok || newest != origin {
		// The newest window is a gap: move the ring forward so it holds no stale origin.
		if ok && newest < origin {
			f.ring.Set(origin, math.NaN())
		}
	}
	if _, err := f.p.Forecast(f.src, origin, dst); err != nil {
		return false
	}
	return true
}
