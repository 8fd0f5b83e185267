package backtest

import (
	"math"
	"testing"
	"time"
)

// script is a policy that sets counts at given times.
type script struct {
	at   []time.Duration
	to   []int32
	seen []View
}

func (s *script) Name() string { return "script" }

func (s *script) Decide(v View) Decision {
	s.seen = append(s.seen, v)
	n := v.Replicas
	for i, a := range s.at {
		if v.NowMs >= a.Milliseconds() {
			n = s.to[i]
		}
	}
	return Decision{Replicas: n, Reason: "script"}
}

// flat is a series of n one-minute steps from t=0 with values f(i).
func flat(n int, f func(i int) float64) *Series {
	s := &Series{Name: "svc", Signal: "qps", StepS: 60, Values: make([]float64, n)}
	for i := range s.Values {
		s.Values[i] = f(i)
	}
	return s
}

func testConfig() Config {
	c := DefaultConfig(10)
	c.Target = 0.5 // one replica holds 5 at the target
	c.MaxReplicas = 100
	c.InitialReplicas = 2
	return c
}

func TestUnderProvisionedMinutes(t *testing.T) {
	// Demand 10 for 10 minutes, then 30 for 10: 2 replicas hold 10, 6 hold 30.
	s := flat(20, func(i int) float64 {
		if i < 10 {
			return 10
		}
		return 30
	})
	cfg := testConfig()
	// Scaling to 6 exactly when the demand steps up leaves the start-up
	// delay (90 s) under-provisioned; never scaling leaves 10 minutes.
	late := &script{at: []time.Duration{10 * time.Minute}, to: []int32{6}}
	never := &script{}
	for _, c := range []struct {
		p    Policy
		want float64
	}{{late, 1.5}, {never, 10}} {
		res, err := Run(s, cfg, []Policy{c.p}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Policies[0].UnderProvisionedMinutes; math.Abs(got-c.want) > 1e-9 {
			t.Errorf("under-provisioned %.2f min, want %.2f", got, c.want)
		}
	}
}

func TestReplicaMinutesCountStartingPods(t *testing.T) {
	s := flat(10, func(int) float64 { return 1 })
	cfg := testConfig()
	p := &script{at: []time.Duration{5 * time.Minute}, to: []int32{4}}
	res, err := Run(s, cfg, []Policy{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr := res.Policies[0]
	// 2 for 5 min, 4 for 5 min; ready: 2 more become ready 90 s after 5 min.
	if want := 2*5 + 4*5.0; math.Abs(pr.ReplicaMinutes-want) > 1e-9 {
		t.Errorf("replica-minutes %.2f, want %.2f", pr.ReplicaMinutes, want)
	}
	if want := 2*5 + 2*5 + 2*3.5; math.Abs(pr.ReadyReplicaMinutes-want) > 1e-9 {
		t.Errorf("ready replica-minutes %.2f, want %.2f", pr.ReadyReplicaMinutes, want)
	}
	if res.Minutes != 10 {
		t.Errorf("minutes %.1f, want 10", res.Minutes)
	}
}

func TestReversalsWithinWindow(t *testing.T) {
	s := flat(60, func(int) float64 { return 1 })
	cfg := testConfig()
	// up at 1, down at 6 (5 min later: a reversal), up at 21 (15 min
	// later: not), down at 32 (11 min: not), up at 41 (9 min: a reversal),
	// up again at 45 (same direction: not).
	p := &script{
		at: []time.Duration{1 * time.Minute, 6 * time.Minute, 21 * time.Minute, 32 * time.Minute, 41 * time.Minute, 45 * time.Minute},
		to: []int32{4, 3, 5, 2, 3, 6},
	}
	res, err := Run(s, cfg, []Policy{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr := res.Policies[0]
	if pr.ScaleEvents != 6 || pr.ScaleUps != 4 || pr.ScaleDowns != 2 {
		t.Errorf("events %d (%d up, %d down), want 6 (4 up, 2 down)", pr.ScaleEvents, pr.ScaleUps, pr.ScaleDowns)
	}
	if pr.Reversals != 2 {
		t.Errorf("reversals %d, want 2", pr.Reversals)
	}
}

func TestMinutesOverSLO(t *testing.T) {
	// 2 replicas of capacity 10: demand 10 is ρ 0.5 (50 ms ≤ 100), demand
	// 18 is ρ 0.9 (250 ms > 100).
	s := flat(10, func(i int) float64 {
		if i >= 4 && i < 7 {
			return 18
		}
		return 10
	})
	res, err := Run(s, testConfig(), []Policy{&script{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Policies[0].MinutesOverSLO; got != 3 {
		t.Errorf("minutes over SLO %d, want 3", got)
	}
}

func TestBoundsApplyToEveryPolicy(t *testing.T) {
	s := flat(10, func(int) float64 { return 1 })
	cfg := testConfig()
	cfg.MinReplicas, cfg.MaxReplicas = 2, 5
	res, err := Run(s, cfg, []Policy{&script{at: []time.Duration{time.Minute, 3 * time.Minute}, to: []int32{50, 0}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pr := res.Policies[0]; pr.MinReplicas != 2 || pr.MaxReplicas != 5 {
		t.Errorf("replicas %d..%d, want 2..5", pr.MinReplicas, pr.MaxReplicas)
	}
}

func TestPoliciesSeeNoFuture(t *testing.T) {
	s := flat(30, func(i int) float64 { return float64(i) })
	p := &script{}
	if _, err := Run(s, testConfig(), []Policy{p}, nil); err != nil {
		t.Fatal(err)
	}
	for _, v := range p.seen {
		end := v.StartMs + int64(len(v.Known))*v.StepS*1000
		if end > v.NowMs {
			t.Fatalf("at %d ms the policy saw windows up to %d ms", v.NowMs, end)
		}
		if len(v.Known) > 0 && v.NowMs-end >= v.StepS*1000 {
			t.Fatalf("at %d ms a closed window (ending %d ms) was withheld", v.NowMs, end+v.StepS*1000)
		}
	}
}

func TestGapsAreNotScored(t *testing.T) {
	s := flat(10, func(i int) float64 {
		if i >= 3 && i < 6 {
			return math.NaN()
		}
		return 100 // under-provisioned throughout at 2 replicas
	})
	res, err := Run(s, testConfig(), []Policy{&script{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Minutes != 7 || res.Policies[0].UnderProvisionedMinutes != 7 {
		t.Errorf("scored %.1f min, %.1f under-provisioned; want 7 and 7 (3 gap minutes skipped)", res.Minutes, res.Policies[0].UnderProvisionedMinutes)
	}
}
