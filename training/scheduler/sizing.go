package scheduler

import (
	"fmt"
	"math"
	"sort"
)

// RunStats is what the history says about one past run of a job family.
type RunStats struct {
	// Run names the run (the Job name; the entity's workload).
	Run string `json:"run"`
	// EndMs is when the run's last window ended (runs sort by it).
	EndMs int64 `json:"end_ms"`
	// GPUs is how many GPUs the run held.
	GPUs int `json:"gpus"`
	// GPUUtilMean is the run's mean GPU utilisation, 0–1 per GPU.
	GPUUtilMean float64 `json:"gpu_util_mean"`
	// GPUMemPeakMiB is the run's peak GPU memory summed over its GPUs.
	GPUMemPeakMiB float64 `json:"gpu_mem_peak_mib"`
	// CPUMean and CPUPeak are the run's mean and peak CPU in cores
	// (0 when the history has no cpu windows for the run).
	CPUMean float64 `json:"cpu_mean"`
	CPUPeak float64 `json:"cpu_peak"`
}

// Sizing is the result of sizing a job on one GPU model, with every input
// and intermediate number so it can be printed and put in a decision.
type Sizing struct {
	Model string `json:"model"`
	// FromHistory is false when the family has no usable runs: the request
	// is then taken as submitted.
	FromHistory bool       `json:"from_history"`
	Runs        []RunStats `json:"runs,omitempty"`
	// RequestedGPUs and RequestedCPU are what the spec asked for.
	RequestedGPUs int     `json:"requested_gpus"`
	RequestedCPU  float64 `json:"requested_cpu"`
	// BusyGPUs = mean over the runs of (mean utilisation × GPUs used).
	BusyGPUs float64 `json:"busy_gpus"`
	// PeakMemMiB = the largest peak GPU memory of the runs.
	PeakMemMiB float64 `json:"peak_mem_mib"`
	// MemGPUs = PeakMemMiB ÷ (MemoryFraction × memory per GPU).
	MemGPUs     float64 `json:"mem_gpus"`
	MemPerGPU   int     `json:"mem_per_gpu_mib"`
	MemFraction float64 `json:"mem_fraction"`
	// GPUs = ceil(max(BusyGPUs, MemGPUs)), at least 1.
	GPUs int `json:"gpus"`
	// CPUMean and CPUPeak are the means over the runs of their mean and
	// peak CPU; CPURequest = CPUMean × (1+request headroom) and CPULimit =
	// CPUPeak × (1+limit headroom), never below the request.
	CPUMean    float64 `json:"cpu_mean"`
	CPUPeak    float64 `json:"cpu_peak"`
	CPURequest float64 `json:"cpu_request"`
	CPULimit   float64 `json:"cpu_limit"`
	// Formula is the GPU rule with the numbers substituted.
	Formula string `json:"formula"`
}

// Size sizes a job for one GPU model from its family's past runs (any
// order; the most recent cfg.Runs are used). With no runs the request is
// taken as submitted. Pure.
func Size(cfg SizingConfig, model GPUModel, requestedGPUs int, requestedCPU float64, runs []RunStats) Sizing {
	s := Sizing{Model: model.Name, RequestedGPUs: requestedGPUs, RequestedCPU: requestedCPU,
		MemPerGPU: model.MemoryMiB, MemFraction: cfg.MemoryFraction}
	use := make([]RunStats, 0, len(runs))
	for _, r := range runs {
		if r.GPUs > 0 {
			use = append(use, r)
		}
	}
	sort.SliceStable(use, func(i, j int) bool { return use[i].EndMs > use[j].EndMs })
	if n := max(cfg.Runs, 1); len(use) > n {
		use = use[:n]
	}
	if len(use) == 0 {
		s.GPUs, s.CPURequest, s.CPULimit = requestedGPUs, requestedCPU, requestedCPU
		s.Formula = fmt.Sprintf("no history: GPUs = requested %d", requestedGPUs)
		return s
	}
	s.FromHistory, s.Runs = true, use
	var cpuRuns int
	for _, r := range use {
		s.BusyGPUs += clamp01(r.GPUUtilMean) * float64(r.GPUs)
		s.PeakMemMiB = math.Max(s.PeakMemMiB, r.GPUMemPeakMiB)
		if r.CPUMean > 0 || r.CPUPeak > 0 {
			s.CPUMean += r.CPUMean
			s.CPUPeak += math.Max(r.CPUPeak, r.CPUMean)
			cpuRuns++
		}
	}
	s.BusyGPUs /= float64(len(use))
	if model.MemoryMiB > 0 && cfg.MemoryFraction > 0 {
		s.MemGPUs = s.PeakMemMiB / (cfg.MemoryFraction * float64(model.MemoryMiB))
	}
	// A tiny epsilon keeps 2.0000000001 (float noise) from becoming 3.
	s.GPUs = max(1, int(math.Ceil(math.Max(s.BusyGPUs, s.MemGPUs)-1e-9)))
	if cfg.NeverGrow && s.GPUs > requestedGPUs {
		s.GPUs = requestedGPUs
	}
	s.Formula = fmt.Sprintf("GPUs = ceil(max(mean(util×GPUs) %.2f, peak mem %.0f MiB ÷ (%.2f × %d MiB) = %.2f)) = %d",
		s.BusyGPUs, s.PeakMemMiB, cfg.MemoryFraction, model.MemoryMiB, s.MemGPUs, s.GPUs)
	if cpuRuns == 0 {
		s.CPURequest, s.CPULimit = requestedCPU, requestedCPU
		return s
	}
	s.CPUMean /= float64(cpuRuns)
	s.CPUPeak /= float64(cpuRuns)
	s.CPURequest = roundMilli(s.CPUMean * (1 + cfg.CPURequestHeadroom))
	s.CPULimit = math.Max(s.CPURequest, roundMilli(s.CPUPeak*(1+cfg.CPULimitHeadroom)))
	return s
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }

// roundMilli rounds cores up to whole millicores, as Kubernetes stores them.
func roundMilli(v float64) float64 { return math.Ceil(v*1000-1e-9) / 1000 }
