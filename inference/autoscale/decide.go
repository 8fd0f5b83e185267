package autoscale

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Guard names a step that can bind a decision: the value of a decision's
// Reason.Guard, of Output.Guard and of the guard label of
// ebbflow_autoscale_guards_total. Every guard is in this list.
type Guard string

// Guards, in the order they are applied: the Decider's (before Decide:
// disabled, no_replicas; after it: repeat_suppressed) and Decide's
// (no_data, the SLO guards, then the shaping guards). bad_policy does not
// stop a decision: it marks one whose annotations were rejected.
const (
	GuardNone              Guard = ""
	GuardDisabled          Guard = "disabled"
	GuardBadPolicy         Guard = "bad_policy"
	GuardNoReplicas        Guard = "no_replicas"
	GuardNoData            Guard = "no_data"
	GuardHysteresis        Guard = "scale_down_hysteresis"
	GuardLatencySLO        Guard = "latency_slo"
	GuardErrorRatio        Guard = "error_ratio"
	GuardWarmup            Guard = "warmup"
	GuardStabilization     Guard = "scale_down_stabilization"
	GuardScaleUpCooldown   Guard = "scale_up_cooldown"
	GuardScaleDownCooldown Guard = "scale_down_cooldown"
	GuardMaxStep           Guard = "max_step"
	GuardMaxReplicas       Guard = "max_replicas"
	GuardMinReplicas       Guard = "min_replicas"
	GuardRepeatSuppressed  Guard = "repeat_suppressed"
)

// AllGuards lists every guard in order (for documentation and metrics).
var AllGuards = []Guard{GuardDisabled, GuardBadPolicy, GuardNoReplicas, GuardNoData, GuardHysteresis, GuardLatencySLO, GuardErrorRatio,
	GuardWarmup, GuardStabilization, GuardScaleUpCooldown, GuardScaleDownCooldown, GuardMaxStep, GuardMaxReplicas,
	GuardMinReplicas, GuardRepeatSuppressed}

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

// predicted is the largest forecast value over the horizons whose window
// starts before the lead time ends, and the longest horizon used. The lead
// is the start-up time plus one forecast step (the shortest horizon): the
// replicas decided now serve until those decided on the next forecast are
// ready. With one-minute forecasts and a 90 s start-up that is h1–h3; with
// five-minute forecasts, h1–h2 (5 and 10 minutes).
func predicted(hs []schemas.HorizonValue, startup time.Duration) (float64, int, bool) {
	if len(hs) == 0 {
		return 0, 0, false
	}
	step := math.MaxInt
	for _, h := range hs {
		step = min(step, h.Minutes)
	}
	lead := startup.Minutes() + float64(max(step, 1))
	best, used := math.Inf(-1), 0
	for _, h := range hs {
		if float64(h.Minutes-step) < lead {
			best, used = max(best, h.Value), max(used, h.Minutes)
		}
	}
	return best, used, true
}

// Decide turns a service's state into a replica count with its reason. It
// is a pure function: the same state and policy give the same decision.
//
// Per demand signal, y is the larger of the forecast (max over the horizons
// whose window starts within the start-up time plus one forecast step) and
// the current value; the demand ratio is r = u(y)/expectRate × N where u
// is per-replica utilisation (sum signals: y/(N×capacity); mean signals:
// y/capacity). Expansion is ceil(r), contraction floor(r) (raised to a
// count that will not re-expand), and the largest demand wins (demand).
// Then, in order, one function each: the hysteresis band of contraction
// (guardHysteresis: contract only to ceil(r/(1−band)), hold inside the
// band), the SLO guards (sloGuards), whose result — at least the
// hysteresis count — is the recommendation the stabilization window
// remembers, and the shaping guards (shapingGuards).
func Decide(st State, pol Policy) Decision {
	c := newCandidate(st, pol)
	if !c.demand() {
		c.bind(GuardNoData, c.n)
		c.reason.Summary = fmt.Sprintf("hold at %d: no current value or forecast for any demand signal", c.n)
		c.reason.Formula = "none"
		return Decision{Desired: c.n, Recommendation: c.n, Reason: c.reason}
	}
	guardHysteresis(c)
	for _, g := range sloGuards {
		g(c)
	}
	// The window remembers at least the count the hysteresis holds, so a
	// later contraction stops where the demand of the whole window sits
	// inside the band.
	rec := max(c.desired, c.hold)
	c.reason.Inputs["recommendation"] = float64(rec)
	for _, g := range shapingGuards {
		g(c)
	}
	c.desired = max(c.desired, 0)
	c.summarise()
	return Decision{Desired: c.desired, Recommendation: rec, AtMax: c.atMax, Reason: c.reason}
}

