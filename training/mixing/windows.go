package mixing

import (
	"sort"
	"time"
)

// DemandPoint is forecast inference demand in node units (utilisation ×
// nodes) at a time.
type DemandPoint struct {
	At    time.Time
	Nodes float64
}

// ReturnSchedule says, for the k-th offline node to come back (k = 1 …
// offline), the latest time its handover to online may start: the first
// forecast instant at which inference needs more than online+k-1 nodes
// (ExpectRate, SpareNodes), less the lead time. Where the forecast never
// needs it, the window ends with the forecast: nothing is promised beyond
// what the forecast covers. online counts ready and incoming online nodes.
// The result is sorted, earliest first.
func ReturnSchedule(now time.Time, demand []DemandPoint, online, offline int, pol Policy) []time.Time {
	out := make([]time.Time, 0, offline)
	end := now
	if len(demand) > 0 {
		end = demand[len(demand)-1].At
	}
	for _, p := range demand {
		if len(out) == offline {
			break
		}
		extra := requiredNodes(p.Nodes, pol) + pol.SpareNodes - online
		for len(out) < offline && extra >= len(out)+1 {
			t := p.At.Add(-pol.LeadTime())
			if t.Before(now) {
				t = now
			}
			out = append(out, t)
		}
	}
	for len(out) < offline {
		out = append(out, end)
	}
	return out
}

// FitsWindows reports whether the offline nodes' busy-until times plus a
// new job's (one per node it takes) can all end before the return schedule
// needs those nodes back: matching the latest end to the latest window,
// the next to the next, each end must come no later than its window. Free
// nodes end now and always fit.
func FitsWindows(busyUntil []time.Time, returns []time.Time, newEnds ...time.Time) bool {
	ends := append(append([]time.Time(nil), busyUntil...), newEnds...)
	if len(ends) > len(returns) {
		return false
	}
	sort.Slice(ends, func(i, j int) bool { return ends[i].After(ends[j]) })
	r := append([]time.Time(nil), returns...)
	sort.Slice(r, func(i, j int) bool { return r[i].After(r[j]) })
	for i, e := range ends {
		if e.After(r[i]) {
			return false
		}
	}
	return true
}
