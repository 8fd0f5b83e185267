package dev

import (
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// TestDevMixesNodes runs the simulated cluster as one node group from
// 03:00 to 10:00 (the generated traffic's night valley and the morning
// rise; a whole day is too slow for a test here) with training jobs from
// the Philly trace, and checks from the nodes decisions on the topic and
// the simulation's own counts: nodes go offline in the low period, come
// back before the load peaks, no flip exceeds max_flips per flip_interval,
// and no more jobs are killed than the kill budget allows.
func TestDevMixesNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated morning takes minutes")
	}
	const span = 7 * time.Hour
	const killBudget = 2
	cfg := testConfig(t)
	pol := cfg.Mixing.Policy
	s, _ := runDevCfg(t, cfg, span, Options{}, func(c *wire.Config) {
		c.Dev.StartHour = 3
		c.Dev.NodeGroup = "t4"
		c.Dev.OfflineNodes = 1
		c.Mixing.Policy.KillBudgetPerHour = killBudget
	})
	if s.Mixing == nil {
		t.Fatal("no mixing section in the summary")
	}
	m := s.Mixing
	if m.Sim.Submitted == 0 || m.Sim.Started == 0 {
		t.Fatalf("no training jobs ran: %+v", m.Sim)
	}
	// The load peak of the run, from the simulation's own minutes.
	total := map[int64]float64{}
	for _, mins := range s.SimMinutes {
		for _, x := range mins {
			total[x.Start.UnixMilli()] += x.Load
		}
	}
	var peakAt int64
	lowest, peak := -1.0, 0.0
	for at, l := range total {
		if l > peak {
			peak, peakAt = l, at
		}
		if lowest < 0 || l < lowest {
			lowest = l
		}
	}
	var firstOff, firstOnAfterOff int64
	for _, d := range m.Flips {
		if d.DryRun {
			t.Errorf("decision %s is a dry run", d.ID)
		}
		switch d.Direction {
		case string(mixing.HandoverToOffline):
			if firstOff == 0 {
				firstOff = d.AtMs
				if l := total[time.UnixMilli(d.AtMs).Truncate(time.Minute).UnixMilli()]; l > (lowest+peak)/2 {
					t.Errorf("first to-offline flip at %s under load %.0f, above the middle of %.0f..%.0f", time.UnixMilli(d.AtMs).UTC(), l, lowest, peak)
				}
			}
		case string(mixing.HandoverToOnline):
			if firstOff != 0 && firstOnAfterOff == 0 {
				firstOnAfterOff = d.AtMs
			}
		}
		// max_flips per flip_interval, over a sliding window.
		n := 0
		for _, e := range m.Flips {
			if e.AtMs <= d.AtMs && e.AtMs > d.AtMs-pol.FlipInterval.Milliseconds() {
				n += len(e.Nodes)
			}
		}
		if n > pol.MaxFlips {
			t.Errorf("%d nodes flipped in the %s up to %s, more than max_flips %d", n, pol.FlipInterval, time.UnixMilli(d.AtMs).UTC(), pol.MaxFlips)
		}
	}
	if firstOff == 0 {
		t.Fatalf("no node went offline in the low period (%d decisions)", len(m.Flips))
	}
	if firstOnAfterOff == 0 || firstOnAfterOff > peakAt {
		t.Errorf("no node came back online before the load peak at %s (first to-online after the first to-offline: %v)",
			time.UnixMilli(peakAt).UTC(), time.UnixMilli(firstOnAfterOff).UTC())
	}
	hours := int(span/time.Hour) + 1
	if max := killBudget * hours; m.Sim.Killed > max {
		t.Errorf("%d jobs killed, more than the kill budget allows (%d per hour over %d h)", m.Sim.Killed, killBudget, hours)
	}
}
