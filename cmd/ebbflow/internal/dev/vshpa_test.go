package dev

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/sim"
)

func TestVersusHPAOnTheServedLoad(t *testing.T) {
	d := wire.DefaultDevConfig()
	t0 := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	// An hour at 2 replicas' worth, then an hour at 6 replicas' worth that
	// the run never scaled for.
	var ms []sim.Minute
	for i := range 120 {
		load := 2 * 0.7 * d.CapacityRPS
		if i >= 60 {
			load = 6 * 0.7 * d.CapacityRPS
		}
		ms = append(ms, sim.Minute{Start: t0.Add(time.Duration(i) * time.Minute), Replicas: 2, Load: load})
	}
	v, err := versusHPA(ms, d)
	if err != nil {
		t.Fatal(err)
	}
	if v.Run.UnderProvisionedMinutes < 59 || v.Run.ScaleEvents != 0 {
		t.Errorf("run: %.1f under-provisioned minutes, %d scale events; want the whole second hour, none", v.Run.UnderProvisionedMinutes, v.Run.ScaleEvents)
	}
	if v.HPA.ScaleUps == 0 || v.HPA.UnderProvisionedMinutes >= v.Run.UnderProvisionedMinutes {
		t.Errorf("hpa: %d scale-ups, %.1f under-provisioned minutes; want it to follow the step", v.HPA.ScaleUps, v.HPA.UnderProvisionedMinutes)
	}
	ms[5].Start = ms[5].Start.Add(time.Second)
	if _, err := versusHPA(ms, d); err == nil {
		t.Error("minutes out of step: no error")
	}
	var buf bytes.Buffer
	Summary{Services: []ServiceSummary{{Entity: "svc/a"}}, VsHPA: map[string]VsHPA{"svc/a": v}}.Print(&buf)
	if !strings.Contains(buf.String(), "vs HPA") || !strings.Contains(buf.String(), "HPA, ×") {
		t.Errorf("summary lacks the vs-HPA columns:\n%s", buf.String())
	}
}
