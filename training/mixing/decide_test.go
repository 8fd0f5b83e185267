package mixing

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)

// group builds online, offline and fixed nodes; offline nodes get one
// training pod whose last checkpoint was i+1 minutes ago (node i).
func group(online, offline, fixed int) []Node {
	var out []Node
	for i := range online {
		out = append(out, Node{Name: fmt.Sprintf("on-%02d", i), Pool: PoolOnline, InferencePods: 3 + i%2})
	}
	for i := range offline {
		out = append(out, Node{Name: fmt.Sprintf("off-%02d", i), Pool: PoolOffline, TrainingPods: []TrainingPod{{
			Name: fmt.Sprintf("job-%d", i), Started: t0.Add(-5 * time.Hour), LastCheckpoint: t0.Add(-time.Duration(i+1) * time.Minute)}}})
	}
	for i := range fixed {
		out = append(out, Node{Name: fmt.Sprintf("fixed-%02d", i), Pool: PoolFixed})
	}
	return out
}

func flat(u float64, pol Policy) []Point {
	var pts []Point
	for m := 1; m <= int(pol.ForecastHorizon/time.Minute); m++ {
		pts = append(pts, Point{At: t0.Add(time.Duration(m) * time.Minute), Utilisation: u})
	}
	return pts
}

func TestDecideGuards(t *testing.T) {
	pol := DefaultPolicy()
	pol.KillBudgetPerHour = 1
	longLow := State{LowSince: t0.Add(-2 * pol.Dwell)}
	cases := []struct {
		name      string
		st        State
		in        Input
		dir       Direction
		reason    Reason
		guard     Reason
		nodes     int
		firstNode string
	}{
		{name: "low for the dwell, forecast low: hands the excess over",
			st: longLow, in: Input{Utilisation: 0.1, Forecast: flat(0.1, pol), Nodes: group(10, 0, 2)},
			// demand 1 node → required ceil(1/0.65)=2, spare 1: 7 of 10 go
			dir: DirectionToOffline, reason: ReasonUtilisationLow, nodes: 4, guard: GuardMaxFlips, firstNode: "on-00"},
		{name: "low but not for the dwell",
			st: State{}, in: Input{Utilisation: 0.1, Forecast: flat(0.1, pol), Nodes: group(10, 0, 0)},
			dir: DirectionHold, reason: ReasonUtilisationLow, guard: GuardDwell},
		{name: "low now, forecast rises within the horizon",
			st: longLow, in: Input{Utilisation: 0.1, Forecast: append(flat(0.1, pol), Point{At: t0.Add(50 * time.Minute), Utilisation: 0.5}), Nodes: group(10, 0, 0)},
			dir: DirectionHold, reason: ReasonUtilisationLow, guard: GuardForecastNotLow},
		{name: "low but the spare margin is all that is left",
			st: longLow, in: Input{Utilisation: 0.3, Forecast: flat(0.3, pol), Nodes: group(3, 5, 0)},
			dir: DirectionHold, reason: ReasonUtilisationLow, guard: GuardSpareMargin},
		{name: "flip limit already spent this interval",
			st: State{LowSince: longLow.LowSince, Flips: []time.Time{t0, t0, t0, t0}}, in: Input{Utilisation: 0.1, Forecast: flat(0.1, pol), Nodes: group(10, 0, 0)},
			dir: DirectionHold, reason: ReasonUtilisationLow, guard: GuardMaxFlips},
		{name: "a node coming back online blocks going offline",
			st: longLow, in: Input{Utilisation: 0.1, Forecast: flat(0.1, pol), Nodes: append(group(10, 0, 0), Node{Name: "x", Pool: PoolOffline, Handover: HandoverToOnline})},
			dir: DirectionHold, reason: ReasonUtilisationLow, guard: GuardHandoverInFlight},
		{name: "within the band",
			in:  Input{Utilisation: 0.6, Forecast: flat(0.6, pol), Nodes: group(10, 3, 0)},
			dir: DirectionHold, reason: ReasonWithinBand},
		{name: "above max now: takes back the node losing least, within the kill budget",
			in:  Input{Utilisation: 0.9, Nodes: group(10, 3, 0)},
			dir: DirectionToOnline, reason: ReasonUtilisationHigh, nodes: 1, guard: GuardKillBudget, firstNode: "off-00"},
		{name: "forecast above max within the lead time",
			in:  Input{Utilisation: 0.6, Forecast: []Point{{At: t0.Add(3 * time.Minute), Utilisation: 0.95}}, Nodes: append(group(10, 3, 0), Node{Name: "idle", Pool: PoolOffline})},
			dir: DirectionToOnline, reason: ReasonForecastHigh, nodes: 2, guard: GuardKillBudget, firstNode: "idle"},
		{name: "forecast above max only past the lead time: holds",
			in:  Input{Utilisation: 0.6, Forecast: []Point{{At: t0.Add(pol.LeadTime() + pol.FlipInterval + time.Minute), Utilisation: 0.95}}, Nodes: group(10, 3, 0)},
			dir: DirectionHold, reason: ReasonWithinBand},
		{name: "pending pods bring one node back even at low utilisation",
			in:  Input{Utilisation: 0.5, PendingInference: 2, Nodes: append(group(10, 3, 0), Node{Name: "idle", Pool: PoolOffline})},
			dir: DirectionToOnline, reason: ReasonPendingPods, nodes: 1, firstNode: "idle"},
		{name: "a node on its way offline is cancelled first",
			in: Input{Utilisation: 0.9, Nodes: append(group(10, 1, 0), Node{Name: "leaving", Pool: PoolOnline, Handover: HandoverToOffline, InferencePods: 1})},
			// wants 5 (ceil(9/0.65)+1-10), only 2 candidates
			dir: DirectionToOnline, reason: ReasonUtilisationHigh, nodes: 2, guard: GuardNoCandidates, firstNode: "leaving"},
		{name: "kill budget spent: no victim",
			st: State{Kills: []time.Time{t0.Add(-10 * time.Minute)}}, in: Input{Utilisation: 0.95, Nodes: group(10, 3, 0)},
			dir: DirectionHold, reason: ReasonUtilisationHigh, guard: GuardKillBudget},
		{name: "incoming nodes already cover the demand",
			in:  Input{Utilisation: 0.9, Nodes: append(group(10, 1, 0), Node{Name: "a", Pool: PoolOffline, Handover: HandoverToOnline}, Node{Name: "b", Pool: PoolOffline, Handover: HandoverToOnline}, Node{Name: "c", Pool: PoolOffline, Handover: HandoverToOnline}, Node{Name: "d", Pool: PoolOffline, Handover: HandoverToOnline}, Node{Name: "e", Pool: PoolOffline, Handover: HandoverToOnline})},
			dir: DirectionHold, reason: ReasonUtilisationHigh, guard: GuardIncomingCovers},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now, c.in.Group = t0, "t4"
			d, _ := Decide(pol, c.st, c.in)
			if d.Direction != c.dir || d.Reason != c.reason || d.Guard != c.guard || len(d.Nodes) != c.nodes {
				t.Fatalf("got %s/%s/%q with %d nodes, want %s/%s/%q with %d\nsummary: %s", d.Direction, d.Reason, d.Guard, len(d.Nodes), c.dir, c.reason, c.guard, c.nodes, d.Summary)
			}
			if c.firstNode != "" && d.Nodes[0].Node != c.firstNode {
				t.Fatalf("first node %s, want %s (%+v)", d.Nodes[0].Node, c.firstNode, d.Nodes)
			}
			if d.Summary == "" {
				t.Fatal("decision without a summary")
			}
			for _, ch := range d.Nodes {
				if ch.Why == "" || (ch.From == ch.To) != ch.Cancel {
					t.Fatalf("choice without why or with From == To: %+v", ch)
				}
				if strings.HasPrefix(ch.Node, "fixed") {
					t.Fatalf("a fixed node was chosen: %+v", ch)
				}
			}
		})
	}
}

