package dev

import (
	"fmt"
	"io"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// MixingSummary is the node-mixing part of a run with dev.node_group set.
type MixingSummary struct {
	Group string
	// Flips are the nodes decisions read back from the decisions topic.
	Flips []schemas.NodesDecision
	// Sim are the simulation's own figures: training jobs submitted,
	// started, completed, killed (evicted), minutes with Pending inference pods.
	Sim sim.MixingStats
}

// simMixing builds the simulated node group and its training jobs: the
// seeded generator of training/mixing, following the Philly busy-node
// share from the same time of day as the simulated start, scaled to the
// simulated cluster's nodes. A job takes at most a third of the nodes (the
// Philly mix has 8-node jobs; the simulated group is small) and runs at
// most a day.
func simMixing(d wire.DevConfig) (*sim.Mixing, error) {
	tr, _, err := mixing.ReadTrace(findUp(d.TracesDir), "philly", mixing.TrainingTrace)
	if err != nil {
		return nil, fmt.Errorf("dev: dev.traces_dir: %w", err)
	}
	trMin := tr.Start.Hour()*60 + tr.Start.Minute()
	off := ((int(d.StartHour*60)-trMin)%1440 + 1440) % 1440
	if off >= len(tr.Values) {
		return nil, fmt.Errorf("dev: dev.traces_dir: the Philly trace has %d minutes, fewer than a day", len(tr.Values))
	}
	g := mixing.DefaultJobGen()
	g.Seed, g.Nodes, g.MaxMinutes = d.TrainingSeed, float64(d.Nodes), 24*60
	jobs, _ := mixing.GenerateJobs(tr.Values[off:], g)
	most := max(1, d.Nodes/3)
	m := &sim.Mixing{Group: d.NodeGroup, Offline: d.OfflineNodes}
	for _, j := range jobs {
		f := DevFamilies[j.ID%len(DevFamilies)]
		m.Jobs = append(m.Jobs, sim.TrainingJob{ID: j.ID, Arrive: time.Duration(j.Arrive) * time.Minute,
			Nodes: min(j.Nodes, most), Run: time.Duration(j.Minutes) * time.Minute,
			Family: f.Name, GPUUtil: f.GPUUtil, GPUMemMiB: f.GPUMemMiB})
	}
	return m, nil
}

// DevFamily is a job family of the simulated training stream: every run
// keeps its GPUs GPUUtil busy and GPUMemMiB of framebuffer used per GPU,
// which the nodes' DCGM exporters report for the run's pods, so ebbflow's
// training sizing learns them from the dev history.
type DevFamily struct {
	Name      string
	GPUUtil   float64
	GPUMemMiB float64
}

// DevFamilies are the families of the simulated training stream; job i
// is a run of family i mod 4 (run name: the job's id).
var DevFamilies = []DevFamily{
	{Name: "bert-finetune", GPUUtil: 0.35, GPUMemMiB: 6144},
	{Name: "resnet50", GPUUtil: 0.55, GPUMemMiB: 9216},
	{Name: "gpt-small", GPUUtil: 0.8, GPUMemMiB: 14336},
	{Name: "speech-ctc", GPUUtil: 0.45, GPUMemMiB: 4096},
}

// print writes the mixing section of the summary.
func (m *MixingSummary) print(w io.Writer, start time.Time) {
	counts := map[string]int{}
	for _, d := range m.Flips {
		if !d.DryRun {
			counts[d.Direction] += len(d.Nodes)
		}
	}
	fmt.Fprintf(w, "node mixing (group %s): %d nodes to offline, %d to online\n", m.Group,
		counts[string(mixing.HandoverToOffline)], counts[string(mixing.HandoverToOnline)])
	for _, d := range m.Flips {
		names := ""
		for i, n := range d.Nodes {
			if i > 0 {
				names += ","
			}
			names += n.Node
		}
		fmt.Fprintf(w, "  +%-9s %s %-10s %s: %s\n", time.UnixMilli(d.AtMs).Sub(start).Round(time.Second),
			time.UnixMilli(d.AtMs).UTC().Format("15:04"), d.Direction, names, d.Reason.Summary)
	}
	s := m.Sim
	fmt.Fprintf(w, "  training jobs: %d submitted, %d started, %d completed, %d killed by handovers; %d minutes with Pending inference pods\n",
		s.Submitted, s.Started, s.Completed, s.Killed, s.PendingMinutes)
}
