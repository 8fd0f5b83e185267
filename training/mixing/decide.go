package mixing

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Reason says why a decision flips nodes or holds. Guards (Guard*) name the
// rule that bound a decision; every decision carries exactly one Reason and
// at most one Guard.
type Reason string

// Reasons that trigger a flip, and the reason of a decision that holds.
const (
	ReasonUtilisationHigh Reason = "UtilisationAboveMaxRate"
	ReasonForecastHigh    Reason = "ForecastAboveMaxRateWithinLeadTime"
	ReasonPendingPods     Reason = "InferencePodsPending"
	ReasonUtilisationLow  Reason = "UtilisationBelowMinRateForDwell"
	ReasonWithinBand      Reason = "UtilisationWithinBand"
	ReasonNoOnlineNodes   Reason = "NoReadyOnlineNodes"
	ReasonNoUtilisation   Reason = "NoFreshUtilisation"
)

// Guards: the rule that cut a flip short or stopped it.
const (
	GuardNone             Reason = ""
	GuardDwell            Reason = "DwellNotReached"
	GuardForecastNotLow   Reason = "ForecastNotBelowMinRate"
	GuardSpareMargin      Reason = "SpareMarginReached"
	GuardMaxFlips         Reason = "MaxFlipsPerInterval"
	GuardKillBudget       Reason = "KillBudgetPerHour"
	GuardNoCandidates     Reason = "NoCandidateNodes"
	GuardHandoverInFlight Reason = "HandoverToOnlineInFlight"
	GuardIncomingCovers   Reason = "IncomingNodesCoverDemand"
)

// Point is a forecast of the group's inference utilisation at a time,
// relative to the online nodes that are ready now.
type Point struct {
	At          time.Time `json:"at"`
	Utilisation float64   `json:"utilisation"`
}

// Input is what the decider knows about one group at one instant.
type Input struct {
	Group string
	Now   time.Time
	// Utilisation is the group's inference utilisation of its ready online
	// nodes (demand ÷ capacity), e.g. a window's mean.
	Utilisation float64
	// Forecast holds future utilisations relative to the same capacity.
	Forecast []Point
	// PendingInference counts inference pods Pending for lack of capacity.
	PendingInference int
	Nodes            []Node
	// Unmeasured: no fresh utilisation reading exists for the group's
	// online nodes. Missing data is not low load: nodes never go offline
	// on it (Pending pods still bring nodes back).
	Unmeasured bool
}

// State is what the decider remembers between evaluations of a group.
// The zero value is a fresh start: a restart forgets the dwell (so it
// waits a dwell again) and the flips and kills of the last hour (the node
// actuator still bounds them).
type State struct {
	// LowSince is when utilisation last went under MinRate (zero: not low).
	LowSince time.Time
	// Flips and Kills are the times of recent flips and training-pod
	// evictions this decider asked for.
	Flips []time.Time
	Kills []time.Time
}

// Direction of a decision.
type Direction string

// Decision directions.
const (
	DirectionHold      Direction = "hold"
	DirectionToOffline Direction = "to-offline"
	DirectionToOnline  Direction = "to-online"
)

// Choice is one node a decision hands over, with why it was picked.
type Choice struct {
	Node string `json:"node"`
	From Pool   `json:"from"`
	To   Pool   `json:"to"`
	// Cancel: the node was on its way to From's other pool; the handover
	// is undone (From == To).
	Cancel        bool          `json:"cancel,omitempty"`
	Why           string        `json:"why"`
	InferencePods int           `json:"inference_pods"`
	TrainingPods  int           `json:"training_pods"`
	LostWork      time.Duration `json:"lost_work"`
}

// Figures are the numbers a decision read and computed.
type Figures struct {
	Utilisation      float64 `json:"utilisation"`
	PeakLeadTime     float64 `json:"peak_lead_time"`
	PeakHorizon      float64 `json:"peak_horizon"`
	DemandNodes      float64 `json:"demand_nodes"`
	Online           int     `json:"online"`
	Offline          int     `json:"offline"`
	Fixed            int     `json:"fixed"`
	Incoming         int     `json:"incoming"`
	Outgoing         int     `json:"outgoing"`
	Required         int     `json:"required"`
	PendingInference int     `json:"pending_inference"`
	LowFor           float64 `json:"low_for_s"`
	FlipsLeft        int     `json:"flips_left"`
	KillsLeft        int     `json:"kills_left"`
}

// Decision is the outcome of one evaluation of one group.
type Decision struct {
	Group     string
	At        time.Time
	Direction Direction
	Reason    Reason
	Guard     Reason
	Summary   string
	Policy    Policy
	Figures   Figures
	Forecast  []Point
	Nodes     []Choice
}

