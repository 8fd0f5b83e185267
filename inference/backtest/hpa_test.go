package backtest

import (
	"math"
	"testing"
	"time"
)

// One test per rule of the upstream HPA controller (pkg/controller/podautoscaler).

func TestHPAReplicasTolerance(t *testing.T) {
	// |1 − usageRatio| ≤ 0.1 keeps the current count, both ways (in
	// float64, as upstream computes it, 1.1 itself falls just outside).
	for _, r := range []float64{0.91, 0.95, 1, 1.05, 1.09} {
		if got := HPAReplicas(7, 7, 0, r, 0.1); got != 7 {
			t.Errorf("ratio %g: got %d, want 7 (inside tolerance)", r, got)
		}
	}
	if got := HPAReplicas(10, 10, 0, 1.11, 0.1); got != 12 {
		t.Errorf("ratio 1.11 over 10: got %d, want ceil(11.1) = 12", got)
	}
}

func TestHPAReplicasCeilOfRatioTimesReady(t *testing.T) {
	// desired = ceil(usageRatio × ready) with no unready pods.
	cases := []struct {
		ready int32
		ratio float64
		want  int32
	}{{4, 1.5, 6}, {4, 1.26, 6}, {10, 0.5, 5}, {10, 0.41, 5}, {3, 0.2, 1}}
	for _, c := range cases {
		if got := HPAReplicas(c.ready, c.ready, 0, c.ratio, 0.1); got != c.want {
			t.Errorf("ready %d ratio %g: got %d, want %d", c.ready, c.ratio, got, c.want)
		}
	}
}

func TestHPAReplicasUnreadyCountZeroOnScaleUp(t *testing.T) {
	// 4 ready at ratio 2 (each at twice the target), 4 starting: with the
	// starting pods at zero use the ratio is 1.0, inside tolerance: hold 8.
	if got := HPAReplicas(8, 4, 4, 2, 0.1); got != 8 {
		t.Errorf("got %d, want 8 (rebalanced ratio 1.0)", got)
	}
	// 4 ready at ratio 3, 2 starting: rebalanced 3×4/6 = 2 → ceil(2×6) = 12.
	if got := HPAReplicas(6, 4, 2, 3, 0.1); got != 12 {
		t.Errorf("got %d, want 12", got)
	}
	// 2 ready at ratio 1.2, 2 starting: rebalanced 0.6 flips direction: hold.
	if got := HPAReplicas(4, 2, 2, 1.2, 0.1); got != 4 {
		t.Errorf("got %d, want 4 (direction flip)", got)
	}
}

func TestHPAReplicasUnreadyIgnoredOnScaleDown(t *testing.T) {
	// Scale-down: unready pods are ignored, ceil(ratio × ready).
	if got := HPAReplicas(8, 6, 2, 0.5, 0.1); got != 3 {
		t.Errorf("got %d, want ceil(0.5×6) = 3", got)
	}
}

func TestHPAScaleUpLimitDefaultPolicy(t *testing.T) {
	pols := DefaultHPAConfig().ScaleUpPolicies
	// max(100 %, 4 pods) per 15 s from the replicas at the period's start.
	cases := []struct{ cur, added, want int32 }{{1, 0, 5}, {3, 0, 7}, {10, 0, 20}, {10, 5, 10}, {8, 4, 8}}
	for _, c := range cases {
		if got := HPAScaleUpLimit(c.cur, []int32{c.added, c.added}, pols); got != c.want {
			t.Errorf("cur %d added %d: limit %d, want %d", c.cur, c.added, got, c.want)
		}
	}
}

func TestHPAScaleDownLimitDefaultPolicy(t *testing.T) {
	pols := DefaultHPAConfig().ScaleDownPolicies
	// 100 % per 15 s: down to zero (then minReplicas binds).
	if got := HPAScaleDownLimit(10, []int32{0}, pols); got != 0 {
		t.Errorf("limit %d, want 0", got)
	}
	pods := []HPAScalingPolicy{{Value: 2, Period: time.Minute}}
	if got := HPAScaleDownLimit(10, []int32{1}, pods); got != 9 {
		t.Errorf("2 pods per minute after removing 1: limit %d, want 9", got)
	}
}

// view is a tick's view for the HPA with demand d (ready pods serve it).
func view(now time.Duration, replicas, ready int32, d float64) View {
	return View{NowMs: now.Milliseconds(), Replicas: replicas, Ready: ready, Starting: replicas - ready, Metric: d, Capacity: 10, Target: 0.5}
}

