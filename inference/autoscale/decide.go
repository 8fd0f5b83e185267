package autoscale

import (
	"fmt"
	"math"
	"strings"

	"github.com/ebbflow/ebbflow/schemas"
)

// Guards: the names a decision's Reason.Guard takes.
const (
	GuardNone              = ""
	GuardNoData            = "no_data"
	GuardLatencySLO        = "latency_slo"
	GuardErrorRatio        = "error_ratio"
	GuardWarmup            = "warmup"
	GuardStabilization     = "scale_down_stabilization"
	GuardScaleUpCooldown   = "scale_up_cooldown"
	GuardScaleDownCooldown = "scale_down_cooldown"
	GuardMaxStep           = "max_step"
	GuardMinReplicas       = "min_replicas"
	GuardMaxReplicas       = "max_replicas"
)

// Demand sources (schemas.SignalDemand.Source).
const (
	SourceForecast = "forecast"
	SourceReactive = "reactive"
	SourceFallback = "fallback"
)

// SignalInput is what the decider knows about one signal of a service.
type SignalInput struct {
	// Current is the latest window value (schemas.Window.Value()).
	Current    float64
	HasCurrent bool
	// Horizons is the latest forecast; empty when there is none.
	Horizons []schemas.HorizonValue
	// Fallback is the forecast's fallback method ("" when a model scored).
	Fallback string
}

// Recommendation is one past recommendation, kept for scale-down
// stabilization.
type Recommendation struct {
	AtMs     int64
	Replicas int32
}

// State is everything Decide reads about one service at one event time.
type State struct {
	// NowMs is the event time of the input that triggered the decision.
	NowMs int64
	// Replicas is the current count N.
	Replicas int32
	// Signals are the demand signals' inputs by signal name.
	Signals map[string]SignalInput
	// LatencyP99Ms, ErrorRate and QPS feed the SLO guards (Has* false =
	// unknown, guard off).
	LatencyP99Ms    float64
	HasLatency      bool
	ErrorRate, QPS  float64
	HasErrorRate    bool
	Recommendations []Recommendation
	// LastScaleUpMs and LastScaleDownMs are when the last expansion or
	// contraction was decided (0 = never).
	LastScaleUpMs, LastScaleDownMs int64
	// FirstSeenMs is when the decider first saw the service; contraction
	// waits a stabilization window after it, so a restarted decider with
	// no history does not contract at once.
	FirstSeenMs int64
}

// Decision is the outcome of Decide.
type Decision struct {
	// Desired is the replica count to set; equal to State.Replicas when
	// nothing should change.
	Desired int32
	// Recommendation is the count the formula and SLO guards asked for
	// before stabilization, cooldowns, step and bounds; it is what the
	// stabilization window remembers.
	Recommendation int32
	// AtMax is true when MaxReplicas capped an expansion.
	AtMax  bool
	Reason schemas.Reason
}

// Change reports whether the decision changes the replica count.
func (d Decision) Change(n int32) bool { return d.Desired != n }

// targetFor turns a demand ratio r = y/expectRate × N into a replica
// count: ceil when r exceeds N beyond the tolerance, floor when below N
// but never below the smallest count at which expansion would fire again
// for the same load (so floor-on-contraction cannot flap), else N.
func targetFor(r float64, n int32, tol float64) (int32, string) {
	// eps absorbs float noise (r = 6.000000001 must not become 7); the
	// same eps on both sides keeps the contraction target a fixed point
	// of the expansion rule: M ≥ (r-eps)/(1+tol) ⇒ r ≤ M(1+tol)+eps.
	const eps = 1e-9
	fn := float64(n)
	switch {
	case r > fn*(1+tol)+eps:
		return int32(math.Ceil(r - eps)), "ceil"
	case r < fn:
		floor := math.Floor(r + eps)
		stable := math.Max(0, math.Ceil((r-eps)/(1+tol)))
		t := math.Max(floor, stable)
		if t >= fn {
			return n, "hold"
		}
		if stable > floor {
			return int32(t), "floor→no-flap"
		}
		return int32(t), "floor"
	default:
		return n, "hold"
	}
}

// predicted is the largest forecast value up to horizon minutes; when every
// horizon is longer, the shortest one.
func predicted(hs []schemas.HorizonValue, horizon int) (float64, bool) {
	best, ok := math.Inf(-1), false
	for _, h := range hs {
		if h.Minutes <= horizon && h.Value > best {
			best, ok = h.Value, true
		}
	}
	if ok {
		return best, true
	}
	minM := math.MaxInt
	for _, h := range hs {
		if h.Minutes < minM {
			minM, best, ok = h.Minutes, h.Value, true
		}
	}
	return best, ok
}