// Decide evaluates one group: whether nodes go online, go offline or stay,
// which ones, and why. It is pure: the returned State replaces the old one.
func Decide(pol Policy, st State, in Input) (Decision, State) {
	st = pruneState(st, in.Now, pol)
	c := countNodes(in.Nodes)
	f := Figures{
		Utilisation: in.Utilisation, Online: c.online, Offline: c.offline, Fixed: c.fixed,
		Incoming: c.incoming, Outgoing: c.outgoing, PendingInference: in.PendingInference,
		FlipsLeft: pol.MaxFlips - len(st.Flips), KillsLeft: pol.KillBudgetPerHour - len(st.Kills),
	}
	f.DemandNodes = in.Utilisation * float64(c.online)
	f.PeakLeadTime = peakUtilisation(in, in.Now.Add(pol.LeadTime()+pol.FlipInterval))
	f.PeakHorizon = peakUtilisation(in, in.Now.Add(pol.ForecastHorizon))
	st = trackLow(st, in, pol)
	if !st.LowSince.IsZero() {
		f.LowFor = in.Now.Sub(st.LowSince).Seconds()
	}
	d := Decision{Group: in.Group, At: in.Now, Direction: DirectionHold, Policy: pol, Forecast: in.Forecast}

	if trig := onlineTrigger(pol, in, f); trig != "" {
		f.Required = requiredNodes(f.PeakLeadTime*float64(c.online), pol)
		d.Reason = trig
		want := f.Required + pol.SpareNodes - c.online - c.incoming
		if trig == ReasonPendingPods && want <= 0 && c.incoming == 0 {
			want = 1
		}
		d.Figures = f
		if want <= 0 {
			d.Guard = GuardIncomingCovers
			d.Summary = fmt.Sprintf("%s, but %d incoming node(s) cover the %d required", trig, c.incoming, f.Required)
			return d, st
		}
		return pickOnline(pol, st, in, d, want)
	}

	f.Required = requiredNodes(f.PeakHorizon*float64(c.online), pol)
	d.Figures = f
	if in.Unmeasured {
		d.Reason = ReasonNoUtilisation
		d.Summary = "no fresh utilisation window for the group's online nodes: holding"
		return d, st
	}
	if c.online == 0 {
		d.Reason = ReasonNoOnlineNodes
		d.Summary = "no ready online node: nothing to hand to training"
		return d, st
	}
	if in.Utilisation >= pol.MinRate {
		d.Reason = ReasonWithinBand
		d.Summary = fmt.Sprintf("utilisation %.2f within [%.2f, %.2f]", in.Utilisation, pol.MinRate, pol.MaxRate)
		return d, st
	}
	d.Reason = ReasonUtilisationLow
	if g := offlineGuard(pol, st, in, f, c); g != GuardNone {
		d.Guard = g
		d.Direction = DirectionHold
		d.Summary = fmt.Sprintf("utilisation %.2f below min_rate %.2f, held by %s", in.Utilisation, pol.MinRate, g)
		return d, st
	}
	return pickOffline(pol, st, in, d, c.online-f.Required-pol.SpareNodes)
}

type nodeCounts struct{ online, offline, fixed, incoming, outgoing int }

func countNodes(nodes []Node) nodeCounts {
	var c nodeCounts
	for _, n := range nodes {
		switch {
		case n.Pool == PoolFixed:
			c.fixed++
		case n.Handover == HandoverToOnline:
			c.incoming++
		case n.Handover == HandoverToOffline:
			c.outgoing++
		case n.Pool == PoolOnline:
			c.online++
		case n.Pool == PoolOffline:
			c.offline++
		}
	}
	return c
}

// pruneState forgets flips older than the flip interval and kills older
// than an hour.
func pruneState(st State, now time.Time, pol Policy) State {
	keep := func(ts []time.Time, window time.Duration) []time.Time {
		var out []time.Time
		for _, t := range ts {
			if now.Sub(t) < window {
				out = append(out, t)
			}
		}
		return out
	}
	return State{LowSince: st.LowSince, Flips: keep(st.Flips, pol.FlipInterval), Kills: keep(st.Kills, time.Hour)}
}

// trackLow starts or ends the dwell clock.
func trackLow(st State, in Input, pol Policy) State {
	if in.Utilisation < pol.MinRate && !in.Unmeasured {
		if st.LowSince.IsZero() {
			st.LowSince = in.Now
		}
	} else {
		st.LowSince = time.Time{}
	}
	return st
}

// peakUtilisation is the highest of now and the forecast points up to until.
func peakUtilisation(in Input, until time.Time) float64 {
	p := in.Utilisation
	for _, pt := range in.Forecast {
		if pt.At.After(in.Now) && !pt.At.After(until) && pt.Utilisation > p {
			p = pt.Utilisation
		}
	}
	return p
}

// requiredNodes is how many online nodes serve a demand (in node units) at
// the expected rate.
func requiredNodes(demand float64, pol Policy) int {
	if demand <= 0 {
		return 0
	}
	return int(math.Ceil(demand/pol.ExpectRate - 1e-9))
}

// onlineTrigger returns the reason nodes must come back, or "".
func onlineTrigger(pol Policy, in Input, f Figures) Reason {
	switch {
	case in.PendingInference > 0:
		return ReasonPendingPods
	case in.Utilisation > pol.MaxRate:
		return ReasonUtilisationHigh
	case f.PeakLeadTime > pol.MaxRate:
		return ReasonForecastHigh
	}
	return ""
}