// sloGuards forbid contraction while a service breaches its SLOs and may
// force expansion.
var sloGuards = []func(*candidate){guardLatencySLO, guardErrorRatio}

// shapingGuards hold, delay, limit and bound the recommendation.
var shapingGuards = []func(*candidate){guardWarmup, guardStabilization, guardScaleUpCooldown, guardScaleDownCooldown,
	guardMaxStep, guardMaxReplicas, guardMinReplicas}

// candidate is a decision being built by Decide's steps.
type candidate struct {
	st      State
	pol     Policy
	n       int32
	desired int32
	reason  schemas.Reason
	// guards lists every guard that fired, in order; reason.Guard is the
	// last one that changed desired.
	guards []Guard
	atMax  bool
	// the winning demand
	rMax      float64
	winner    string
	winDemand schemas.SignalDemand
	// hold is the count the hysteresis band asks for (0 when off).
	hold int32
}

func newCandidate(st State, pol Policy) *candidate {
	n := st.Replicas
	// Sized for what the guards add (demand ratio, recommendation, band,
	// latency, error rate…): no growth on the way.
	inputs := make(map[string]float64, 16)
	inputs["replicas"] = float64(n)
	inputs["min_replicas"] = float64(pol.MinReplicas)
	inputs["max_replicas"] = float64(pol.MaxReplicas)
	inputs["tolerance"] = pol.Tolerance
	return &candidate{st: st, pol: pol, n: n, desired: n, rMax: -1, reason: schemas.Reason{
		HorizonMinutes: pol.HorizonMinutes(),
		Demands:        make([]schemas.SignalDemand, 0, len(pol.Signals)),
		Inputs:         inputs,
	}}
}

// fired records a guard that fired without changing the count.
func (c *candidate) fired(g Guard) { c.guards = append(c.guards, g) }

// bind records a guard that set the count to v.
func (c *candidate) bind(g Guard, v int32) {
	c.desired, c.reason.Guard = v, string(g)
}

