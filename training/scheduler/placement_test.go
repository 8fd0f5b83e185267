package scheduler

import (
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/training/killbudget"
)

func TestPlaceLongJobsInFixedPool(t *testing.T) {
	cfg := DefaultConfig()
	spec := JobSpec{GPUs: GPUSpec{Model: "a100", Fallbacks: []string{"v100"}}}
	for _, c := range []struct {
		d    time.Duration
		pool string
	}{{13 * time.Hour, "fixed"}, {12 * time.Hour, "offline"}, {time.Minute, "offline"}} {
		spec.ExpectedDuration = c.d
		p := Place(cfg, spec)
		if p.Pool != c.pool {
			t.Errorf("%s → %s, want %s", c.d, p.Pool, c.pool)
		}
		if len(p.Models) != 2 || p.Models[0] != "a100" || p.Models[1] != "v100" {
			t.Errorf("models %v", p.Models)
		}
	}
}

func TestChooseFlavor(t *testing.T) {
	d := Department{Name: "r", Quota: map[string]int{"a100": 8, "v100": 4}}
	four := func(string) int { return 4 }
	models := []string{"a100", "v100"}
	cases := []struct {
		name       string
		used, free Usage
		want       FlavorChoice
		ok         bool
	}{
		{"preferred within quota", Usage{}, Usage{"a100": 10, "v100": 10}, FlavorChoice{Model: "a100", GPUs: 4, Standing: WithinQuota}, true},
		{"preferred full: fall back", Usage{}, Usage{"a100": 2, "v100": 10}, FlavorChoice{Model: "v100", GPUs: 4, Standing: WithinQuota, Fallback: true}, true},
		{"fallback within quota beats borrowing the preferred", Usage{"a100": 8}, Usage{"a100": 10, "v100": 10},
			FlavorChoice{Model: "v100", GPUs: 4, Standing: WithinQuota, Fallback: true}, true},
		{"borrow the preferred", Usage{"a100": 8, "v100": 4}, Usage{"a100": 10, "v100": 10}, FlavorChoice{Model: "a100", GPUs: 4, Standing: Borrowing}, true},
		{"nothing free", Usage{}, Usage{"a100": 3, "v100": 3}, FlavorChoice{}, false},
	}
	for _, c := range cases {
		got, ok := ChooseFlavor(d, c.used, c.free, models, four)
		if ok != c.ok || got.Model != c.want.Model || got.GPUs != c.want.GPUs || got.Standing != c.want.Standing || got.Fallback != c.want.Fallback {
			t.Errorf("%s: got %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestCanPreemptGuards(t *testing.T) {
	cfg := DefaultConfig() // min runtime 10m
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-time.Hour)
	cases := []struct {
		name   string
		v      Victim
		budget *killbudget.Budget
		want   PreemptReason
	}{
		{"old borrower", Victim{Name: "a", Standing: Borrowing, Score: 1000, Started: old}, killbudget.New(cfg.KillBudget), PreemptAllowed},
		{"within quota", Victim{Name: "a", Standing: WithinQuota, Score: 1000, Started: old}, killbudget.New(cfg.KillBudget), PreemptVictimWithinQuota},
		{"young borrower", Victim{Name: "a", Standing: Borrowing, Score: 1000, Started: now.Add(-5 * time.Minute)}, killbudget.New(cfg.KillBudget), PreemptMinRuntime},
		{"higher score", Victim{Name: "a", Standing: Borrowing, Score: 2_000_000, Started: old}, killbudget.New(cfg.KillBudget), PreemptNotHigher},
		{"budget spent", Victim{Name: "a", Standing: Borrowing, Score: 1000, Started: old}, killbudget.New(killbudget.Config{Max: 0, Window: time.Hour}), PreemptKillBudget},
		{"no budget", Victim{Name: "a", Standing: Borrowing, Score: 1000, Started: old}, nil, PreemptKillBudget},
	}
	for _, c := range cases {
		got := CanPreempt(cfg, c.budget, 1_000_000, c.v, now)
		if got.Reason != c.want || got.Allowed != (c.want == PreemptAllowed) {
			t.Errorf("%s: %+v, want %s", c.name, got, c.want)
		}
	}
}