// Decide turns a service's state into a replica count with its reason. It
// is a pure function: the same state and policy give the same decision.
//
// Per demand signal, y is the larger of the forecast (max over the horizons
// up to the start-up time) and the current value; the demand ratio is
// r = u(y)/expectRate × N where u is per-replica utilisation (sum signals:
// y/(N×capacity); mean signals: y/capacity). Expansion is ceil(r),
// contraction floor(r) (raised to a count that will not re-expand), and
// the largest demand wins. Then, in order: latency/error guards, warm-up,
// scale-down stabilization, cooldowns, max step, min/max bounds.
func Decide(st State, pol Policy) Decision {
	n := st.Replicas
	fn := float64(n)
	horizon := pol.HorizonMinutes()
	reason := schemas.Reason{
		HorizonMinutes: horizon,
		Demands:        []schemas.SignalDemand{},
		Inputs: map[string]float64{
			"replicas":     fn,
			"min_replicas": float64(pol.MinReplicas),
			"max_replicas": float64(pol.MaxReplicas),
			"tolerance":    pol.Tolerance,
		},
	}
	var guards []string
	rMax, winner, winRule := -1.0, "", ""
	var winDemand schemas.SignalDemand
	for _, sig := range sortedKeys(pol.Signals) {
		sp := pol.Signals[sig]
		in, ok := st.Signals[sig]
		if !ok {
			continue
		}
		pred, hasPred := predicted(in.Horizons, horizon)
		if !hasPred && !in.HasCurrent {
			continue
		}
		used, source := pred, SourceForecast
		if in.Fallback != "" {
			source = SourceFallback
		}
		if !hasPred || (in.HasCurrent && in.Current > pred) {
			used, source = in.Current, SourceReactive
		}
		if !hasPred {
			pred = in.Current
		}
		agg := SignalAggregation(sig)
		util := func(v float64) float64 {
			if agg == AggSum {
				return v / (math.Max(fn, 1) * sp.Capacity)
			}
			return v / sp.Capacity
		}
		var r float64
		if agg == AggSum {
			r = used / (sp.Capacity * sp.ExpectRate)
		} else {
			r = used / sp.Capacity / sp.ExpectRate * fn
		}
		t, rule := targetFor(r, n, pol.Tolerance)
		d := schemas.SignalDemand{
			Signal: sig, Current: util(in.Current), Predicted: util(pred), Used: util(used),
			ExpectRate: sp.ExpectRate, Desired: t, Source: source,
		}
		reason.Demands = append(reason.Demands, d)
		if r > rMax {
			rMax, winner, winRule, winDemand = r, sig, rule, d
		}
	}
	if winner == "" {
		reason.Guard = GuardNoData
		reason.Summary = fmt.Sprintf("hold at %d: no current value or forecast for any demand signal", n)
		reason.Formula = "none"
		return Decision{Desired: n, Recommendation: n, Reason: reason}
	}
	desired, _ := targetFor(rMax, n, pol.Tolerance)
	reason.Inputs["demand_ratio"] = rMax
	op := map[string]string{"ceil": "ceil", "floor": "floor", "floor→no-flap": "floor (raised to ceil(r/(1+tolerance)) so it cannot re-expand)", "hold": "hold"}[winRule]
	reason.Formula = fmt.Sprintf("%s: r = u/expectRate × N = %.4g/%.4g × %d = %.4g (signal %s, %s); desired %d",
		op, winDemand.Used, winDemand.ExpectRate, n, rMax, winner, winDemand.Source, desired)

	// SLO guards: forbid contraction, may force expansion.
	force := func(name string) {
		guards = append(guards, name)
		if desired < n {
			desired = n
			reason.Guard = name
		}
		if pol.BreachScaleRatio > 0 {
			step := int32(math.Max(1, math.Ceil(fn*pol.BreachScaleRatio)))
			if desired < n+step {
				desired = n + step
				reason.Guard = name
			}
		}
	}
	if st.HasLatency {
		reason.Inputs["latency_p99_ms"] = st.LatencyP99Ms
		if pol.LatencySLOMs > 0 {
			reason.Inputs["latency_slo_ms"] = pol.LatencySLOMs
			if st.LatencyP99Ms > pol.LatencySLOMs {
				force(GuardLatencySLO)
			}
		}
	}
	if st.HasErrorRate && st.QPS > 0 {
		ratio := st.ErrorRate / st.QPS
		reason.Inputs["error_ratio"] = ratio
		if pol.ErrorRatioLimit > 0 {
			reason.Inputs["error_ratio_limit"] = pol.ErrorRatioLimit
			if ratio > pol.ErrorRatioLimit {
				if pol.ExpandOnErrors {
					force(GuardErrorRatio)
				} else {
					guards = append(guards, GuardErrorRatio)
					if desired < n {
						desired, reason.Guard = n, GuardErrorRatio
					}
				}
			}
		}
	}
	rec := desired
	reason.Inputs["recommendation"] = float64(rec)

	if desired < n {
		win := pol.ScaleDownStabilization.Milliseconds()
		if st.FirstSeenMs > 0 && st.NowMs-st.FirstSeenMs < win {
			guards = append(guards, GuardWarmup)
			desired, reason.Guard = n, GuardWarmup
		}
	}
	if desired < n {
		win := pol.ScaleDownStabilization.Milliseconds()
		stab := desired
		for _, r := range st.Recommendations {
			if r.AtMs > st.NowMs-win && r.AtMs <= st.NowMs && r.Replicas > stab {
				stab = r.Replicas
			}
		}
		if stab > desired {
			reason.Inputs["stabilized_max"] = float64(stab)
			guards = append(guards, GuardStabilization)
			desired, reason.Guard = min(stab, n), GuardStabilization
		}
	}
	if desired > n && pol.ScaleUpCooldown > 0 && st.LastScaleUpMs > 0 && st.NowMs-st.LastScaleUpMs < pol.ScaleUpCooldown.Milliseconds() {
		guards = append(guards, GuardScaleUpCooldown)
		desired, reason.Guard = n, GuardScaleUpCooldown
	}
	if desired < n && pol.ScaleDownCooldown > 0 {
		last := max(st.LastScaleUpMs, st.LastScaleDownMs)
		if last > 0 && st.NowMs-last < pol.ScaleDownCooldown.Milliseconds() {
			guards = append(guards, GuardScaleDownCooldown)
			desired, reason.Guard = n, GuardScaleDownCooldown
		}
	}
	if desired > n+pol.MaxStepUp {
		guards = append(guards, GuardMaxStep)
		desired, reason.Guard = n+pol.MaxStepUp, GuardMaxStep
	}
	if desired < n-pol.MaxStepDown {
		guards = append(guards, GuardMaxStep)
		desired, reason.Guard = n-pol.MaxStepDown, GuardMaxStep
	}
	atMax := false
	if desired > pol.MaxReplicas {
		guards = append(guards, GuardMaxReplicas)
		desired, reason.Guard, atMax = pol.MaxReplicas, GuardMaxReplicas, true
	}
	if desired < pol.MinReplicas {
		guards = append(guards, GuardMinReplicas)
		desired, reason.Guard = pol.MinReplicas, GuardMinReplicas
	}
	if desired < 0 {
		desired = 0
	}

	verb := "hold"
	switch {
	case desired > n:
		verb = "scale up"
	case desired < n:
		verb = "scale down"
	}
	reason.Summary = fmt.Sprintf("%s %d → %d: %s demand ratio %.3g over %d min horizon (%s)", verb, n, desired, winner, rMax, horizon, winDemand.Source)
	if len(guards) > 0 {
		reason.Summary += "; guards: " + strings.Join(guards, ", ")
	}
	return Decision{Desired: desired, Recommendation: rec, AtMax: atMax, Reason: reason}
}

// Remember folds a decision into the state's history: the recommendation
// for stabilization (pruned to the window) and the scale times for the
// cooldowns. It returns the updated state; st is not modified.
func Remember(st State, pol Policy, d Decision) State {
	win := pol.ScaleDownStabilization.Milliseconds()
	recs := make([]Recommendation, 0, len(st.Recommendations)+1)
	for _, r := range st.Recommendations {
		if r.AtMs > st.NowMs-win {
			recs = append(recs, r)
		}
	}
	recs = append(recs, Recommendation{AtMs: st.NowMs, Replicas: d.Recommendation})
	st.Recommendations = recs
	switch {
	case d.Desired > st.Replicas:
		st.LastScaleUpMs = st.NowMs
	case d.Desired < st.Replicas:
		st.LastScaleDownMs = st.NowMs
	}
	if st.FirstSeenMs == 0 {
		st.FirstSeenMs = st.NowMs
	}
	return st
}
