package dev

import (
	"fmt"
	"math"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/inference/backtest"
	"github.com/ebbflow/ebbflow/internal/sim"
)

// VsHPA compares a service's run with the HPA v2 algorithm on the load the
// simulation served, both scored by the backtest core (inference/backtest)
// on the same simulated service: the run from its own ready replicas per
// minute, HPA simulated with the same start-up delay and bounds.
type VsHPA struct {
	Run, HPA backtest.PolicyResult
}

// versusHPA scores one service's minutes.
func versusHPA(minutes []sim.Minute, d wire.DevConfig) (VsHPA, error) {
	if len(minutes) == 0 {
		return VsHPA{}, fmt.Errorf("no simulated minutes")
	}
	s := &backtest.Series{Name: "run", Signal: "qps", StartMs: minutes[0].Start.UnixMilli(), StepS: 60, Values: make([]float64, len(minutes))}
	ready := make([]float64, len(minutes))
	for i, m := range minutes {
		if want := s.StartMs + int64(i)*60_000; m.Start.UnixMilli() != want {
			return VsHPA{}, fmt.Errorf("simulated minute %d starts at %s, not one minute after the previous", i, m.Start)
		}
		s.Values[i], ready[i] = m.Load, m.Replicas
	}
	cfg := backtest.DefaultConfig(d.CapacityRPS)
	cfg.Target = 0.7 // the services' expect_rate (devConfig)
	cfg.StartupDelay = d.StartupDelay
	cfg.MinReplicas, cfg.MaxReplicas = d.MinReplicas, d.MaxReplicas
	cfg.BaseLatencyMs, cfg.LatencySLOMs = d.BaseLatencyMs, d.LatencySLOMs
	run, h, err := backtest.VersusHPA(s, ready, cfg, backtest.DefaultHPAConfig())
	if err != nil {
		return VsHPA{}, err
	}
	return VsHPA{Run: run, HPA: h}, nil
}

// ratio is a/b, NaN when b is 0 (printed as "-").
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}