// cluster applies decisions instantly, for the property tests.
type cluster struct{ nodes []Node }

func (c *cluster) apply(d Decision, now time.Time) (kills int) {
	for _, ch := range d.Nodes {
		for i := range c.nodes {
			if c.nodes[i].Name != ch.Node {
				continue
			}
			kills += len(c.nodes[i].TrainingPods)
			c.nodes[i].Pool, c.nodes[i].Handover, c.nodes[i].TrainingPods = ch.To, HandoverNone, nil

		}
	}
	return kills
}

func (c *cluster) online() int {
	n := 0
	for _, x := range c.nodes {
		if x.Pool == PoolOnline && x.Ready() {
			n++
		}
	}
	return n
}

func drawPolicy(t *rapid.T) Policy {
	pol := DefaultPolicy()
	pol.MinRate = rapid.Float64Range(0.1, 0.4).Draw(t, "min")
	pol.ExpectRate = rapid.Float64Range(pol.MinRate+0.05, 0.8).Draw(t, "expect")
	pol.MaxRate = rapid.Float64Range(pol.ExpectRate+0.05, 0.95).Draw(t, "max")
	pol.MaxFlips = rapid.IntRange(1, 5).Draw(t, "maxFlips")
	pol.FlipInterval = time.Duration(rapid.IntRange(1, 15).Draw(t, "flipInterval")) * time.Minute
	pol.KillBudgetPerHour = rapid.IntRange(0, 4).Draw(t, "kills")
	pol.SpareNodes = rapid.IntRange(0, 2).Draw(t, "spare")
	pol.Dwell = time.Duration(rapid.IntRange(0, 30).Draw(t, "dwell")) * time.Minute
	return pol
}

