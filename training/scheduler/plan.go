package scheduler

import (
	"fmt"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// PlanInput is what planning a submission reads besides the spec.
type PlanInput struct {
	Now time.Time
	// Runs are the family's past runs (ReadFamilyRuns); nil = no history.
	Runs []RunStats
	// Used is the department's GPUs in use (admitted) per model; Free the
	// cluster's unused GPUs per model. Nil Free means "unknown" (dry run
	// without a cluster): the preferred model is chosen.
	Used, Free Usage
	// DeptUtil is the department's recent GPU utilisation, −1 unknown.
	DeptUtil float64
}

// Plan is a sized, placed and scored submission.
type Plan struct {
	JobName   string                     `json:"job_name"`
	Namespace string                     `json:"namespace"`
	Placement Placement                  `json:"placement"`
	Choice    FlavorChoice               `json:"choice"`
	Sizing    Sizing                     `json:"sizing"`
	Sizings   map[string]Sizing          `json:"sizings"`
	Score     ScoreTerms                 `json:"score"`
	CPU       float64                    `json:"cpu"`
	MemoryB   float64                    `json:"memory_bytes"`
	Decisions []schemas.TrainingDecision `json:"-"`
}

// PlanSubmission sizes the job on each allowed GPU model, places it,
// chooses the model (preference order, then fallbacks; within quota before
// borrowing), scores it and builds its decisions. Pure.
func PlanSubmission(cfg Config, cluster string, spec JobSpec, in PlanInput) (Plan, error) {
	if err := spec.Validate(cfg); err != nil {
		return Plan{}, err
	}
	dept, _ := cfg.Department(spec.Department)
	cpu, _ := spec.CPUCores()
	mem, _ := spec.MemoryBytes()
	p := Plan{JobName: spec.JobName(in.Now), Namespace: dept.Ns(), Placement: Place(cfg, spec), Sizings: map[string]Sizing{}, MemoryB: mem}
	for _, m := range p.Placement.Models {
		gm, _ := cfg.GPUModel(m)
		p.Sizings[m] = Size(cfg.Sizing, gm, spec.GPUs.Count, cpu, in.Runs)
	}
	gpusFor := func(m string) int { return p.Sizings[m].GPUs }
	if in.Free == nil {
		pref := p.Placement.Models[0]
		p.Choice = FlavorChoice{Model: pref, GPUs: gpusFor(pref), Standing: Standing(dept, in.Used, pref, gpusFor(pref)),
			Tried: []string{"cluster usage unknown: preferred model"}}
	} else if ch, ok := ChooseFlavor(dept, in.Used, in.Free, p.Placement.Models, gpusFor); ok {
		p.Choice = ch
	} else {
		// Nothing fits now: wait on the preferred model, where Kueue admits
		// it as soon as room appears (a later resize may move it).
		pref := p.Placement.Models[0]
		p.Choice = FlavorChoice{Model: pref, GPUs: gpusFor(pref), Standing: Standing(dept, in.Used, pref, gpusFor(pref)), Tried: ch.Tried}
	}
	p.Sizing = p.Sizings[p.Choice.Model]
	p.CPU = p.Sizing.CPURequest
	p.Score = Score(cfg.Score, ScoreInput{Standing: p.Choice.Standing, Waited: 0, DeptUtil: in.DeptUtil})
	p.Decisions = append(p.Decisions, p.decision(cfg, cluster, spec, schemas.TrainingLaunch, in.Now,
		fmt.Sprintf("launch %s on %s (%s) in pool %s: %d GPUs, score %d", p.JobName, p.Choice.Model, p.Choice.Standing, p.Placement.Pool, p.Choice.GPUs, p.Score.Total)))
	if p.Choice.GPUs != spec.GPUs.Count || p.Choice.Fallback {
		p.Decisions = append(p.Decisions, p.decision(cfg, cluster, spec, schemas.TrainingResize, in.Now,
			fmt.Sprintf("resize %s: requested %d × %s, granted %d × %s (%s)", p.JobName, spec.GPUs.Count, spec.GPUs.Model, p.Choice.GPUs, p.Choice.Model, p.Sizing.Formula)))
	}
	return p, nil
}

func (p Plan) decision(cfg Config, cluster string, spec JobSpec, action string, now time.Time, summary string) schemas.TrainingDecision {
	sz := SizingEvent(p.Sizing)
	return schemas.TrainingDecision{
		ID:   fmt.Sprintf("%s/%s/%s/%d", p.Namespace, p.JobName, action, now.UnixMilli()),
		Kind: schemas.DecisionTraining, Seq: now.UnixMilli(), Action: action,
		Target: schemas.Target{Cluster: cluster, Namespace: p.Namespace, Kind: "Job", Name: p.JobName},
		AtMs:   now.UnixMilli(), ExpiresMs: now.Add(cfg.Kueue.RefreshInterval).UnixMilli(),
		Job: schemas.TrainingJob{Name: p.JobName, Namespace: p.Namespace, Department: spec.Department, User: spec.User, Family: spec.Family,
			Pool: p.Placement.Pool, Models: p.Placement.Models, Model: p.Choice.Model, Fallback: p.Choice.Fallback,
			RequestedGPUs: spec.GPUs.Count, GPUs: p.Choice.GPUs, CPURequest: p.Sizing.CPURequest, CPULimit: p.Sizing.CPULimit,
			ExpectedS: int64(spec.ExpectedDuration / time.Second)},
		Score:     ScoreEvent(p.Score),
		Sizing:    &sz,
		Reason:    schemas.TrainingReason{Summary: summary},
		DecidedBy: cfg.Source,
	}
}

// ScoreEvent converts score terms to their event form.
func ScoreEvent(t ScoreTerms) schemas.TrainingScore {
	return schemas.TrainingScore{Standing: string(t.Standing), Base: t.Base, WaitCredit: t.WaitCredit, UtilPenalty: t.UtilPenalty,
		Total: t.Total, WaitedMinutes: max(0, t.WaitedMinutes), DeptUtil: t.DeptUtil}
}

// SizingEvent converts a sizing to its event form.
func SizingEvent(s Sizing) schemas.TrainingSizing {
	out := schemas.TrainingSizing{Model: s.Model, FromHistory: s.FromHistory, RequestedGPUs: s.RequestedGPUs, RequestedCPU: s.RequestedCPU,
		BusyGPUs: s.BusyGPUs, PeakMemMiB: s.PeakMemMiB, MemGPUs: s.MemGPUs, MemPerGPUMiB: s.MemPerGPU, MemFraction: s.MemFraction,
		GPUs: s.GPUs, CPUMean: s.CPUMean, CPUPeak: s.CPUPeak, CPURequest: s.CPURequest, CPULimit: s.CPULimit, Formula: s.Formula}
	for _, r := range s.Runs {
		out.Runs = append(out.Runs, schemas.TrainingRun{Run: r.Run, EndMs: r.EndMs, GPUs: r.GPUs, GPUUtilMean: r.GPUUtilMean,
			GPUMemPeakMiB: r.GPUMemPeakMiB, CPUMean: r.CPUMean, CPUPeak: r.CPUPeak})
	}
	return out
}
