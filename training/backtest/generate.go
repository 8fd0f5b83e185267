package backtest

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// ModelCap is one GPU model of the simulated cluster.
type ModelCap struct {
	Name      string `json:"name"`
	MemoryMiB int    `json:"memory_mib"`
	GPUs      int    `json:"gpus"`
	// Prefer is the share of job families that prefer this model.
	Prefer float64 `json:"prefer"`
}

// Dept is one simulated department.
type Dept struct {
	Name string `json:"name"`
	// Share is both its share of the offered demand (on average) and its
	// share of every model's quota: static quotas sized to expected demand.
	Share float64 `json:"share"`
}

// GenOptions shape the generated job stream. Every field is an assumption
// documented in docs/training.md.
type GenOptions struct {
	Seed uint64 `json:"seed"`
	// StartMinute and Minutes select the span of the curve replayed.
	StartMinute int `json:"start_minute"`
	Minutes     int `json:"minutes"`
	// LoadFactor scales the curve: offered requested-GPU demand at minute t
	// = curve(t) × cluster GPUs × LoadFactor.
	LoadFactor float64    `json:"load_factor"`
	Models     []ModelCap `json:"models"`
	Depts      []Dept     `json:"depts"`
	// DriftSigma is the hourly log-volatility of each department's share
	// of demand (a random walk), so departments are busy at different times.
	DriftSigma float64 `json:"drift_sigma"`
	// NewFamily is the probability that a job starts a new family rather
	// than re-running one of the 50 most recent families of its department
	// whose previous run has ended (a family's runs are sequential; when
	// none is idle, a new family starts).
	NewFamily float64 `json:"new_family"`
	// FallbackShare is the share of families that allow the other models.
	FallbackShare float64 `json:"fallback_share"`
	// SizeMix is the distribution of requested GPUs.
	SizeMix []SizeWeight `json:"size_mix"`
	// UseMin and UseMax bound the fraction of its requested GPUs a family
	// really keeps busy (uniform).
	UseMin float64 `json:"use_min"`
	UseMax float64 `json:"use_max"`
	// RunNoise is the relative spread of one run's GPU use around its family's.
	RunNoise float64 `json:"run_noise"`
	// DurMedianMin and DurSigma: a family's median duration is lognormal
	// around DurMedianMin with DurSigma; a run's is lognormal around its
	// family's with RunDurSigma; clipped to [DurMinMin, DurMaxMin].
	DurMedianMin float64 `json:"dur_median_min"`
	DurSigma     float64 `json:"dur_sigma"`
	RunDurSigma  float64 `json:"run_dur_sigma"`
	DurMinMin    float64 `json:"dur_min_min"`
	DurMaxMin    float64 `json:"dur_max_min"`
}

// SizeWeight is one entry of the requested-GPU distribution.
type SizeWeight struct {
	GPUs   int     `json:"gpus"`
	Weight float64 `json:"weight"`
}

// DefaultGenOptions: 14 days after 2 days of warm-up, 512 GPUs in two
// models, four departments.
func DefaultGenOptions() GenOptions {
	return GenOptions{
		Seed: 1, StartMinute: 0, Minutes: 16 * 24 * 60, LoadFactor: 1.0,
		Models: []ModelCap{
			{Name: "a100", MemoryMiB: 81920, GPUs: 256, Prefer: 0.65},
			{Name: "v100", MemoryMiB: 32768, GPUs: 256, Prefer: 0.35},
		},
		Depts:      []Dept{{"research", 0.4}, {"product", 0.3}, {"speech", 0.2}, {"vision", 0.1}},
		DriftSigma: 0.25, NewFamily: 0.25, FallbackShare: 0.8,
		SizeMix: []SizeWeight{{1, 0.55}, {2, 0.12}, {4, 0.15}, {8, 0.15}, {16, 0.03}},
		UseMin:  0.2, UseMax: 0.9, RunNoise: 0.1,
		DurMedianMin: 40, DurSigma: 1.5, RunDurSigma: 0.5, DurMinMin: 2, DurMaxMin: 10 * 24 * 60,
	}
}

// Validate names the first bad option.
func (o GenOptions) Validate() error {
	switch {
	case o.Minutes <= 0:
		return fmt.Errorf("minutes: %d must be positive", o.Minutes)
	case o.StartMinute < 0:
		return fmt.Errorf("start_minute: %d is negative", o.StartMinute)
	case o.LoadFactor <= 0:
		return fmt.Errorf("load_factor: %v must be positive", o.LoadFactor)
	case len(o.Models) == 0:
		return fmt.Errorf("models: at least one is required")
	case len(o.Depts) == 0:
		return fmt.Errorf("depts: at least one is required")
	case len(o.SizeMix) == 0:
		return fmt.Errorf("size_mix: at least one entry is required")
	case o.UseMin <= 0 || o.UseMax > 1 || o.UseMin > o.UseMax:
		return fmt.Errorf("use_min, use_max: want 0 < use_min ≤ use_max ≤ 1, got %v, %v", o.UseMin, o.UseMax)
	case o.DurMinMin <= 0 || o.DurMaxMin < o.DurMinMin:
		return fmt.Errorf("dur_min_min, dur_max_min: want 0 < min ≤ max")
	}
	for i, m := range o.Models {
		if m.GPUs <= 0 || m.MemoryMiB <= 0 {
			return fmt.Errorf("models[%d]: gpus and memory_mib must be positive", i)
		}
	}
	for i, d := range o.Depts {
		if d.Share <= 0 {
			return fmt.Errorf("depts[%d].share: must be positive", i)
		}
	}
	return nil
}

// CapacityGPUs is the cluster's GPU count.
func (o GenOptions) CapacityGPUs() int {
	n := 0
	for _, m := range o.Models {
		n += m.GPUs
	}
	return n
}

