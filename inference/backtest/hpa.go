package backtest

import (
	"math"
	"time"
)

// HPAConfig is the Kubernetes HorizontalPodAutoscaler (autoscaling/v2)
// set-up the hpa policy runs: the controller's defaults and the
// API's default behavior (k8s.io/kubernetes pkg/controller/podautoscaler,
// pkg/apis/autoscaling/v2 defaults).
type HPAConfig struct {
	// SyncPeriod is --horizontal-pod-autoscaler-sync-period (15 s).
	SyncPeriod time.Duration
	// Tolerance is --horizontal-pod-autoscaler-tolerance (0.1).
	Tolerance float64
	// ScaleUpStabilization is behavior.scaleUp.stabilizationWindowSeconds (0).
	ScaleUpStabilization time.Duration
	// ScaleDownStabilization is behavior.scaleDown.stabilizationWindowSeconds (300 s).
	ScaleDownStabilization time.Duration
	// ScaleUpPolicies are behavior.scaleUp.policies with selectPolicy Max:
	// 100 % and 4 pods per 15 s.
	ScaleUpPolicies []HPAScalingPolicy
	// ScaleDownPolicies are behavior.scaleDown.policies with selectPolicy
	// Max: 100 % per 15 s.
	ScaleDownPolicies []HPAScalingPolicy
}

// HPAScalingPolicy is one autoscaling/v2 HPAScalingPolicy.
type HPAScalingPolicy struct {
	// Percent is true for type Percent, false for Pods.
	Percent bool
	Value   int32
	Period  time.Duration
}

// DefaultHPAConfig returns the upstream defaults.
func DefaultHPAConfig() HPAConfig {
	return HPAConfig{
		SyncPeriod: 15 * time.Second, Tolerance: 0.1,
		ScaleUpStabilization: 0, ScaleDownStabilization: 300 * time.Second,
		ScaleUpPolicies: []HPAScalingPolicy{
			{Percent: true, Value: 100, Period: 15 * time.Second},
			{Percent: false, Value: 4, Period: 15 * time.Second},
		},
		ScaleDownPolicies: []HPAScalingPolicy{{Percent: true, Value: 100, Period: 15 * time.Second}},
	}
}

// HPA reasons (the controller's condition reasons).
const (
	HPAReasonDesiredWithinRange  = "DesiredWithinRange"
	HPAReasonScaleUpLimit        = "ScaleUpLimit"
	HPAReasonScaleDownLimit      = "ScaleDownLimit"
	HPAReasonTooManyReplicas     = "TooManyReplicas"
	HPAReasonTooFewReplicas      = "TooFewReplicas"
	HPAReasonScaleDownStabilized = "ScaleDownStabilized"
	HPAReasonScaleUpStabilized   = "ScaleUpStabilized"
	HPAReasonNoMetrics           = "FailedGetResourceMetric"
	HPAReasonScalingDisabled     = "ScalingDisabled"
)

type hpaRec struct {
	atMs     int64
	replicas int32
}

type hpaEvent struct {
	atMs   int64
	change int32
}

// HPA is the HPA v2 controller for one target with a resource
// utilisation metric (each ready pod's use of its request): the load is
// spread over the ready pods, and one pod at utilisation 1 serves
// Capacity. Pods still starting are unready: like the CPU metric, their
// samples are ignored, and on a scale-up they count as using nothing.
type HPA struct {
	cfg      HPAConfig
	min, max int32
	lastSync int64
	synced   bool
	recs     []hpaRec
	ups      []hpaEvent
	downs    []hpaEvent
	last     Decision
}

// NewHPA returns the hpa policy; min and max are minReplicas and maxReplicas.
func NewHPA(cfg HPAConfig, minReplicas, maxReplicas int32) *HPA {
	return &HPA{cfg: cfg, min: minReplicas, max: maxReplicas}
}

// Name implements Policy.
func (h *HPA) Name() string { return "hpa" }