// Under any load, the flips started in any flip interval never exceed
// MaxFlips, evictions in any hour never exceed the kill budget, and no
// fixed node moves.
func TestPropertyBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pol := drawPolicy(t)
		c := &cluster{nodes: group(rapid.IntRange(1, 12).Draw(t, "online"), rapid.IntRange(0, 12).Draw(t, "offline"), 2)}
		var st State
		now := t0
		var flips, kills []time.Time
		for step := range 60 {
			now = now.Add(time.Duration(rapid.IntRange(0, 3).Draw(t, "dt")) * time.Minute)
			demand := rapid.Float64Range(0, 14).Draw(t, "demand")
			on := max(c.online(), 1)
			in := Input{Group: "g", Now: now, Utilisation: demand / float64(on), Nodes: append([]Node(nil), c.nodes...),
				PendingInference: rapid.IntRange(0, 1).Draw(t, "pending") * int(demand)}
			for m := 1; m <= 5; m++ {
				in.Forecast = append(in.Forecast, Point{At: now.Add(time.Duration(m) * time.Minute), Utilisation: rapid.Float64Range(0, 14).Draw(t, "fc") / float64(on)})
			}
			var d Decision
			d, st = Decide(pol, st, in)
			for _, ch := range d.Nodes {
				if strings.HasPrefix(ch.Node, "fixed") {
					t.Fatalf("step %d: fixed node %s moved", step, ch.Node)
				}
				flips = append(flips, now)
			}
			for range c.apply(d, now) {
				kills = append(kills, now)
			}
			if n := countSince(flips, now.Add(-pol.FlipInterval)); n > pol.MaxFlips {
				t.Fatalf("step %d: %d flips within %v, max %d", step, n, pol.FlipInterval, pol.MaxFlips)
			}
			if n := countSince(kills, now.Add(-time.Hour)); n > pol.KillBudgetPerHour {
				t.Fatalf("step %d: %d kills within an hour, budget %d", step, n, pol.KillBudgetPerHour)
			}
		}
	})
}

func countSince(ts []time.Time, from time.Time) int {
	n := 0
	for _, t := range ts {
		if t.After(from) {
			n++
		}
	}
	return n
}

// A to-offline decision never leaves fewer online nodes than the forecast
// peak within the lead time (or the whole horizon) needs at the expected
// rate, plus the spare margin.
func TestPropertyNeverHandsAwayNeededNodes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pol := drawPolicy(t)
		online := rapid.IntRange(1, 20).Draw(t, "online")
		nodes := group(online, rapid.IntRange(0, 5).Draw(t, "offline"), 1)
		u := rapid.Float64Range(0, 1.2).Draw(t, "u")
		in := Input{Group: "g", Now: t0, Utilisation: u, Nodes: nodes}
		peak := u
		for m := 1; m <= int(pol.ForecastHorizon/time.Minute); m += rapid.IntRange(1, 20).Draw(t, "gap") {
			v := rapid.Float64Range(0, 1.2).Draw(t, "fc")
			in.Forecast = append(in.Forecast, Point{At: t0.Add(time.Duration(m) * time.Minute), Utilisation: v})
			peak = math.Max(peak, v)
		}
		d, _ := Decide(pol, State{LowSince: t0.Add(-pol.Dwell - time.Minute)}, in)
		if d.Direction != DirectionToOffline {
			return
		}
		left := online - len(d.Nodes)
		need := int(math.Ceil(peak*float64(online)/pol.ExpectRate-1e-9)) + pol.SpareNodes
		if left < need {
			t.Fatalf("left %d online nodes, forecast peak %.3f of %d needs %d (+spare): %s", left, peak, online, need, d.Summary)
		}
		if float64(left)*pol.MaxRate < peak*float64(online) {
			t.Fatalf("left %d nodes: the forecast peak would exceed max_rate", left)
		}
	})
}

// Under a constant load with a flat forecast the pools settle: after the
// first flip no flip goes the other way, and after settling none at all.
func TestPropertyNoOscillationUnderConstantLoad(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pol := drawPolicy(t)
		c := &cluster{nodes: group(rapid.IntRange(1, 15).Draw(t, "online"), rapid.IntRange(0, 15).Draw(t, "offline"), 0)}
		for i := range c.nodes { // empty mixed nodes: the kill budget never binds
			c.nodes[i].TrainingPods = nil
		}
		demand := rapid.Float64Range(0.05, 10).Draw(t, "demand")
		var st State
		var dirs []Direction
		now := t0
		lastFlip := -1
		for step := range 400 {
			now = now.Add(time.Minute)
			on := max(c.online(), 1)
			u := demand / float64(on)
			pending := 0
			if demand > float64(c.online()) {
				pending = int(math.Ceil(demand - float64(c.online())))
			}
			in := Input{Group: "g", Now: now, Utilisation: u, PendingInference: pending, Nodes: append([]Node(nil), c.nodes...)}
			for m := 1; m <= 60; m += 5 {
				in.Forecast = append(in.Forecast, Point{At: now.Add(time.Duration(m) * time.Minute), Utilisation: u})
			}
			var d Decision
			d, st = Decide(pol, st, in)
			if len(d.Nodes) > 0 {
				if len(dirs) == 0 || dirs[len(dirs)-1] != d.Direction {
					dirs = append(dirs, d.Direction)
				}
				lastFlip = step
			}
			c.apply(d, now)
		}
		if len(dirs) > 1 {
			t.Fatalf("constant demand %.2f: flips went %v", demand, dirs)
		}
		if lastFlip > 300 {
			t.Fatalf("constant demand %.2f: still flipping at step %d", demand, lastFlip)
		}
	})
}