// demand computes every signal's demand and the winning desired count;
// false when no signal has a current value or forecast.
func (c *candidate) demand() bool {
	n, fn, pol := c.n, float64(c.n), c.pol
	winRule, horizon := "", 0
	defer func() {
		// One-minute forecasts read to the policy's horizon; coarser ones
		// (five-minute traces) further.
		c.reason.HorizonMinutes = max(c.reason.HorizonMinutes, horizon)
	}()
	for _, sig := range sortedKeys(pol.Signals) {
		sp := pol.Signals[sig]
		in, ok := c.st.Signals[sig]
		if !ok {
			continue
		}
		pred, used0, hasPred := predicted(in.Horizons, pol.StartupTime)
		if !hasPred && !in.HasCurrent {
			continue
		}
		if hasPred {
			horizon = max(horizon, used0)
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
		c.reason.Demands = append(c.reason.Demands, d)
		if r > c.rMax {
			c.rMax, c.winner, winRule, c.winDemand = r, sig, rule, d
		}
	}
	if c.winner == "" {
		return false
	}
	c.desired, _ = targetFor(c.rMax, n, pol.Tolerance)
	c.reason.Inputs["demand_ratio"] = c.rMax
	op := winRule // ceil, floor, hold
	if winRule == "floor→no-flap" {
		op = "floor (raised to ceil(r/(1+tolerance)) so it cannot re-expand)"
	}
	c.reason.Formula = fmt.Sprintf("%s: r = u/expectRate × N = %.4g/%.4g × %d = %.4g (signal %s, %s); desired %d",
		op, c.winDemand.Used, c.winDemand.ExpectRate, n, c.rMax, c.winner, c.winDemand.Source, c.desired)
	return true
}

// guardHysteresis is the dead band of contraction (scale_down_band b):
// the decider contracts only to a count that holds the demand at
// expectRate × (1 − b), ceil(r / (1 − b)), and holds N when that is not
// below N. Expansion fires as soon as r exceeds N (beyond the tolerance),
// so a demand moving between the two edges changes nothing, and a
// contraction never leaves the service above its target utilisation (the
// formula's floor did). b = 0 keeps WPAI's floor contraction.
func guardHysteresis(c *candidate) {
	b := c.pol.ScaleDownBand
	if b <= 0 {
		return
	}
	const eps = 1e-9
	hold := int32(math.Max(0, math.Ceil(c.rMax/(1-b)-eps)))
	c.hold = hold
	c.reason.Inputs["scale_down_band"] = b
	c.reason.Inputs["hysteresis_hold"] = float64(hold)
	switch {
	case c.desired > c.n:
		// Expansion is the formula's; the hold count is still remembered.
	case hold >= c.n && c.desired < c.n:
		c.fired(GuardHysteresis)
		c.bind(GuardHysteresis, c.n)
	case hold < c.n && hold != c.desired:
		c.fired(GuardHysteresis)
		c.bind(GuardHysteresis, hold)
	}
}

// forceUp is what an SLO breach does: no contraction, and with
// breach_scale_ratio at least that step up.
func (c *candidate) forceUp(g Guard) {
	c.fired(g)
	if c.desired < c.n {
		c.bind(g, c.n)
	}
	if c.pol.BreachScaleRatio > 0 {
		step := int32(math.Max(1, math.Ceil(float64(c.n)*c.pol.BreachScaleRatio)))
		if c.desired < c.n+step {
			c.bind(g, c.n+step)
		}
	}
}

// guardLatencySLO: p99 latency above latency_slo_ms forces expansion.
func guardLatencySLO(c *candidate) {
	if !c.st.HasLatency {
		return
	}
	c.reason.Inputs["latency_p99_ms"] = c.st.LatencyP99Ms
	if c.pol.LatencySLOMs <= 0 {
		return
	}
	c.reason.Inputs["latency_slo_ms"] = c.pol.LatencySLOMs
	if c.st.LatencyP99Ms > c.pol.LatencySLOMs {
		c.forceUp(GuardLatencySLO)
	}
}

// guardErrorRatio: an error ratio above error_ratio_limit forbids
// contraction (and forces expansion with expand_on_errors).
func guardErrorRatio(c *candidate) {
	if !c.st.HasErrorRate || c.st.QPS <= 0 {
		return
	}
	ratio := c.st.ErrorRate / c.st.QPS
	c.reason.Inputs["error_ratio"] = ratio
	if c.pol.ErrorRatioLimit <= 0 {
		return
	}
	c.reason.Inputs["error_ratio_limit"] = c.pol.ErrorRatioLimit
	if ratio <= c.pol.ErrorRatioLimit {
		return
	}
	if c.pol.ExpandOnErrors {
		c.forceUp(GuardErrorRatio)
		return
	}
	c.fired(GuardErrorRatio)
	if c.desired < c.n {
		c.bind(GuardErrorRatio, c.n)
	}
}

// guardWarmup: no contraction within a stabilization window of first
// seeing the service (a restarted decider has no recommendations yet).
func guardWarmup(c *candidate) {
	if c.desired >= c.n {
		return
	}
	win := c.pol.ScaleDownStabilization.Milliseconds()
	if c.st.FirstSeenMs > 0 && c.st.NowMs-c.st.FirstSeenMs < win {
		c.fired(GuardWarmup)
		c.bind(GuardWarmup, c.n)
	}
}

// guardStabilization: contract only to the largest recommendation of the
// stabilization window.
func guardStabilization(c *candidate) {
	if c.desired >= c.n {
		return
	}
	win := c.pol.ScaleDownStabilization.Milliseconds()
	stab := c.desired
	for _, r := range c.st.Recommendations {
		if r.AtMs > c.st.NowMs-win && r.AtMs <= c.st.NowMs && r.Replicas > stab {
			stab = r.Replicas
		}
	}
	if stab > c.desired {
		c.reason.Inputs["stabilized_max"] = float64(stab)
		c.fired(GuardStabilization)
		c.bind(GuardStabilization, min(stab, c.n))
	}
}

// guardScaleUpCooldown: no expansion within scale_up_cooldown of the last.
func guardScaleUpCooldown(c *candidate) {
	st, pol := c.st, c.pol
	if c.desired > c.n && pol.ScaleUpCooldown > 0 && st.LastScaleUpMs > 0 && st.NowMs-st.LastScaleUpMs < pol.ScaleUpCooldown.Milliseconds() {
		c.fired(GuardScaleUpCooldown)
		c.bind(GuardScaleUpCooldown, c.n)
	}
}

// guardScaleDownCooldown: no contraction within scale_down_cooldown of
// the last change either way.
func guardScaleDownCooldown(c *candidate) {
	if c.desired >= c.n || c.pol.ScaleDownCooldown <= 0 {
		return
	}
	last := max(c.st.LastScaleUpMs, c.st.LastScaleDownMs)
	if last > 0 && c.st.NowMs-last < c.pol.ScaleDownCooldown.Milliseconds() {
		c.fired(GuardScaleDownCooldown)
		c.bind(GuardScaleDownCooldown, c.n)
	}
}

// guardMaxStep: at most max_step_up / max_step_down replicas a decision.
func guardMaxStep(c *candidate) {
	if c.desired > c.n+c.pol.MaxStepUp {
		c.fired(GuardMaxStep)
		c.bind(GuardMaxStep, c.n+c.pol.MaxStepUp)
	}
	if c.desired < c.n-c.pol.MaxStepDown {
		c.fired(GuardMaxStep)
		c.bind(GuardMaxStep, c.n-c.pol.MaxStepDown)
	}
}

// guardMaxReplicas caps at max_replicas (and marks the decision AtMax).
func guardMaxReplicas(c *candidate) {
	if c.desired > c.pol.MaxReplicas {
		c.fired(GuardMaxReplicas)
		c.bind(GuardMaxReplicas, c.pol.MaxReplicas)
		c.atMax = true
	}
}

// guardMinReplicas raises to min_replicas.
func guardMinReplicas(c *candidate) {
	if c.desired < c.pol.MinReplicas {
		c.fired(GuardMinReplicas)
		c.bind(GuardMinReplicas, c.pol.MinReplicas)
	}
}

// summarise writes the reason's one-line summary.
func (c *candidate) summarise() {
	verb := "hold"
	switch {
	case c.desired > c.n:
		verb = "scale up"
	case c.desired < c.n:
		verb = "scale down"
	}
	c.reason.Summary = fmt.Sprintf("%s %d → %d: %s demand ratio %.3g over %d min horizon (%s)", verb, c.n, c.desired, c.winner, c.rMax, c.reason.HorizonMinutes, c.winDemand.Source)
	if len(c.guards) > 0 {
		names := make([]string, len(c.guards))
		for i, g := range c.guards {
			names[i] = string(g)
		}
		c.reason.Summary += "; guards: " + strings.Join(names, ", ")
	}
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
