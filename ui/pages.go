package ui

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Row types the templates render.

// ServiceRow is one service on the overview.
type ServiceRow struct {
	Entity, Name, Namespace string
	QPS, Forecast           float64
	ForecastMinutes         int
	HasQPS, HasForecast     bool
	Replicas                float64
	HasReplicas             bool
	LastDecision            *schemas.ScaleDecision
}

// DecisionRow is one decision of any kind in a list.
type DecisionRow struct {
	ID, Kind, At, Target, What, Why, Guard, Href string
}

// OverviewData is the overview page.
type OverviewData struct {
	Services   []ServiceRow
	Groups     []NodeGroup
	GroupsErr  string
	Queue      []QueueJob
	QueueErr   string
	Waiting    int
	Admitted   int
	Decisions  []DecisionRow
	Alerts     []schemas.Alert
	Actions    int
	Failed     int
	Bad        int
	NewestMs   int64
	NewestTime string
}

// PageTitle implements titled.
func (OverviewData) PageTitle() string { return "Overview" }

func (s *Server) kubeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.KubeTimeout)
}

func (s *Server) overview(r *http.Request) (any, int, error) {
	d := OverviewData{Bad: s.store.Undecodable()}
	for _, e := range s.store.Services() {
		v, _ := s.store.Service(e)
		row := ServiceRow{Entity: e, Name: e}
		if _, ns, name, err := schemas.ParseServiceEntity(e); err == nil {
			row.Name, row.Namespace = name, ns
		}
		if n := len(v.QPS); n > 0 {
			row.QPS, row.HasQPS = v.QPS[n-1].Value(), true
		}
		if n := len(v.Replicas); n > 0 {
			row.Replicas, row.HasReplicas = v.Replicas[n-1].Value(), true
		}
		if n := len(v.Forecasts); n > 0 && len(v.Forecasts[n-1].Horizons) > 0 {
			h := v.Forecasts[n-1].Horizons
			row.Forecast, row.ForecastMinutes, row.HasForecast = h[len(h)-1].Value, h[len(h)-1].Minutes, true
		}
		if n := len(v.Decisions); n > 0 {
			row.LastDecision = &v.Decisions[n-1]
		}
		d.NewestMs = max(d.NewestMs, v.LatestMs)
		d.Services = append(d.Services, row)
	}
	if d.NewestMs > 0 {
		d.NewestTime = fmtTime(d.NewestMs)
	}
	ctx, cancel := s.kubeCtx(r)
	defer cancel()
	if g, err := s.src.nodeGroups(ctx); err != nil {
		d.GroupsErr = err.Error()
	} else {
		d.Groups = g
	}
	if q, err := s.src.queue(ctx); err != nil {
		d.QueueErr = err.Error()
	} else {
		d.Queue = q
		for _, j := range q {
			switch j.State {
			case "waiting":
				d.Waiting++
			case "admitted":
				d.Admitted++
			}
		}
		if len(d.Queue) > 8 {
			d.Queue = d.Queue[:8]
		}
	}
	rec := s.store.Recent()
	d.Decisions = lastN(allDecisions(rec), 12)
	reverse(rec.Alerts)
	d.Alerts = lastN(rec.Alerts, 10)
	d.Actions = len(rec.Actions)
	for _, a := range rec.Actions {
		if a.Outcome == schemas.OutcomeFailed {
			d.Failed++
		}
	}
	return d, http.StatusOK, nil
}

// allDecisions merges every kind, newest first.
func allDecisions(rec Recent) []DecisionRow {
	type at struct {
		ms  int64
		row DecisionRow
	}
	var all []at
	for _, d := range rec.Scale {
		all = append(all, at{d.AtMs, scaleRow(d)})
	}
	for _, d := range rec.Nodes {
		var nodes []string
		for _, f := range d.Nodes {
			nodes = append(nodes, f.Node)
		}
		all = append(all, at{d.AtMs, DecisionRow{ID: d.ID, Kind: d.Kind, At: fmtTime(d.AtMs), Target: "node group " + d.Group,
			What: d.Direction + ": " + strings.Join(nodes, ", "), Why: d.Reason.Summary, Guard: d.Reason.Guard,
			Href: "/nodes#d-" + anchor(d.ID)}})
	}
	for _, d := range rec.Training {
		all = append(all, at{d.AtMs, DecisionRow{ID: d.ID, Kind: d.Kind, At: fmtTime(d.AtMs), Target: d.Job.Namespace + "/" + d.Job.Name,
			What: d.Action + fmt.Sprintf(" (score %d)", d.Score.Total), Why: d.Reason.Summary, Guard: d.Reason.Guard,
			Href: "/training#d-" + anchor(d.ID)}})
	}
	for _, d := range rec.Inference {
		all = append(all, at{d.AtMs, DecisionRow{ID: d.ID, Kind: d.Kind, At: fmtTime(d.AtMs), Target: d.Target.Namespace + "/" + d.Target.Name,
			What: fmt.Sprintf("%s %s v%d (%s on %s)", d.Action, d.Model.Name, d.Model.Version, d.Model.Server, d.Model.Device),
			Why:  d.Reason.Summary, Href: "/actions?target=" + d.Target.Name}})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].ms > all[j].ms })
	out := make([]DecisionRow, len(all))
	for i, a := range all {
		out[i] = a.row
	}
	return out
}

