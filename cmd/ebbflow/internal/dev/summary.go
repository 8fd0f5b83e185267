package dev

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/schemas"
)

// Summary is what a finished run reports. The per-service figures are
// computed from the events on the topics (read back read_committed); Sim
// holds the simulation's own counters for the same services, the ground
// truth to compare them with.
type Summary struct {
	Endpoints Endpoints
	// Start and End bound the simulated time the run covered.
	Start, End time.Time
	// Services are computed from the topics, in entity order.
	Services []ServiceSummary
	// Sim are the simulation's own figures, in configuration order.
	Sim []sim.ServiceStats
	// Windows, Forecasts, Decisions and Actions count the events read back;
	// DeadLetters counts records on the dead-letter topic and Undecodable
	// events on the other topics that failed to decode.
	Windows, Forecasts, Decisions, Actions int
	DeadLetters, Undecodable               int
	// Components lists the pipeline components that ran.
	Components []string
	// SimMinutes are the simulation's own per-minute records by entity.
	SimMinutes map[string][]sim.Minute
	// VsHPA compares each service's run with the HPA v2 algorithm on the
	// load the simulation served (the backtest core), by entity.
	VsHPA map[string]VsHPA
	// Servers are the inference decisions (model servers launched,
	// updated, retired) with the outcome of each, in decision order.
	Servers []ServerEvent
	// Mixing is the node-mixing section; nil without dev.node_group.
	Mixing *MixingSummary
}

// ServerEvent is one inference decision and what the actuator did.
type ServerEvent struct {
	Decision schemas.InferenceDecision
	// Outcome and Reason are the action's; empty when none was read.
	Outcome, Reason string
}

// serverEvents pairs inference decisions with their actions.
func serverEvents(ev events) []ServerEvent {
	acts := map[string]schemas.Action{}
	for _, a := range ev.Actions {
		acts[a.DecisionID] = a
	}
	out := make([]ServerEvent, 0, len(ev.Inference))
	for _, d := range ev.Inference {
		a := acts[d.ID]
		out = append(out, ServerEvent{Decision: d, Outcome: a.Outcome, Reason: a.Reason})
	}
	return out
}

// ServiceSummary is one service's run, from its events.
type ServiceSummary struct {
	Entity string
	// ReplicaMinutes integrates the replicas windows (ready replicas).
	ReplicaMinutes float64
	// MinutesOverSLO counts latency windows above the SLO; MinutesJudged
	// counts the latency windows seen.
	MinutesOverSLO, MinutesJudged int
	// Decisions counts scale decisions; ScaleUps and ScaleDowns count
	// actions applied that raised or lowered the replica count.
	Decisions, ScaleUps, ScaleDowns int
	// MinReplicas and MaxReplicas bound the replicas windows and the
	// counts set by applied actions.
	MinReplicas, MaxReplicas int32
	// Forecasts counts forecasts of the qps signal; ForecastMAE maps a
	// horizon in minutes to the mean absolute error (requests/s) against
	// the qps window that later arrived, and ForecastN to how many pairs.
	Forecasts   int
	ForecastMAE map[int]float64
	ForecastN   map[int]int
	// LastValueMAE is the same error for the last-value baseline (the
	// forecast's observed value held flat), the yardstick for ForecastMAE.
	LastValueMAE map[int]float64
	// Ups and Downs are the simulated times of applied scale-ups and downs.
	Ups, Downs []time.Time
	// Outcomes counts the service's actions by outcome and reason.
	Outcomes map[string]int
	// Replicas, Latency and QPS are the window values by window start (ms).
	Replicas, Latency, QPS map[int64]float64
}