// Decide implements Policy: it syncs once per SyncPeriod and holds between.
func (h *HPA) Decide(v View) Decision {
	if h.synced && v.NowMs-h.lastSync < h.cfg.SyncPeriod.Milliseconds() {
		return Decision{Replicas: v.Replicas, Reason: h.last.Reason}
	}
	h.synced, h.lastSync = true, v.NowMs
	h.last = h.reconcile(v)
	return h.last
}

// reconcile is reconcileAutoscaler: bounds first, then the replica
// calculator, then normalisation with behaviors.
func (h *HPA) reconcile(v View) Decision {
	cur := v.Replicas
	switch {
	case cur == 0 && h.min != 0:
		return Decision{Replicas: cur, Reason: HPAReasonScalingDisabled}
	case cur > h.max:
		h.storeEvent(v.NowMs, cur, h.max)
		return Decision{Replicas: h.max, Reason: HPAReasonTooManyReplicas}
	case cur < h.min:
		h.storeEvent(v.NowMs, cur, h.min)
		return Decision{Replicas: h.min, Reason: HPAReasonTooFewReplicas}
	}
	if v.Ready == 0 || math.IsNaN(v.Metric) {
		// "did not receive metrics for any ready pods": no change.
		return Decision{Replicas: cur, Reason: HPAReasonNoMetrics}
	}
	usage := v.Metric / (float64(v.Ready) * v.Capacity) / v.Target
	proposal := HPAReplicas(cur, v.Ready, v.Starting, usage, h.cfg.Tolerance)
	stab, stabReason := h.stabilize(v.NowMs, cur, proposal)
	desired, reason := h.rateLimit(v.NowMs, cur, stab)
	if reason == HPAReasonDesiredWithinRange && stab != proposal {
		reason = stabReason
	}
	if desired != cur {
		h.storeEvent(v.NowMs, cur, desired)
	}
	return Decision{Replicas: desired, Reason: reason}
}

// HPAReplicas is the replica calculator for a utilisation metric
// (GetResourceReplicas): usageRatio is the ready pods' mean utilisation
// over the target; unready pods are ignored, except that on a scale-up
// they count as using nothing; no change inside the tolerance or when
// counting them flips the direction.
func HPAReplicas(current, ready, unready int32, usageRatio, tolerance float64) int32 {
	rebalance := unready > 0 && usageRatio > 1
	if !rebalance {
		if math.Abs(1-usageRatio) <= tolerance {
			return current
		}
		return int32(math.Ceil(usageRatio * float64(ready)))
	}
	// Unready pods join the average at zero use.
	n := float64(ready + unready)
	newRatio := usageRatio * float64(ready) / n
	if math.Abs(1-newRatio) <= tolerance || (usageRatio < 1 && newRatio > 1) || (usageRatio > 1 && newRatio < 1) {
		return current
	}
	r := int32(math.Ceil(newRatio * n))
	if (newRatio < 1 && r > current) || (newRatio > 1 && r < current) {
		return current
	}
	return r
}

// stabilize is stabilizeRecommendationWithBehaviors (as upstream since
// both windows apply at once): it records the proposal and brings the
// current count within [lowest recommendation of the scale-up window,
// highest of the scale-down window], the proposal included in both. So a
// count never moves against the proposal's direction.
func (h *HPA) stabilize(now int64, cur, proposal int32) (int32, string) {
	up, down := proposal, proposal
	upCutoff := now - h.cfg.ScaleUpStabilization.Milliseconds()
	downCutoff := now - h.cfg.ScaleDownStabilization.Milliseconds()
	kept := h.recs[:0]
	for _, r := range h.recs {
		if r.atMs > upCutoff {
			up = min(up, r.replicas)
		}
		if r.atMs > downCutoff {
			down = max(down, r.replicas)
		}
		// Upstream reuses one slot older than both windows; dropping
		// them all is equivalent.
		if r.atMs >= upCutoff || r.atMs >= downCutoff {
			kept = append(kept, r)
		}
	}
	h.recs = append(kept, hpaRec{atMs: now, replicas: proposal})
	rec := cur
	if rec < up {
		rec = up
	}
	if rec > down {
		rec = down
	}
	reason := HPAReasonScaleDownStabilized
	if proposal > cur {
		reason = HPAReasonScaleUpStabilized
	}
	return rec, reason
}