func scaleRow(d schemas.ScaleDecision) DecisionRow {
	return DecisionRow{ID: d.ID, Kind: d.Kind, At: fmtTime(d.AtMs), Target: d.Target.Namespace + "/" + d.Target.Name,
		What: fmt.Sprintf("replicas %d → %d", d.From, d.To), Why: d.Reason.Summary, Guard: d.Reason.Guard,
		Href: "/service?entity=" + urlQuery(d.Entity) + "#d-" + anchor(d.ID)}
}

// HorizonError is the forecast error at one horizon against last value.
type HorizonError struct {
	Minutes           int
	N                 int
	MAE, LastValueMAE float64
	// Ratio is MAE / LastValueMAE (below 1: the forecast is better).
	Ratio    float64
	HasRatio bool
}

// ServiceData is a service's page.
type ServiceData struct {
	Entity, Name, Namespace, Cluster string
	Load, Replicas, Errors           Chart
	ErrorTable                       []HorizonError
	Decisions                        []schemas.ScaleDecision
	Forecast                         *schemas.Forecast
	Known                            bool
}

// PageTitle implements titled.
func (d ServiceData) PageTitle() string { return "Service " + d.Name }

var horizonClass = []string{"s2", "s3", "s4", "s5", "s6"}

func (s *Server) service(r *http.Request) (any, int, error) {
	entity := r.URL.Query().Get("entity")
	if entity == "" {
		return nil, http.StatusBadRequest, fmt.Errorf("ui: /service needs ?entity=svc/<cluster>/<namespace>/<workload>")
	}
	c, ns, name, err := schemas.ParseServiceEntity(entity)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("ui: %w", err)
	}
	v, known := s.store.Service(entity)
	d := ServiceData{Entity: entity, Name: name, Namespace: ns, Cluster: c, Known: known,
		Decisions: append([]schemas.ScaleDecision(nil), v.Decisions...)}
	reverse(d.Decisions)
	if n := len(v.Forecasts); n > 0 {
		d.Forecast = &v.Forecasts[n-1]
	}

	// Load: actual (qps windows, at their end) and each horizon's forecast
	// placed at the time it forecasts.
	actual := Series{Name: "actual qps", Class: "s1"}
	actualAt := map[int64]float64{}
	for _, w := range v.QPS {
		actual.Points = append(actual.Points, Point{w.EndMs, w.Value()})
		actualAt[w.EndMs] = w.Value()
	}
	byH := map[int]*Series{}
	var hs []int
	for _, f := range v.Forecasts {
		for _, h := range f.Horizons {
			sr := byH[h.Minutes]
			if sr == nil {
				sr = &Series{Name: fmt.Sprintf("forecast +%d min", h.Minutes)}
				byH[h.Minutes] = sr
				hs = append(hs, h.Minutes)
			}
			sr.Points = append(sr.Points, Point{h.AtMs, h.Value})
		}
	}
	sort.Ints(hs)
	load := Chart{Title: "Load: actual against the forecast at each horizon", YLabel: "requests/s", Height: 280,
		Desc: fmt.Sprintf("%d actual windows and %d forecasts of %s", len(v.QPS), len(v.Forecasts), name)}
	load.Series = append(load.Series, actual)
	for i, h := range hs {
		sr := byH[h]
		sort.Slice(sr.Points, func(a, b int) bool { return sr.Points[a].T < sr.Points[b].T })
		sr.Class = horizonClass[i%len(horizonClass)]
		load.Series = append(load.Series, *sr)
	}
	var markers []Marker
	for _, dec := range v.Decisions {
		markers = append(markers, Marker{T: dec.AtMs, Label: fmt.Sprintf("%s: %d → %d: %s", fmtTime(dec.AtMs), dec.From, dec.To, dec.Reason.Summary),
			Href: "#d-" + anchor(dec.ID), Class: direction(dec.From, dec.To)})
	}
	load.Markers = markers
	d.Load = load

	// Replicas: observed, decided, and the bound.
	obs := Series{Name: "replicas (observed)", Class: "s1", Step: true}
	for _, w := range v.Replicas {
		obs.Points = append(obs.Points, Point{w.EndMs, w.Value()})
	}
	dec := Series{Name: "replicas decided", Class: "s3", Step: true}
	bound := Series{Name: "max replicas (capacity bound)", Class: "s6", Step: true}
	for _, x := range v.Decisions {
		dec.Points = append(dec.Points, Point{x.AtMs, float64(x.To)})
		if m, ok := x.Reason.Inputs["max_replicas"]; ok {
			bound.Points = append(bound.Points, Point{x.AtMs, m})
		}
	}
	sort.Slice(dec.Points, func(a, b int) bool { return dec.Points[a].T < dec.Points[b].T })
	sort.Slice(bound.Points, func(a, b int) bool { return bound.Points[a].T < bound.Points[b].T })
	d.Replicas = Chart{Title: "Replicas and capacity over time", YLabel: "replicas", Height: 220,
		Desc:   fmt.Sprintf("observed replicas and %d decisions of %s", len(v.Decisions), name),
		Series: []Series{obs, dec, bound}, Markers: markers}

	// Forecast error against last value, per horizon, where the actual
	// value at the forecast time is known.
	errSeries := map[int]*Series{}
	lvSeries := Series{Name: "last value error +1 min", Class: "s6"}
	for _, h := range hs {
		he := HorizonError{Minutes: h}
		var sum, lvSum float64
		for _, f := range v.Forecasts {
			for _, hv := range f.Horizons {
				if hv.Minutes != h {
					continue
				}
				a, ok := actualAt[hv.AtMs]
				if !ok {
					continue
				}
				he.N++
				sum += math.Abs(hv.Value - a)
				lvSum += math.Abs(f.Observed - a)
				if h == hs[0] {
					sr := errSeries[h]
					if sr == nil {
						sr = &Series{Name: fmt.Sprintf("forecast error +%d min", h), Class: "s2"}
						errSeries[h] = sr
					}
					sr.Points = append(sr.Points, Point{hv.AtMs, math.Abs(hv.Value - a)})
					lvSeries.Points = append(lvSeries.Points, Point{hv.AtMs, math.Abs(f.Observed - a)})
				}
			}
		}
		if he.N > 0 {
			he.MAE, he.LastValueMAE = sum/float64(he.N), lvSum/float64(he.N)
			if he.LastValueMAE > 0 {
				he.Ratio, he.HasRatio = he.MAE/he.LastValueMAE, true
			}
		}
		d.ErrorTable = append(d.ErrorTable, he)
	}
	ec := Chart{Title: "Absolute forecast error against last value", YLabel: "requests/s", Height: 200,
		Desc: "absolute error of the shortest-horizon forecast and of the last value, per forecast time"}
	if len(hs) > 0 && errSeries[hs[0]] != nil {
		lvSeries.Name = fmt.Sprintf("last value error +%d min", hs[0])
		sr := errSeries[hs[0]]
		sort.Slice(sr.Points, func(a, b int) bool { return sr.Points[a].T < sr.Points[b].T })
		sort.Slice(lvSeries.Points, func(a, b int) bool { return lvSeries.Points[a].T < lvSeries.Points[b].T })
		ec.Series = []Series{*sr, lvSeries}
	}
	d.Errors = ec
	return d, http.StatusOK, nil
}