// summarise computes the per-service figures from the events. windowS is
// the window size the figures use; sloMs the latency objective.
func summarise(ev events, windowS int64, sloMs float64) []ServiceSummary {
	by := map[string]*ServiceSummary{}
	get := func(entity string) *ServiceSummary {
		s := by[entity]
		if s == nil {
			s = &ServiceSummary{Entity: entity, ForecastMAE: map[int]float64{}, ForecastN: map[int]int{}, LastValueMAE: map[int]float64{}, Outcomes: map[string]int{}, MinReplicas: math.MaxInt32, MaxReplicas: -1,
				Replicas: map[int64]float64{}, Latency: map[int64]float64{}, QPS: map[int64]float64{}}
			by[entity] = s
		}
		return s
	}
	type sk struct {
		entity, signal string
		size           int64
	}
	byEnd := map[sk]map[int64]schemas.Window{}
	byStart := map[sk]map[int64]schemas.Window{}
	for _, w := range ev.Windows {
		if !strings.HasPrefix(w.Entity, schemas.EntityService+"/") {
			continue
		}
		k := sk{w.Entity, w.Signal, w.SizeS}
		if byEnd[k] == nil {
			byEnd[k], byStart[k] = map[int64]schemas.Window{}, map[int64]schemas.Window{}
		}
		byEnd[k][w.EndMs], byStart[k][w.StartMs] = w, w
		if w.SizeS != windowS {
			continue
		}
		switch w.Signal {
		case schemas.SignalReplicas:
			s := get(w.Entity)
			v := w.Value()
			s.ReplicaMinutes += v * float64(w.SizeS) / 60
			s.MinReplicas = min(s.MinReplicas, int32(math.Round(v)))
			s.MaxReplicas = max(s.MaxReplicas, int32(math.Round(v)))
			s.Replicas[w.StartMs] = v
		case schemas.SignalQPS:
			get(w.Entity).QPS[w.StartMs] = w.Value()
		case schemas.SignalLatencyP99:
			s := get(w.Entity)
			s.Latency[w.StartMs] = w.Value()
			s.MinutesJudged++
			if w.Value() > sloMs {
				s.MinutesOverSLO++
			}
		}
	}
	for _, f := range ev.Forecasts {
		if f.Signal != schemas.SignalQPS || !strings.HasPrefix(f.Entity, schemas.EntityService+"/") {
			continue
		}
		s := get(f.Entity)
		s.Forecasts++
		k := sk{f.Entity, f.Signal, f.StepS}
		// The origin is the end of the window the forecast starts from,
		// or its start; the window whose value is Observed says which.
		at := byEnd[k]
		if o, ok := byEnd[k][f.OriginMs]; !ok || math.Abs(o.Value()-f.Observed) > 1e-6*math.Max(1, math.Abs(f.Observed)) {
			at = byStart[k]
		}
		for _, h := range f.Horizons {
			if w, ok := at[h.AtMs]; ok {
				s.ForecastMAE[h.Minutes] += math.Abs(h.Value - w.Value())
				s.LastValueMAE[h.Minutes] += math.Abs(f.Observed - w.Value())
				s.ForecastN[h.Minutes]++
			}
		}
	}
	for _, d := range ev.Decisions {
		get(d.Entity).Decisions++
	}
	entityOf := map[string]string{}
	for _, d := range ev.Decisions {
		entityOf[d.Target.Key()] = d.Entity
	}
	for _, a := range ev.Actions {
		e, ok := entityOf[a.Target.Key()]
		if !ok {
			e = schemas.ServiceEntity(a.Target.Cluster, a.Target.Namespace, a.Target.Name)
		}
		s := get(e)
		s.Outcomes[a.Outcome+": "+a.Reason]++
		if a.Outcome != schemas.OutcomeApplied || a.DryRun || a.Before == nil || a.After == nil {
			continue
		}
		at := time.UnixMilli(a.AtMs).UTC()
		switch {
		case *a.After > *a.Before:
			s.ScaleUps++
			s.Ups = append(s.Ups, at)
		case *a.After < *a.Before:
			s.ScaleDowns++
			s.Downs = append(s.Downs, at)
		}
		s.MinReplicas = min(s.MinReplicas, *a.After)
		s.MaxReplicas = max(s.MaxReplicas, *a.After)
	}
	out := make([]ServiceSummary, 0, len(by))
	for _, s := range by {
		for h, n := range s.ForecastN {
			s.ForecastMAE[h] /= float64(n)
			s.LastValueMAE[h] /= float64(n)
		}
		if s.MaxReplicas < 0 {
			s.MinReplicas, s.MaxReplicas = 0, 0
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Entity < out[j].Entity })
	return out
}

