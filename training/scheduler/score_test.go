package scheduler

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestScoreTerms(t *testing.T) {
	cfg := DefaultScoreConfig()
	cases := []struct {
		name string
		in   ScoreInput
		want ScoreTerms
	}{
		{"fresh within quota, busy dept", ScoreInput{Standing: WithinQuota, DeptUtil: 0.9},
			ScoreTerms{Base: 1_000_000, Total: 1_000_000}},
		{"borrower waited 30 min", ScoreInput{Standing: Borrowing, Waited: 30 * time.Minute, DeptUtil: 0.6},
			ScoreTerms{Base: 1_000, WaitCredit: 300, Total: 1_300}},
		{"idle dept penalised in full", ScoreInput{Standing: WithinQuota, DeptUtil: 0},
			ScoreTerms{Base: 1_000_000, UtilPenalty: 10_000, Total: 990_000}},
		{"half the target, half the penalty", ScoreInput{Standing: WithinQuota, DeptUtil: 0.3},
			ScoreTerms{Base: 1_000_000, UtilPenalty: 5_000, Total: 995_000}},
		{"unknown util, no penalty", ScoreInput{Standing: Borrowing, DeptUtil: -1},
			ScoreTerms{Base: 1_000, Total: 1_000}},
		{"wait credit capped", ScoreInput{Standing: Borrowing, Waited: 1000 * time.Hour, DeptUtil: 1},
			ScoreTerms{Base: 1_000, WaitCredit: 100_000, Total: 101_000}},
	}
	for _, c := range cases {
		got := Score(cfg, c.in)
		if got.Base != c.want.Base || got.WaitCredit != c.want.WaitCredit || got.UtilPenalty != c.want.UtilPenalty || got.Total != c.want.Total {
			t.Errorf("%s: got %+v, want base %d wait %d penalty %d total %d", c.name, got, c.want.Base, c.want.WaitCredit, c.want.UtilPenalty, c.want.Total)
		}
		if got.Total != got.Base+got.WaitCredit-got.UtilPenalty {
			t.Errorf("%s: total %d is not base + wait − penalty", c.name, got.Total)
		}
	}
}

// genScoreConfig draws score constants that pass Validate.
func genScoreConfig(t *rapid.T) ScoreConfig {
	c := ScoreConfig{
		Borrowing:           rapid.Int64Range(0, 10_000).Draw(t, "borrowing"),
		WaitCreditPerMinute: rapid.Float64Range(0, 1000).Draw(t, "per_minute"),
		WaitCreditMax:       rapid.Int64Range(0, 500_000).Draw(t, "wait_max"),
		UtilTarget:          rapid.Float64Range(0, 1).Draw(t, "util_target"),
		UtilPenaltyMax:      rapid.Int64Range(0, 200_000).Draw(t, "penalty_max"),
	}
	c.WithinQuota = c.Borrowing + c.WaitCreditMax + c.UtilPenaltyMax + rapid.Int64Range(1, 2_000_000).Draw(t, "gap")
	if err := c.Validate(); err != nil {
		t.Fatalf("generated config invalid: %v", err)
	}
	return c
}

func genInput(t *rapid.T, label string) ScoreInput {
	return ScoreInput{
		Standing: rapid.SampledFrom([]QuotaStanding{WithinQuota, Borrowing}).Draw(t, label+"standing"),
		Waited:   time.Duration(rapid.Int64Range(0, int64(90*24*time.Hour)).Draw(t, label+"waited")),
		DeptUtil: rapid.Float64Range(-0.1, 1).Draw(t, label+"util"),
	}
}

func TestScoreMonotoneInWait(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := genScoreConfig(t)
		in := genInput(t, "")
		longer := in
		longer.Waited += time.Duration(rapid.Int64Range(0, int64(30*24*time.Hour)).Draw(t, "extra"))
		a, b := Score(cfg, in), Score(cfg, longer)
		if b.Total < a.Total {
			t.Fatalf("waiting longer lowered the score: %v → %v", a, b)
		}
	})
}

func TestWithinQuotaNeverBelowBorrower(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := genScoreConfig(t)
		q, b := genInput(t, "q"), genInput(t, "b")
		q.Standing, b.Standing = WithinQuota, Borrowing
		sq, sb := Score(cfg, q), Score(cfg, b)
		if sq.Total <= sb.Total {
			t.Fatalf("within-quota %v ≤ borrower %v", sq, sb)
		}
	})
}

func TestScoreConfigRefusesInvertedConstants(t *testing.T) {
	c := DefaultScoreConfig()
	c.WaitCreditMax = 2_000_000 // a borrower could outwait a within-quota job
	if err := c.Validate(); err == nil {
		t.Fatal("validated a wait cap that lets a borrower outrank a within-quota job")
	}
	if err := DefaultScoreConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPriorityFitsInt32(t *testing.T) {
	if p := (ScoreTerms{Total: 1 << 40}).Priority(); p != 1<<31-1 {
		t.Errorf("saturation: %d", p)
	}
	if p := (ScoreTerms{Total: 1_000_300}).Priority(); p != 1_000_300 {
		t.Errorf("priority %d", p)
	}
}