func direction(from, to int32) string {
	switch {
	case to > from:
		return "up"
	case to < from:
		return "down"
	}
	return "hold"
}

// NodesData is the node-groups page.
type NodesData struct {
	Groups    []NodeGroup
	GroupsErr string
	Timelines []PoolTimeline
	Handovers []schemas.NodesDecision
	Actions   []schemas.Action
}

// PageTitle implements titled.
func (NodesData) PageTitle() string { return "Node groups" }

func (s *Server) nodes(r *http.Request) (any, int, error) {
	var d NodesData
	ctx, cancel := s.kubeCtx(r)
	defer cancel()
	if g, err := s.src.nodeGroups(ctx); err != nil {
		d.GroupsErr = err.Error()
	} else {
		d.Groups = g
	}
	rec := s.store.Recent()
	d.Handovers = append(d.Handovers, rec.Nodes...)
	reverse(d.Handovers)
	for _, a := range rec.Actions {
		if a.DecisionKind == schemas.DecisionNodes {
			d.Actions = append(d.Actions, a)
		}
	}
	reverse(d.Actions)
	d.Timelines = poolTimelines(d.Groups, rec.Nodes, s.now().UnixMilli())
	return d, http.StatusOK, nil
}

// PoolSpan is a node's pool over a span of time.
type PoolSpan struct {
	From, To int64
	Pool     string
}

// PoolTimeline is one node's pool over time.
type PoolTimeline struct {
	Group, Node string
	Spans       []PoolSpan
	SVG         any
}

