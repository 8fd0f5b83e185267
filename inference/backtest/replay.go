package backtest

import (
	"errors"
	"fmt"
	"math"
)

// Replay replays a recorded trajectory of ready replicas (one mean count
// per step of the series, rounded to whole replicas): it scores what a
// run actually did with the same measures as the policies. Run it with
// a zero start-up delay, since the counts are already ready replicas.
type Replay struct {
	name    string
	startMs int64
	stepMs  int64
	ready   []float64
}

// NewReplay returns a replay of ready counts per step from startMs.
func NewReplay(name string, startMs int64, stepS int64, ready []float64) *Replay {
	return &Replay{name: name, startMs: startMs, stepMs: stepS * 1000, ready: ready}
}

// Name implements Policy.
func (r *Replay) Name() string { return r.name }

// Decide implements Policy.
func (r *Replay) Decide(v View) Decision {
	i := int((v.NowMs - r.startMs) / r.stepMs)
	if v.NowMs < r.startMs || i >= len(r.ready) || math.IsNaN(r.ready[i]) {
		return Decision{Replicas: v.Replicas, Reason: "replay"}
	}
	return Decision{Replicas: int32(math.Round(r.ready[i])), Reason: "replay"}
}

// VersusHPA scores a run's own ready-replica trajectory (ready[i] is the
// mean ready count over step i of s) and the HPA v2 algorithm on the same
// load, with the same service (cfg), and returns both results: the run's
// first, HPA's second. It is what `ebbflow dev` prints as "vs HPA".
func VersusHPA(s *Series, ready []float64, cfg Config, hpa HPAConfig) (run, h PolicyResult, err error) {
	if len(ready) != len(s.Values) {
		return run, h, fmt.Errorf("backtest: %d ready counts for %d steps of load", len(ready), len(s.Values))
	}
	if len(ready) == 0 {
		return run, h, errors.New("backtest: empty run")
	}
	rc := cfg
	rc.StartupDelay = 0
	rc.InitialReplicas = int32(math.Max(1, math.Round(ready[0])))
	rc.PlotStep = 0
	a, err := Run(s, rc, []Policy{NewReplay("run", s.StartMs, s.StepS, ready)}, nil)
	if err != nil {
		return run, h, err
	}
	hc := cfg
	hc.InitialReplicas = rc.InitialReplicas
	hc.PlotStep = 0
	b, err := Run(s, hc, []Policy{NewHPA(hpa, cfg.MinReplicas, cfg.MaxReplicas)}, nil)
	if err != nil {
		return run, h, err
	}
	return a.Policies[0], b.Policies[0], nil
}
