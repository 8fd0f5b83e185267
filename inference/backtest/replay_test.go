package backtest

import (
	"math"
	"testing"
)

func TestVersusHPAScoresTheRunAndHPAOnTheSameLoad(t *testing.T) {
	// A run that held 2 ready replicas through a step to 30 (needs 6 at
	// capacity 10, target 0.5) is under-provisioned for the whole step;
	// HPA on the same load catches up after its sync and start-up.
	s := flat(30, func(i int) float64 {
		if i >= 10 && i < 20 {
			return 30
		}
		return 10
	})
	ready := make([]float64, 30)
	for i := range ready {
		ready[i] = 2
	}
	cfg := testConfig()
	run, h, err := VersusHPA(s, ready, cfg, DefaultHPAConfig())
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(run.UnderProvisionedMinutes-10) > 1e-9 || math.Abs(run.ReplicaMinutes-60) > 1e-9 || run.ScaleEvents != 0 {
		t.Errorf("run: under %.2f, replica-min %.2f, events %d; want 10, 60, 0", run.UnderProvisionedMinutes, run.ReplicaMinutes, run.ScaleEvents)
	}
	if !(h.UnderProvisionedMinutes > 0 && h.UnderProvisionedMinutes < run.UnderProvisionedMinutes) || h.ScaleUps == 0 {
		t.Errorf("hpa: under %.2f with %d scale-ups; want some but less than the run's", h.UnderProvisionedMinutes, h.ScaleUps)
	}
	if _, _, err := VersusHPA(s, ready[:5], cfg, DefaultHPAConfig()); err == nil {
		t.Error("mismatched lengths: no error")
	}
}