// offlineGuard returns the first guard that stops nodes from going offline.
func offlineGuard(pol Policy, st State, in Input, f Figures, c nodeCounts) Reason {
	if c.incoming > 0 {
		return GuardHandoverInFlight
	}
	if in.Now.Sub(st.LowSince) < pol.Dwell {
		return GuardDwell
	}
	if f.PeakHorizon >= pol.MinRate {
		return GuardForecastNotLow
	}
	if c.online-f.Required-pol.SpareNodes <= 0 {
		return GuardSpareMargin
	}
	if f.FlipsLeft <= 0 {
		return GuardMaxFlips
	}
	return GuardNone
}

// pickOffline hands the emptiest online nodes to training.
func pickOffline(pol Policy, st State, in Input, d Decision, excess int) (Decision, State) {
	var cands []Node
	for _, n := range in.Nodes {
		if n.Pool == PoolOnline && n.Ready() {
			cands = append(cands, n)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].InferencePods != cands[j].InferencePods {
			return cands[i].InferencePods < cands[j].InferencePods
		}
		return cands[i].Name < cands[j].Name
	})
	n := min(excess, d.Figures.FlipsLeft)
	if n < excess {
		d.Guard = GuardMaxFlips
	}
	for _, c := range cands[:min(n, len(cands))] {
		d.Nodes = append(d.Nodes, Choice{Node: c.Name, From: PoolOnline, To: PoolOffline, InferencePods: c.InferencePods,
			Why: fmt.Sprintf("emptiest online node (%d inference pods)", c.InferencePods)})
		st.Flips = append(st.Flips, in.Now)
	}
	d.Direction = DirectionToOffline
	d.Summary = fmt.Sprintf("utilisation %.2f and forecast peak %.2f under min_rate %.2f for %s: %d node(s) to training, keeping %d required + %d spare online",
		in.Utilisation, d.Figures.PeakHorizon, pol.MinRate, time.Duration(d.Figures.LowFor*float64(time.Second)), len(d.Nodes), d.Figures.Required, pol.SpareNodes)
	return d, st
}

// onlineCandidate is an offline node or a node on its way offline, with
// what taking it back costs.
type onlineCandidate struct {
	n      Node
	cancel bool
	lost   time.Duration
}

// pickOnline takes back the nodes whose training pods lose the least work,
// within the flip limit and the kill budget.
func pickOnline(pol Policy, st State, in Input, d Decision, want int) (Decision, State) {
	var cands []onlineCandidate
	for _, n := range in.Nodes {
		switch {
		case n.Pool == PoolOnline && n.Handover == HandoverToOffline:
			cands = append(cands, onlineCandidate{n: n, cancel: true})
		case n.Pool == PoolOffline && n.Ready():
			cands = append(cands, onlineCandidate{n: n, lost: n.LostWork(in.Now)})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.cancel != b.cancel {
			return a.cancel
		}
		if len(a.n.TrainingPods) != len(b.n.TrainingPods) && (len(a.n.TrainingPods) == 0 || len(b.n.TrainingPods) == 0) {
			return len(a.n.TrainingPods) == 0
		}
		if a.lost != b.lost {
			return a.lost < b.lost
		}
		return a.n.Name < b.n.Name
	})
	flipsLeft, killsLeft := d.Figures.FlipsLeft, d.Figures.KillsLeft
	for _, c := range cands {
		if len(d.Nodes) == want {
			break
		}
		if flipsLeft <= 0 {
			d.Guard = GuardMaxFlips
			break
		}
		pods := len(c.n.TrainingPods)
		if pods > killsLeft {
			d.Guard = GuardKillBudget
			continue
		}
		ch := Choice{Node: c.n.Name, From: c.n.Pool, To: PoolOnline, TrainingPods: pods, LostWork: c.lost, InferencePods: c.n.InferencePods}
		switch {
		case c.cancel:
			ch.Cancel = true
			ch.Why = "cancels its handover to offline: no training pod to evict"
		case pods == 0:
			ch.Why = "offline node with no training pod: nothing lost"
		default:
			ch.Why = fmt.Sprintf("least work lost: %d training pod(s), %s since checkpoint", pods, c.lost.Round(time.Second))
		}
		d.Nodes = append(d.Nodes, ch)
		flipsLeft--
		killsLeft -= pods
		st.Flips = append(st.Flips, in.Now)
		for range pods {
			st.Kills = append(st.Kills, in.Now)
		}
	}
	if len(d.Nodes) < want && d.Guard == GuardNone {
		d.Guard = GuardNoCandidates
	}
	if len(d.Nodes) > 0 {
		d.Direction = DirectionToOnline
	}
	d.Summary = fmt.Sprintf("%s (now %.2f, peak within lead time %.2f, max_rate %.2f, %d pending): %d of %d node(s) wanted back online",
		d.Reason, in.Utilisation, d.Figures.PeakLeadTime, pol.MaxRate, in.PendingInference, len(d.Nodes), want)
	if d.Guard != GuardNone {
		d.Summary += ", bound by " + string(d.Guard)
	}
	return d, st
}
