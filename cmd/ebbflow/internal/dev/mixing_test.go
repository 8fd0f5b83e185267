package dev

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/training/mixing"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// TestDevMixesNodes runs the simulated cluster as one node group from
// 03:00 to 10:00 (the generated traffic's night valley and the morning
// rise; a whole day is too slow for a test here) with training jobs from
// the Philly trace, and checks from the nodes decisions on the topic and
// the simulation's own counts: nodes go offline in the low period, come
// back before the load peaks, no flip exceeds max_flips per flip_interval,
// and no more jobs are killed than the kill budget allows. The training
// jobs' GPUs report DCGM utilisation and memory through ingest into the
// history, and ebbflow's training sizing then learns each family's runs
// from that history (checkSizingLearnsFromDev).
func TestDevMixesNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated morning takes minutes")
	}
	const span = 7 * time.Hour
	const killBudget = 2
	cfg := testConfig(t)
	pol := cfg.Mixing.Policy
	histDir := t.TempDir()
	tweak := func(c *wire.Config) {
		c.Dev.StartHour = 3
		c.Dev.NodeGroup = "t4"
		c.Dev.OfflineNodes = 1
		c.Dev.HistoryDir = histDir
		c.Mixing.Policy.KillBudgetPerHour = killBudget
	}
	s, _ := runDevCfg(t, cfg, span, Options{}, tweak)
	t.Run("SizingLearnsFromDevRuns", func(t *testing.T) {
		run := cfg
		run.Dev.Step = 60 * time.Second // as runDevCfg sets it
		tweak(&run)
		checkSizingLearnsFromDev(t, run, histDir, s.End)
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

// checkSizingLearnsFromDev reads, as `ebbflow training submit` does, each
// simulated family's runs from the history the dev pipeline wrote (sim →
// DCGM exporter → ingest → window → Parquet) and checks that they are the
// runs the simulation ran, with the GPUs, utilisation and memory it
// reported, and that sizing a new run of the family uses them.
func checkSizingLearnsFromDev(t *testing.T, cfg wire.Config, hist string, end time.Time) {
	d := cfg.Dev
	m, err := simMixing(d) // the same seeded job stream the run used
	if err != nil {
		t.Fatal(err)
	}
	gpus := map[string]int{} // run (workload <family>-<job id>) → GPUs it held
	for _, j := range m.Jobs {
		gpus[j.Family+"-"+strconv.Itoa(j.ID)] = j.Nodes * d.GPUsPerNode
	}
	fsys, err := history.Open(context.Background(), history.Config{Backend: "local", Root: hist})
	if err != nil {
		t.Fatal(err)
	}
	sz := cfg.Training.Sizing
	sz.ScrapeInterval = d.Step // what devConfig sets: one scrape per simulated step
	t4 := scheduler.GPUModel{Name: "t4", MemoryMiB: 16384}
	learned, read := 0, 0
	for _, f := range DevFamilies {
		runs, err := scheduler.ReadFamilyRuns(context.Background(), fsys, hist, sz, scheduler.FamilyRunsQuery{
			Cluster: cfg.Kubernetes.Cluster, Namespace: sim.TrainingNamespace, Family: f.Name, Now: end})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			want, ok := gpus[r.Run]
			if !ok {
				t.Errorf("family %s: run %q is not a job of the simulated stream", f.Name, r.Run)
				continue
			}
			read++
			// The GPU count is inferred from samples per window: a scrape
			// repeated at the same simulated instant (the clock waits on the
			// pipeline) must add nothing (ingest drops a sample repeating its
			// series' previous one, as Prometheus does), so each run reads as
			// exactly its GPUs.
			if r.GPUs != want || math.Abs(r.GPUUtilMean-f.GPUUtil) > 0.005 || math.Abs(r.GPUMemPeakMiB/float64(r.GPUs)-f.GPUMemMiB) > 1 {
				t.Errorf("family %s run %s: read %d GPUs at %.3f, peak %.0f MiB; the simulation ran %d GPUs at %.3f, %.0f MiB each",
					f.Name, r.Run, r.GPUs, r.GPUUtilMean, r.GPUMemPeakMiB, want, f.GPUUtil, f.GPUMemMiB)
			}
		}
		if len(runs) == 0 {
			continue
		}
		learned++
		const requested = 64 // far more than any run used
		got := scheduler.Size(sz, t4, requested, 1, runs)
		if !got.FromHistory || len(got.Runs) == 0 {
			t.Fatalf("family %s: %d runs in the history, sizing did not use them: %s", f.Name, len(runs), got.Formula)
		}
		// The formula on the runs sizing took, from what the history says of them.
		busy, peak := 0.0, 0.0
		for _, r := range got.Runs {
			busy += r.GPUUtilMean * float64(r.GPUs)
			peak = math.Max(peak, r.GPUMemPeakMiB)
		}
		busy /= float64(len(got.Runs))
		want := max(1, int(math.Ceil(math.Max(busy, peak/(sz.MemoryFraction*float64(t4.MemoryMiB)))-1e-6)))
		if got.GPUs != want || got.GPUs >= requested {
			t.Errorf("family %s: sized %d GPUs (%s), its runs in the history say %d", f.Name, got.GPUs, got.Formula, want)
		}
		t.Logf("family %s: %d runs in the dev history; %s", f.Name, len(runs), got.Formula)
	}
	t.Logf("%d runs of %d families read from the dev history", read, learned)
	if learned == 0 {
		t.Fatalf("no family's runs in the dev history %s (%d jobs in the stream)", hist, len(m.Jobs))
	}
}
