package backtest

import (
	"testing"
	"time"
)

// TestDeciderFollowsAStepWithinAMinute: the autoscale decider fed
// last-value forecasts decides on every one-minute boundary; after the
// demand steps from 2 to 6 replicas' worth it asks for 6 on the first
// decision that sees the new minute, and the start-up delay is all the
// under-provisioning there is.
func TestDeciderFollowsAStepWithinAMinute(t *testing.T) {
	s := flat(30, func(i int) float64 {
		if i < 10 {
			return 10
		}
		return 30
	})
	cfg := testConfig()
	d := NewDecider("last-value", DeciderPolicy(cfg, "qps"), "qps", LastValue{H: 5})
	res, err := Run(s, cfg, []Policy{d}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr := res.Policies[0]
	if pr.MaxReplicas != 6 || pr.ScaleUps == 0 {
		t.Fatalf("max replicas %d after %d scale-ups, want 6", pr.MaxReplicas, pr.ScaleUps)
	}
	// The step starts at 10 min; the decision at 11 min sees it; ready 90 s later.
	want := (time.Minute + cfg.StartupDelay).Minutes()
	if pr.UnderProvisionedMinutes != want {
		t.Errorf("under-provisioned %.2f min, want %.2f (one minute to see it, then start-up)", pr.UnderProvisionedMinutes, want)
	}
}

// TestDeciderReadsFiveMinuteForecasts: on a five-minute series the model's
// horizons are 5, 10, … minutes, and the decider still decides every minute.
func TestDeciderReadsFiveMinuteForecasts(t *testing.T) {
	s := &Series{Name: "svc", Signal: "qps", StepS: 300, Values: []float64{10, 10, 10, 10, 30, 30, 30, 30}}
	cfg := testConfig()
	d := NewDecider("last-value", DeciderPolicy(cfg, "qps"), "qps", LastValue{H: 3})
	var decisions int
	spy := policyFunc{name: "spy", f: func(v View) Decision {
		out := d.Decide(v)
		if v.NowMs%60000 == 0 {
			decisions++
		}
		return out
	}}
	res, err := Run(s, cfg, []Policy{spy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if decisions != 40 || res.Policies[0].MaxReplicas != 6 {
		t.Errorf("%d minute boundaries seen, max %d replicas; want 40 and 6", decisions, res.Policies[0].MaxReplicas)
	}
}

type policyFunc struct {
	name string
	f    func(View) Decision
}

func (p policyFunc) Name() string           { return p.name }
func (p policyFunc) Decide(v View) Decision { return p.f(v) }
