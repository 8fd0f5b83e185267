package mixing

import (
	"math"
	"math/rand/v2"
	"time"
)

// Job is one generated training job.
type Job struct {
	ID int
	// Arrive is the minute (from the series start) the job is submitted.
	Arrive int
	// Nodes is how many whole nodes the job takes, all in one pool.
	Nodes int
	// Minutes is how long it really runs; Expected is what its owner
	// declared (the scheduler's estimate).
	Minutes, Expected int
}

// JobGenConfig shapes the generated training job stream.
type JobGenConfig struct {
	Seed uint64
	// Nodes is the training cluster the Philly busy share is scaled to:
	// target busy nodes = active/total × Nodes. In Backtest, 0 means every
	// node that can train (fixed + mixable).
	Nodes float64
	// MedianMinutes and Sigma give the log-normal run time (heavy tail:
	// with 30 min and 1.5, 1 job in 60 runs over 12 h, 1 in 1,000 over
	// two days); MinMinutes and MaxMinutes clip it.
	MedianMinutes, Sigma   float64
	MinMinutes, MaxMinutes int
	// SizeWeights are the odds of a job taking 1, 2, 4 or 8 nodes.
	SizeWeights [4]float64
	// Overestimate is the spread of the declared run time above the real
	// one (declared = real × (1 + |N(0, Overestimate)|)); Underestimated
	// is the share of jobs that run past their declaration instead
	// (declared = real × U(0.5, 1)).
	Overestimate, Underestimated float64
}

// DefaultJobGen returns the generator's documented defaults.
func DefaultJobGen() JobGenConfig {
	return JobGenConfig{
		Seed: 1, Nodes: 36, MedianMinutes: 30, Sigma: 1.5, MinMinutes: 2, MaxMinutes: 7 * 24 * 60,
		SizeWeights: [4]float64{0.75, 0.15, 0.07, 0.03}, Overestimate: 0.3, Underestimated: 0.1,
	}
}

// GenerateJobs builds a seeded job stream whose busy-node count follows
// the Philly curve: at every minute, while the nodes the generated jobs
// would occupy if each ran on arrival fall short of share×Nodes, a new job
// arrives. The count therefore tracks the curve from below and overshoots
// only where the curve falls faster than jobs end; the mean absolute error
// of the generated busy curve against the target is returned.
func GenerateJobs(share []float64, cfg JobGenConfig) ([]Job, float64) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6978696e67))
	ends := make([]int, len(share)+1) // nodes freed at each minute
	busy := 0
	var jobs []Job
	var absErr float64
	for m := range share {
		busy -= ends[m]
		target := share[m] * cfg.Nodes
		for float64(busy) < target-0.5 {
			j := drawJob(rng, cfg)
			j.ID, j.Arrive = len(jobs), m
			jobs = append(jobs, j)
			busy += j.Nodes
			if e := m + j.Minutes; e < len(ends) {
				ends[e] += j.Nodes
			}
		}
		absErr += math.Abs(float64(busy) - target)
	}
	return jobs, absErr / float64(max(1, len(share)))
}

func drawJob(rng *rand.Rand, cfg JobGenConfig) Job {
	mins := int(math.Round(cfg.MedianMinutes * math.Exp(cfg.Sigma*rng.NormFloat64())))
	mins = min(max(mins, cfg.MinMinutes), cfg.MaxMinutes)
	var exp int
	if rng.Float64() < cfg.Underestimated {
		exp = int(math.Ceil(float64(mins) * (0.5 + 0.5*rng.Float64())))
	} else {
		exp = int(math.Ceil(float64(mins) * (1 + math.Abs(cfg.Overestimate*rng.NormFloat64()))))
	}
	r, acc, size := rng.Float64(), 0.0, 8
	for i, w := range cfg.SizeWeights {
		acc += w
		if r < acc {
			size = 1 << i
			break
		}
	}
	return Job{Nodes: size, Minutes: mins, Expected: max(exp, 1)}
}

// minutes converts a count of minutes to a duration.
func minutes(n int) time.Duration { return time.Duration(n) * time.Minute }