// Print writes the summary as a table.
func (s Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "\nebbflow dev: simulated %s (%s → %s); components: %s\n", s.End.Sub(s.Start).Round(time.Second),
		s.Start.Format("2006-01-02 15:04"), s.End.Format("2006-01-02 15:04"), strings.Join(s.Components, ", "))
	fmt.Fprintf(w, "events read back: %d windows, %d forecasts, %d decisions, %d actions, %d dead letters, %d undecodable\n",
		s.Windows, s.Forecasts, s.Decisions, s.Actions, s.DeadLetters, s.Undecodable)
	simBy := map[string]sim.ServiceStats{}
	for _, st := range s.Sim {
		simBy[st.Entity] = st
	}
	fmt.Fprintf(w, "%-34s %14s %12s %9s %7s %9s  %-26s  %s\n", "service", "replica-min", "min>SLO", "decisions", "up/down", "replicas",
		"vs HPA: under-prov min, ×rm, HPA min>SLO", "qps forecast MAE / last-value MAE (req/s) by horizon")
	for _, sv := range s.Services {
		st := simBy[sv.Entity]
		var mae []string
		hs := make([]int, 0, len(sv.ForecastMAE))
		for h := range sv.ForecastMAE {
			hs = append(hs, h)
		}
		sort.Ints(hs)
		for _, h := range hs {
			mae = append(mae, fmt.Sprintf("%dm %.1f/%.1f", h, sv.ForecastMAE[h], sv.LastValueMAE[h]))
		}
		if len(mae) == 0 {
			mae = []string{"-"}
		}
		vs := "-"
		if v, ok := s.VsHPA[sv.Entity]; ok {
			vs = fmt.Sprintf("%.0f/%.0f HPA, ×%s, %d", v.Run.UnderProvisionedMinutes, v.HPA.UnderProvisionedMinutes,
				fmtRatio(ratio(v.Run.ReplicaMinutes, v.HPA.ReplicaMinutes)), v.HPA.MinutesOverSLO)
		}
		fmt.Fprintf(w, "%-34s %6.0f (%6.0f) %4d (%5d) %9d %3d/%-3d %4d..%-4d  %-40s  %s\n", sv.Entity,
			sv.ReplicaMinutes, st.ReplicaMinutes, sv.MinutesOverSLO, st.MinutesOverSLO, sv.Decisions,
			sv.ScaleUps, sv.ScaleDowns, sv.MinReplicas, sv.MaxReplicas, vs, strings.Join(mae, ", "))
	}
	fmt.Fprintln(w, "(in parentheses: the simulation's own count; vs HPA: the backtest core scores the run's ready replicas and")
	fmt.Fprintln(w, " the HPA v2 algorithm on the load the simulation served — under-provisioned minutes of each, the run's")
	fmt.Fprintln(w, " replica-minutes over HPA's, and HPA's minutes over the SLO)")
	for _, e := range s.Servers {
		d := e.Decision
		fmt.Fprintf(w, "model server: %s %s v%d at +%s (%s): %s → %s\n", d.Action, d.Model.Name, d.Model.Version,
			time.UnixMilli(d.AtMs).Sub(s.Start).Round(time.Second), d.Reason.Trigger, d.Reason.Summary, orDash(e.Outcome))
	}
	if s.Mixing != nil {
		s.Mixing.print(w, s.Start)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
