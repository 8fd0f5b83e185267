package forecast

import (
	"fmt"
	"math"
	"slices"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/schemas"
)

// Processor is the forecaster's pure core for one partition: it keeps each
// entity's recent windows and turns a closed window into a Forecast. It does
// no I/O, so the service, `ebbflow dev`, tests and benchmarks share it. It
// is not safe for concurrent use; the service runs one per partition.
type Processor struct {
	cfg      Config
	models   func() *model.Set
	entities map[string]features.Entity
	preds    map[*model.Model]*model.Predictor
	buf      []float64
	signals  map[string]bool
	issued   map[string]*issued

	// OnScore, when set, receives each forecast judged against the value
	// that came (Score), once per closed step.
	OnScore func(Score)
}

// NewProcessor returns a processor reading the current models from models
// (nil: baselines only).
func NewProcessor(cfg Config, models func() *model.Set) *Processor {
	if models == nil {
		models = func() *model.Set { return nil }
	}
	sig := map[string]bool{}
	for _, s := range cfg.Signals {
		sig[s] = true
	}
	return &Processor{cfg: cfg, models: models, entities: map[string]features.Entity{}, preds: map[*model.Model]*model.Predictor{},
		buf: make([]float64, 64), signals: sig, issued: map[string]*issued{}}
}

// Entities is the number of entities held.
func (p *Processor) Entities() int { return len(p.entities) }

// Store adds a window to the history without forecasting (read-back after
// a rebalance). It reports whether the window is the newest of its series.
func (p *Processor) Store(w schemas.Window) bool {
	if w.SizeS != p.cfg.StepS {
		return false
	}
	e := p.entities[w.Entity]
	if e == nil {
		e = features.Entity{}
		p.entities[w.Entity] = e
	}
	r := e[w.Signal]
	if r == nil {
		r = features.NewRing(p.cfg.HistorySteps)
		e[w.Signal] = r
	}
	step := features.Step(w.StartMs, p.cfg.StepS)
	if !r.Set(step, w.Value()) {
		return false
	}
	newest, _ := r.Newest()
	return newest == step
}

// Observe stores a window and, when it is the newest window of a signal
// the forecaster covers, returns its forecast.
func (p *Processor) Observe(w schemas.Window) (schemas.Forecast, bool) {
	if !p.Store(w) || !p.signals[w.Signal] {
		return schemas.Forecast{}, false
	}
	key, step := w.Entity+"\x00"+w.Signal, features.Step(w.StartMs, p.cfg.StepS)
	p.score(key, w.Entity, w.Signal, step, w.Value())
	f := p.forecast(w)
	method := "model"
	if f.Fallback != "" {
		method = f.Fallback
	}
	p.remember(key, step, w.Value(), method, p.buf[:p.cfg.Horizons])
	return f, true
}

func (p *Processor) forecast(w schemas.Window) schemas.Forecast {
	H := p.cfg.Horizons
	stepMs := p.cfg.StepS * 1000
	src := p.entities[w.Entity]
	ring := src[w.Signal]
	origin := features.Step(w.StartMs, p.cfg.StepS)
	f := schemas.Forecast{
		Entity: w.Entity, Signal: w.Signal, OriginMs: w.EndMs, StepS: p.cfg.StepS, Observed: w.Value(),
		Horizons: make([]schemas.HorizonValue, H),
	}
	vals := p.buf[:H]
	m := p.models().For(w.Signal)
	reason := ""
	switch {
	case m == nil:
		reason = "no model for signal " + w.Signal
	case m.Spec.StepS != p.cfg.StepS:
		reason = fmt.Sprintf("model %s works at %ds steps, windows are %ds", m.ID, m.Spec.StepS, p.cfg.StepS)
	case m.Spec.Horizons < H:
		reason = fmt.Sprintf("model %s covers %d horizons, %d wanted", m.ID, m.Spec.Horizons, H)
	case ring.Held() < p.cfg.MinHistorySteps:
		reason = fmt.Sprintf("history of %d steps is below min_history_steps %d", ring.Held(), p.cfg.MinHistorySteps)
	}
	if reason == "" {
		pr := p.preds[m]
		if pr == nil {
			pr = model.NewPredictor(m)
			p.preds[m] = pr
		}
		out := make([]float64, m.Spec.Horizons)
		if _, err := pr.Forecast(src, origin, out); err != nil {
			reason = err.Error()
		} else {
			copy(vals, out)
			f.Model = schemas.ModelRef{ID: m.ID, Version: m.Version, FeatureSpec: m.Spec.Version}
		}
	}
	if reason != "" {
		f.Fallback, f.FallbackReason = p.baseline(ring, origin, w.Value(), vals)
		f.FallbackReason = reason + "; " + f.FallbackReason
		f.Model = schemas.ModelRef{ID: f.Fallback, Version: "baseline", FeatureSpec: ""}
	}
	for k := range H {
		f.Horizons[k] = schemas.HorizonValue{Minutes: int(max(int64(k+1)*p.cfg.StepS/60, 1)), AtMs: w.EndMs + int64(k+1)*stepMs, Value: vals[k]}
	}
	f.ID = fmt.Sprintf("%s|%s|%d|r%d|%s@%s", w.Entity, w.Signal, w.StartMs, w.Revision, f.Model.ID, f.Model.Version)
	return f
}

// baseline fills vals with seasonal naive when a day of history covers
// every horizon, else with the last value.
func (p *Processor) baseline(r *features.Ring, origin int64, cur float64, vals []float64) (string, string) {
	day := 86400 / p.cfg.StepS
	ok := true
	for k := range vals {
		v := features.SeasonalNaive(r, origin, k+1, day)
		if math.IsNaN(v) {
			ok = false
			break
		}
		vals[k] = v
	}
	if ok {
		return schemas.FallbackSeasonalNaive, "seasonal naive: the value one day earlier"
	}
	for k := range vals {
		vals[k] = cur
	}
	return schemas.FallbackLastValue, "last value: less than a day of history"
}

// Signals returns the signals forecast, sorted.
func (p *Processor) Signals() []string {
	s := slices.Clone(p.cfg.Signals)
	slices.Sort(s)
	return s
}