// poolTimelines reconstructs each node's pool from the handovers (walking
// back from the pool the API server shows now, or the last handover's
// target when the node is not listed).
func poolTimelines(groups []NodeGroup, ds []schemas.NodesDecision, nowMs int64) []PoolTimeline {
	type flip struct {
		at       int64
		from, to string
	}
	flips := map[string][]flip{}
	groupOf := map[string]string{}
	first := nowMs
	for _, d := range ds {
		for _, f := range d.Nodes {
			if f.Cancel {
				continue
			}
			flips[f.Node] = append(flips[f.Node], flip{d.AtMs, f.From, f.To})
			groupOf[f.Node] = d.Group
			first = min(first, d.AtMs)
		}
	}
	current := map[string]string{}
	var order []string
	for _, g := range groups {
		for _, n := range g.Nodes {
			current[n.Name] = n.Pool
			groupOf[n.Name] = g.Name
			order = append(order, n.Name)
		}
	}
	for n, fs := range flips {
		if _, ok := current[n]; !ok {
			current[n] = fs[len(fs)-1].to
			order = append(order, n)
		}
	}
	sort.Strings(order)
	end := nowMs
	for _, fs := range flips {
		end = max(end, fs[len(fs)-1].at)
	}
	start := first
	if start >= end {
		start = end - time.Hour.Milliseconds()
	}
	var out []PoolTimeline
	for _, n := range order {
		fs := flips[n]
		sort.Slice(fs, func(i, j int) bool { return fs[i].at < fs[j].at })
		tl := PoolTimeline{Group: groupOf[n], Node: n}
		pool, to := current[n], end
		for i := len(fs) - 1; i >= 0; i-- {
			tl.Spans = append([]PoolSpan{{From: fs[i].at, To: to, Pool: pool}}, tl.Spans...)
			pool, to = fs[i].from, fs[i].at
		}
		tl.Spans = append([]PoolSpan{{From: start, To: to, Pool: pool}}, tl.Spans...)
		out = append(out, tl)
	}
	return out
}

// TrainingData is the training queue page.
type TrainingData struct {
	Queue       []QueueJob
	QueueErr    string
	Decisions   []schemas.TrainingDecision
	Preemptions []schemas.TrainingDecision
}

// PageTitle implements titled.
func (TrainingData) PageTitle() string { return "Training queue" }

func (s *Server) training(r *http.Request) (any, int, error) {
	var d TrainingData
	ctx, cancel := s.kubeCtx(r)
	defer cancel()
	if q, err := s.src.queue(ctx); err != nil {
		d.QueueErr = err.Error()
	} else {
		d.Queue = q
	}
	rec := s.store.Recent()
	d.Decisions = rec.Training
	reverse(d.Decisions)
	for _, x := range d.Decisions {
		if x.Action == schemas.TrainingPreempt {
			d.Preemptions = append(d.Preemptions, x)
		}
	}
	return d, http.StatusOK, nil
}

// ActionsData is the actions page.
type ActionsData struct {
	Kind, Outcome, Target string
	Kinds, Outcomes       []string
	Actions               []schemas.Action
	Total                 int
}

// PageTitle implements titled.
func (ActionsData) PageTitle() string { return "Actions" }

func (s *Server) actions(r *http.Request) (any, int, error) {
	q := r.URL.Query()
	d := ActionsData{Kind: q.Get("kind"), Outcome: q.Get("outcome"), Target: strings.TrimSpace(q.Get("target")),
		Kinds: schemas.DecisionKinds, Outcomes: []string{schemas.OutcomeApplied, schemas.OutcomeSkipped, schemas.OutcomeFailed}}
	if d.Kind != "" && !contains(d.Kinds, d.Kind) {
		return nil, http.StatusBadRequest, fmt.Errorf("ui: kind %q: must be one of %s", d.Kind, strings.Join(d.Kinds, ", "))
	}
	if d.Outcome != "" && !contains(d.Outcomes, d.Outcome) {
		return nil, http.StatusBadRequest, fmt.Errorf("ui: outcome %q: must be one of %s", d.Outcome, strings.Join(d.Outcomes, ", "))
	}
	all := s.store.Recent().Actions
	d.Total = len(all)
	for i := len(all) - 1; i >= 0; i-- {
		a := all[i]
		if d.Kind != "" && a.DecisionKind != d.Kind || d.Outcome != "" && a.Outcome != d.Outcome {
			continue
		}
		if d.Target != "" && !strings.Contains(strings.ToLower(a.Target.Key()), strings.ToLower(d.Target)) {
			continue
		}
		d.Actions = append(d.Actions, a)
	}
	return d, http.StatusOK, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func lastN[T any](xs []T, n int) []T {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

func reverse[T any](xs []T) {
	for i, j := 0, len(xs)-1; i < j; i, j = i+1, j-1 {
		xs[i], xs[j] = xs[j], xs[i]
	}
}

func fmtTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05") }
