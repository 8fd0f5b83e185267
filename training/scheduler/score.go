package scheduler

import (
	"fmt"
	"math"
	"time"
)

// QuotaStanding says whether a job fits within its department's nominal
// quota on the GPU model considered, or must borrow from the cohort.
type QuotaStanding string

// Quota standings.
const (
	WithinQuota QuotaStanding = "within_quota"
	Borrowing   QuotaStanding = "borrowing"
)

// ScoreInput is everything the score reads.
type ScoreInput struct {
	Standing QuotaStanding `json:"standing"`
	// Waited is how long the job has waited since submission.
	Waited time.Duration `json:"waited"`
	// DeptUtil is the department's recent GPU utilisation (0–1): busy GPU
	// time over allocated GPU time. Negative means unknown (no penalty).
	DeptUtil float64 `json:"dept_util"`
}

// ScoreTerms is the score with every term named. Total = Base + WaitCredit
// − UtilPenalty.
type ScoreTerms struct {
	Standing    QuotaStanding `json:"standing"`
	Base        int64         `json:"base"`
	WaitCredit  int64         `json:"wait_credit"`
	UtilPenalty int64         `json:"util_penalty"`
	Total       int64         `json:"total"`
	// Inputs echoed for the reader.
	WaitedMinutes float64 `json:"waited_minutes"`
	DeptUtil      float64 `json:"dept_util"`
}

// String renders the terms as the formula with numbers substituted.
func (t ScoreTerms) String() string {
	util := "unknown"
	if t.DeptUtil >= 0 {
		util = fmt.Sprintf("%.0f%%", 100*t.DeptUtil)
	}
	return fmt.Sprintf("%d (%s base) + %d (waited %.0f min) − %d (dept util %s) = %d",
		t.Base, t.Standing, t.WaitCredit, t.WaitedMinutes, t.UtilPenalty, util, t.Total)
}

// Score is WPAI's score of a waiting job. Pure; each term is its own function.
func Score(cfg ScoreConfig, in ScoreInput) ScoreTerms {
	t := ScoreTerms{Standing: in.Standing, WaitedMinutes: in.Waited.Minutes(), DeptUtil: in.DeptUtil}
	t.Base = baseTerm(cfg, in.Standing)
	t.WaitCredit = waitCredit(cfg, in.Waited)
	t.UtilPenalty = utilPenalty(cfg, in.DeptUtil)
	t.Total = t.Base + t.WaitCredit - t.UtilPenalty
	return t
}

// baseTerm: 1,000,000 within quota, 1,000 when borrowing.
func baseTerm(cfg ScoreConfig, s QuotaStanding) int64 {
	if s == WithinQuota {
		return cfg.WithinQuota
	}
	return cfg.Borrowing
}

// waitCredit grows linearly with the wait, capped so that it never lifts a
// borrower above a within-quota job.
func waitCredit(cfg ScoreConfig, waited time.Duration) int64 {
	if waited <= 0 {
		return 0
	}
	c := math.Floor(cfg.WaitCreditPerMinute * waited.Minutes())
	return int64(math.Min(c, float64(cfg.WaitCreditMax)))
}

// utilPenalty is UtilPenaltyMax at 0 % department utilisation, falling
// linearly to 0 at UtilTarget.
func utilPenalty(cfg ScoreConfig, util float64) int64 {
	if util < 0 || cfg.UtilTarget <= 0 || util >= cfg.UtilTarget {
		return 0
	}
	return int64(math.Round(float64(cfg.UtilPenaltyMax) * (cfg.UtilTarget - util) / cfg.UtilTarget))
}

// Priority converts a score to a Kueue priority (int32), saturating.
func (t ScoreTerms) Priority() int32 {
	switch {
	case t.Total > math.MaxInt32:
		return math.MaxInt32
	case t.Total < math.MinInt32:
		return math.MinInt32
	}
	return int32(t.Total)
}