// Job is one generated training job (one run of a family).
type Job struct {
	ID     int `json:"id"`
	Dept   int `json:"dept"`
	Family int `json:"family"`
	// Arrival is the submission minute.
	Arrival int `json:"arrival"`
	// ReqGPUs is what the user asks for; Need the GPU-equivalents the run
	// really keeps busy (≤ ReqGPUs: users over-request).
	ReqGPUs int     `json:"req_gpus"`
	Need    float64 `json:"need"`
	// MemMiB is the run's peak GPU memory summed over its GPUs.
	MemMiB float64 `json:"mem_mib"`
	// Duration is the run time in minutes with at least Need GPUs.
	Duration int `json:"duration"`
	// Models are model indices, preferred first, then allowed fallbacks.
	Models []int `json:"models"`
}

type family struct {
	id, dept  int
	req       int
	use       float64 // fraction of req kept busy
	memPerUse float64 // peak memory per busy GPU-equivalent, as a fraction of the preferred model's usable memory
	durMedian float64
	models    []int
	// busyUntil is when the family's latest run would end had it started
	// on arrival: runs of one family are sequential.
	busyUntil int
}

// Generate turns a busy-fraction curve into a seeded job stream whose
// offered demand in requested GPUs follows curve × capacity × LoadFactor:
// at each minute, jobs are added until the requested GPUs of jobs that
// would be running then (had each started on arrival) reach the target.
func Generate(c Curve, o GenOptions) ([]Job, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("backtest: generator: %w", err)
	}
	if o.StartMinute+o.Minutes > len(c) {
		return nil, fmt.Errorf("backtest: generator: start_minute %d + minutes %d exceeds the trace's %d minutes", o.StartMinute, o.Minutes, len(c))
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x7261696e))
	capGPUs := float64(o.CapacityGPUs())
	offered := make([]float64, o.Minutes+1) // difference array of requested GPUs
	running := 0.0
	logW := make([]float64, len(o.Depts))
	var fams []*family
	byDept := make([][]*family, len(o.Depts))
	var jobs []Job
	pickSize := func() int {
		tot := 0.0
		for _, s := range o.SizeMix {
			tot += s.Weight
		}
		x := rng.Float64() * tot
		for _, s := range o.SizeMix {
			if x -= s.Weight; x < 0 {
				return s.GPUs
			}
		}
		return o.SizeMix[len(o.SizeMix)-1].GPUs
	}
	pickModel := func() int {
		tot := 0.0
		for _, m := range o.Models {
			tot += m.Prefer
		}
		x := rng.Float64() * tot
		for i, m := range o.Models {
			if x -= m.Prefer; x < 0 {
				return i
			}
		}
		return 0
	}
	newFamily := func(d int) *family {
		f := &family{id: len(fams), dept: d, req: pickSize()}
		f.use = o.UseMin + rng.Float64()*(o.UseMax-o.UseMin)
		f.memPerUse = 0.5 + 0.5*rng.Float64()
		f.durMedian = o.DurMedianMin * math.Exp(o.DurSigma*rng.NormFloat64())
		p := pickModel()
		f.models = []int{p}
		if rng.Float64() < o.FallbackShare {
			for i := range o.Models {
				if i != p {
					f.models = append(f.models, i)
				}
			}
		}
		fams = append(fams, f)
		byDept[d] = append(byDept[d], f)
		return f
	}
	for t := 0; t < o.Minutes; t++ {
		if t%60 == 0 {
			for d := range logW {
				logW[d] += o.DriftSigma * rng.NormFloat64()
				logW[d] *= 0.98 // mean-reverting: shares wander but return
			}
		}
		running += offered[t]
		target := c[o.StartMinute+t] * capGPUs * o.LoadFactor
		for running < target {
			// Department by drifting share.
			tot := 0.0
			w := make([]float64, len(o.Depts))
			for d, dp := range o.Depts {
				w[d] = dp.Share * math.Exp(logW[d])
				tot += w[d]
			}
			x, d := rng.Float64()*tot, 0
			for d = range w {
				if x -= w[d]; x < 0 {
					break
				}
			}
			var f *family
			if rng.Float64() >= o.NewFamily {
				// Re-run one of the department's 50 most recent families
				// whose previous run has ended.
				recent := byDept[d]
				if len(recent) > 50 {
					recent = recent[len(recent)-50:]
				}
				var idle []*family
				for _, rf := range recent {
					if rf.busyUntil <= t {
						idle = append(idle, rf)
					}
				}
				if len(idle) > 0 {
					f = idle[rng.IntN(len(idle))]
				}
			}
			if f == nil {
				f = newFamily(d)
			}
			need := float64(f.req) * f.use * (1 + o.RunNoise*rng.NormFloat64())
			need = math.Min(float64(f.req), math.Max(0.05, need))
			pref := o.Models[f.models[0]]
			mem := need * f.memPerUse * 0.9 * float64(pref.MemoryMiB)
			dur := f.durMedian * math.Exp(o.RunDurSigma*rng.NormFloat64())
			dur = math.Min(o.DurMaxMin, math.Max(o.DurMinMin, dur))
			j := Job{ID: len(jobs), Dept: d, Family: f.id, Arrival: t, ReqGPUs: f.req, Need: need, MemMiB: mem,
				Duration: int(math.Ceil(dur)), Models: f.models}
			jobs = append(jobs, j)
			f.busyUntil = t + j.Duration
			running += float64(j.ReqGPUs)
			if end := t + j.Duration; end < len(offered) {
				offered[end] -= float64(j.ReqGPUs)
			}
		}
	}
	return jobs, nil
}