func TestHPASyncPeriod(t *testing.T) {
	h := NewHPA(DefaultHPAConfig(), 1, 100)
	// Demand 100 on 10 ready pods of capacity 10 at target 0.5: ratio 2 → 20.
	if d := h.Decide(view(0, 10, 10, 100)); d.Replicas != 20 {
		t.Fatalf("first sync: %d, want 20", d.Replicas)
	}
	// Before the next sync (15 s) nothing changes, whatever the metric.
	if d := h.Decide(view(10*time.Second, 20, 10, 400)); d.Replicas != 20 {
		t.Errorf("between syncs: %d, want 20 (held)", d.Replicas)
	}
}

func TestHPAScaleDownStabilization(t *testing.T) {
	h := NewHPA(DefaultHPAConfig(), 1, 100)
	// A recommendation of 10 at t=0 holds the count for 300 s although the
	// demand drops to a quarter.
	if d := h.Decide(view(0, 10, 10, 50)); d.Replicas != 10 {
		t.Fatalf("t=0: %d, want 10 (ratio 1)", d.Replicas)
	}
	for s := 15; s < 300; s += 15 {
		d := h.Decide(view(time.Duration(s)*time.Second, 10, 10, 12.5))
		if d.Replicas != 10 || d.Reason != HPAReasonScaleDownStabilized {
			t.Fatalf("t=%ds: %d (%s), want 10 (ScaleDownStabilized)", s, d.Replicas, d.Reason)
		}
	}
	// At 300 s the t=0 recommendation is out of the window (strictly after the cutoff).
	if d := h.Decide(view(300*time.Second, 10, 10, 12.5)); d.Replicas != 3 {
		t.Errorf("t=300s: %d, want ceil(0.25×10) = 3", d.Replicas)
	}
}

func TestHPAScaleUpRateLimit(t *testing.T) {
	h := NewHPA(DefaultHPAConfig(), 1, 100)
	// Demand for 50 replicas from 2: at most max(2×2, 2+4) = 6 per 15 s.
	d := h.Decide(view(0, 2, 2, 250))
	if d.Replicas != 6 || d.Reason != HPAReasonScaleUpLimit {
		t.Fatalf("first: %d (%s), want 6 (ScaleUpLimit)", d.Replicas, d.Reason)
	}
	// Next sync, pods still starting: 2 ready at ratio 25 with 4 at zero → ratio 50/6×… still up; the
	// period's start is 6 (the 4 added 15 s ago fell out of the 15 s period at exactly 15 s).
	d = h.Decide(view(15*time.Second, 6, 2, 250))
	if d.Replicas != 12 {
		t.Errorf("second: %d, want max(6×2, 6+4) = 12", d.Replicas)
	}
}

func TestHPAMinMaxBounds(t *testing.T) {
	h := NewHPA(DefaultHPAConfig(), 2, 8)
	if d := h.Decide(view(0, 8, 8, 1000)); d.Replicas != 8 || d.Reason != HPAReasonTooManyReplicas {
		t.Errorf("at max: %d (%s), want 8 (TooManyReplicas)", d.Replicas, d.Reason)
	}
	h = NewHPA(DefaultHPAConfig(), 2, 8)
	if d := h.Decide(view(0, 1, 1, 0.1)); d.Replicas != 2 || d.Reason != HPAReasonTooFewReplicas {
		t.Errorf("below min: %d (%s), want 2 (TooFewReplicas)", d.Replicas, d.Reason)
	}
}

func TestHPANoMetricsHolds(t *testing.T) {
	h := NewHPA(DefaultHPAConfig(), 1, 10)
	if d := h.Decide(view(0, 3, 0, 100)); d.Replicas != 3 || d.Reason != HPAReasonNoMetrics {
		t.Errorf("no ready pods: %d (%s), want 3 held", d.Replicas, d.Reason)
	}
	if d := h.Decide(view(15*time.Second, 3, 3, math.NaN())); d.Replicas != 3 {
		t.Errorf("no metric: %d, want 3 held", d.Replicas)
	}
}

func TestHPAStabilizationNeverMovesAgainstTheProposal(t *testing.T) {
	h := NewHPA(DefaultHPAConfig(), 1, 100)
	// A recommendation of 20 (rate-limited to 12 from 6), then the demand
	// falls: the proposal is 8 < 12, the window still holds 20 — the count
	// stays 12, it does not go up to 20.
	if d := h.Decide(view(0, 6, 6, 100)); d.Replicas != 12 {
		t.Fatalf("t=0: %d, want 12 (rate-limited from a proposal of 20)", d.Replicas)
	}
	d := h.Decide(view(15*time.Second, 12, 12, 40))
	if d.Replicas != 12 || d.Reason != HPAReasonScaleDownStabilized {
		t.Errorf("t=15s: %d (%s), want 12 held (ScaleDownStabilized)", d.Replicas, d.Reason)
	}
}
