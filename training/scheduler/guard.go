package scheduler

import (
	"fmt"
	"time"

	"github.com/ebbflow/ebbflow/training/killbudget"
)

// PreemptReason is why a running job may or may not be pre-empted.
type PreemptReason string

// Pre-emption reasons: the guard that had the last word.
const (
	// PreemptAllowed: the victim borrows, is old enough, and the budget allows it.
	PreemptAllowed PreemptReason = "allowed"
	// PreemptVictimWithinQuota: a job within its own quota is never
	// pre-empted to make room for another department.
	PreemptVictimWithinQuota PreemptReason = "victim_within_quota"
	// PreemptMinRuntime: the victim has not yet run MinRuntime.
	PreemptMinRuntime PreemptReason = "min_runtime"
	// PreemptKillBudget: the kill budget is spent.
	PreemptKillBudget PreemptReason = "kill_budget"
	// PreemptNotHigher: the victim's score is not below the preemptor's.
	PreemptNotHigher PreemptReason = "not_lower_score"
)

// Victim is a running job considered for pre-emption.
type Victim struct {
	Name     string        `json:"name"`
	Standing QuotaStanding `json:"standing"`
	Score    int64         `json:"score"`
	Started  time.Time     `json:"started"`
}

// PreemptCheck is the guard's verdict with its inputs.
type PreemptCheck struct {
	Reason  PreemptReason `json:"reason"`
	Ran     time.Duration `json:"ran"`
	Detail  string        `json:"detail"`
	Allowed bool          `json:"allowed"`
}

// CanPreempt is the pre-emption guard Kueue lacks: one small check per
// rule, in order (standing, score, minimum runtime, kill budget). It
// records nothing in the budget; the caller records a kill it carries out.
func CanPreempt(cfg Config, budget *killbudget.Budget, preemptorScore int64, v Victim, now time.Time) PreemptCheck {
	ran := now.Sub(v.Started)
	c := PreemptCheck{Ran: ran}
	switch {
	case v.Standing == WithinQuota:
		c.Reason, c.Detail = PreemptVictimWithinQuota, fmt.Sprintf("%s runs within its department's quota", v.Name)
	case v.Score >= preemptorScore:
		c.Reason, c.Detail = PreemptNotHigher, fmt.Sprintf("%s scores %d ≥ %d", v.Name, v.Score, preemptorScore)
	case ran < cfg.MinRuntime:
		c.Reason, c.Detail = PreemptMinRuntime, fmt.Sprintf("%s has run %s < min runtime %s", v.Name, ran.Round(time.Second), cfg.MinRuntime)
	case budget == nil:
		c.Reason, c.Detail = PreemptKillBudget, "no kill budget configured"
	case !budget.Allow(now):
		c.Reason, c.Detail = PreemptKillBudget, fmt.Sprintf("kill budget spent (%d in %s)", budget.Config().Max, budget.Config().Window)
	default:
		c.Reason, c.Allowed, c.Detail = PreemptAllowed, true, fmt.Sprintf("%s borrows, ran %s, score %d < %d", v.Name, ran.Round(time.Second), v.Score, preemptorScore)
	}
	return c
}