// rateLimit is convertDesiredReplicasWithBehaviorRate with selectPolicy
// Max: the scale-up limit is the largest policy proposal counted from the
// replicas at the start of each policy's period, the scale-down limit the
// smallest, and min/max replicas bound both.
func (h *HPA) rateLimit(now int64, cur, desired int32) (int32, string) {
	switch {
	case desired > cur:
		limit := HPAScaleUpLimit(cur, h.changeIn(now, h.ups, h.cfg.ScaleUpPolicies), h.cfg.ScaleUpPolicies)
		limit = max(limit, cur)
		allowed, reason := h.max, HPAReasonTooManyReplicas
		if allowed > limit {
			allowed, reason = limit, HPAReasonScaleUpLimit
		}
		if desired > allowed {
			return allowed, reason
		}
	case desired < cur:
		limit := HPAScaleDownLimit(cur, h.changeIn(now, h.downs, h.cfg.ScaleDownPolicies), h.cfg.ScaleDownPolicies)
		limit = min(limit, cur)
		allowed, reason := h.min, HPAReasonTooFewReplicas
		if allowed < limit {
			allowed, reason = limit, HPAReasonScaleDownLimit
		}
		if desired < allowed {
			return allowed, reason
		}
	}
	return desired, HPAReasonDesiredWithinRange
}

// changeIn returns, per policy, the replicas changed by events within its period.
func (h *HPA) changeIn(now int64, events []hpaEvent, pols []HPAScalingPolicy) []int32 {
	out := make([]int32, len(pols))
	for i, p := range pols {
		cutoff := now - p.Period.Milliseconds()
		for _, e := range events {
			if e.atMs > cutoff {
				out[i] += e.change
			}
		}
	}
	return out
}

// HPAScaleUpLimit is calculateScaleUpLimitWithScalingRules (selectPolicy
// Max): changed[i] replicas were added within policy i's period.
func HPAScaleUpLimit(cur int32, changed []int32, pols []HPAScalingPolicy) int32 {
	var result int32
	for i, p := range pols {
		start := cur - changed[i]
		var proposed int32
		if p.Percent {
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		} else {
			proposed = start + p.Value
		}
		result = max(result, proposed)
	}
	return result
}

// HPAScaleDownLimit is calculateScaleDownLimitWithBehaviors (selectPolicy
// Max): changed[i] replicas were removed within policy i's period.
func HPAScaleDownLimit(cur int32, changed []int32, pols []HPAScalingPolicy) int32 {
	result := int32(math.MaxInt32)
	for i, p := range pols {
		start := cur + changed[i]
		var proposed int32
		if p.Percent {
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		} else {
			proposed = start - p.Value
		}
		result = min(result, proposed)
	}
	return result
}

// storeEvent is storeScaleEvent: events older than the longest policy
// period are dropped.
func (h *HPA) storeEvent(now int64, from, to int32) {
	prune := func(evs []hpaEvent, pols []HPAScalingPolicy) []hpaEvent {
		var longest time.Duration
		for _, p := range pols {
			longest = max(longest, p.Period)
		}
		kept := evs[:0]
		for _, e := range evs {
			if e.atMs > now-longest.Milliseconds() {
				kept = append(kept, e)
			}
		}
		return kept
	}
	switch {
	case to > from:
		h.ups = append(prune(h.ups, h.cfg.ScaleUpPolicies), hpaEvent{atMs: now, change: to - from})
	case to < from:
		h.downs = append(prune(h.downs, h.cfg.ScaleDownPolicies), hpaEvent{atMs: now, change: from - to})
	}
}
