package scheduler

import (
	"fmt"
	"time"
)

// Placement is where a job may run: its pool and the GPU models in the
// order they are tried (Kueue ResourceFlavors, preference then fallbacks).
type Placement struct {
	Pool   string   `json:"pool"`
	Models []string `json:"models"`
	// Reason says why this pool.
	Reason string `json:"reason"`
}

// Place chooses the pool: a job expected to run longer than
// cfg.FixedPoolAfter goes to the fixed pool (node mixing could reclaim a
// mixed node under it), any other to the mixed pool.
func Place(cfg Config, spec JobSpec) Placement {
	p := Placement{Models: spec.GPUs.Models()}
	if spec.ExpectedDuration > cfg.FixedPoolAfter {
		p.Pool = cfg.Pools.Fixed
		p.Reason = fmt.Sprintf("expected %s > %s: fixed pool", fmtDur(spec.ExpectedDuration), fmtDur(cfg.FixedPoolAfter))
	} else {
		p.Pool = cfg.Pools.Mixed
		p.Reason = fmt.Sprintf("expected %s ≤ %s: mixed pool", fmtDur(spec.ExpectedDuration), fmtDur(cfg.FixedPoolAfter))
	}
	return p
}

func fmtDur(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return d.String()
}

// Usage is GPUs in use per GPU model.
type Usage map[string]int

// Standing says whether gpus more GPUs of model keep the department within
// its nominal quota given what it already uses.
func Standing(d Department, used Usage, model string, gpus int) QuotaStanding {
	if used[model]+gpus <= d.Quota[model] {
		return WithinQuota
	}
	return Borrowing
}

// FlavorChoice is the outcome of trying a job's GPU models in order.
type FlavorChoice struct {
	Model    string        `json:"model"`
	GPUs     int           `json:"gpus"`
	Standing QuotaStanding `json:"standing"`
	// Fallback is true when the model is not the preferred one.
	Fallback bool `json:"fallback"`
	// Tried lists why earlier models were passed over.
	Tried []string `json:"tried,omitempty"`
}

// ChooseFlavor tries the models in order, as Kueue's flavor assigner does
// with flavor fungibility "try next flavor before borrowing": the first
// model that fits within the department's quota wins; failing that, the
// first model with free capacity to borrow; failing that, none (ok false).
// gpusFor sizes the job per model (fewer GPUs on larger-memory GPUs);
// free is the cluster's free GPUs per model.
func ChooseFlavor(d Department, used, free Usage, models []string, gpusFor func(model string) int) (FlavorChoice, bool) {
	var tried []string
	borrow := -1
	for i, m := range models {
		g := gpusFor(m)
		if g > free[m] {
			tried = append(tried, fmt.Sprintf("%s: needs %d GPUs, %d free", m, g, free[m]))
			continue
		}
		if Standing(d, used, m, g) == WithinQuota {
			return FlavorChoice{Model: m, GPUs: g, Standing: WithinQuota, Fallback: i > 0, Tried: tried}, true
		}
		tried = append(tried, fmt.Sprintf("%s: %d GPUs would exceed quota %d (using %d)", m, g, d.Quota[m], used[m]))
		if borrow < 0 {
			borrow = i
		}
	}
	if borrow >= 0 {
		m := models[borrow]
		return FlavorChoice{Model: m, GPUs: gpusFor(m), Standing: Borrowing, Fallback: borrow > 0, Tried: tried}, true
	}
	return FlavorChoice{Tried: tried}, false
}
