package autoscale

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/ebbflow/ebbflow/schemas"
)

// Workload is what the decider reads about a Deployment or StatefulSet.
type Workload struct {
	Kind        string
	Replicas    int32
	Annotations map[string]string
}

// WorkloadLister finds a workload of this cluster by namespace and name.
// Implementations must be safe for concurrent use (see NewWorkloadInformer).
type WorkloadLister interface {
	Workload(namespace, name string) (Workload, bool)
}

// Output is what one input produced: at most one decision and any alerts.
type Output struct {
	Decision *schemas.ScaleDecision
	Alerts   []schemas.Alert
	// Guard is the guard that had the last word ("" none), also when no
	// decision was emitted: for metrics.
	Guard Guard
	// PolicyErr is the rejected policy annotation (or services override),
	// if any: the decision's reason says so, and an AlertBadPolicy alert
	// is among Alerts the first time this rejection is seen.
	PolicyErr error
}

type signalState struct {
	current   float64
	currentMs int64 // window end
	horizons  []schemas.HorizonValue
	forecast  int64 // origin
	fallback  string
	forecasID string
}

type service struct {
	// mu guards everything below: inputs of one service are decided one
	// at a time, different services in parallel.
	mu                       sync.Mutex
	entity                   string
	cluster, namespace, name string
	nowMs                    int64
	signals                  map[string]*signalState
	hist                     State // Recommendations, LastScale*, FirstSeenMs
	lastSeq                  int64
	lastTo                   int32
	lastToMs                 int64
	replicasWin              float64
	replicasMs               int64
	// badPolicy is the last rejected policy seen (alerted once per change).
	badPolicy string
	// inputs is the State.Signals map handed to Decide, reused (Decide
	// and Remember keep no reference to it).
	inputs map[string]SignalInput
}

// Decider keeps per-service inputs and history and runs Decide on every
// input. It is safe for concurrent use: a service's inputs are decided
// one at a time under its own mutex, different services (the partitions'
// goroutines of a burst) in parallel.
type Decider struct {
	cfg       Config
	cluster   string
	workloads WorkloadLister

	mu       sync.RWMutex // guards the map; each service guards itself
	services map[string]*service
}

// NewDecider returns a decider for cfg. cluster names the cluster whose
// workloads the lister knows (may be empty with a nil lister).
func NewDecider(cfg Config, cluster string, workloads WorkloadLister) *Decider {
	return &Decider{cfg: cfg, cluster: cluster, workloads: workloads, services: map[string]*service{}}
}

// service returns the entity's service, locked (the caller unlocks s.mu).
func (d *Decider) service(entity string) (*service, error) {
	d.mu.RLock()
	s, ok := d.services[entity]
	d.mu.RUnlock()
	if !ok {
		c, ns, name, err := schemas.ParseServiceEntity(entity)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		if s, ok = d.services[entity]; !ok {
			s = &service{entity: entity, cluster: c, namespace: ns, name: name, signals: map[string]*signalState{}}
			d.services[entity] = s
		}
		d.mu.Unlock()
	}
	s.mu.Lock()
	return s, nil
}

func (s *service) sig(name string) *signalState {
	st, ok := s.signals[name]
	if !ok {
		st = &signalState{}
		s.signals[name] = st
	}
	return st
}

// ObserveWindow records a window and decides for its service. Windows of
// non-service entities are ignored (zero Output, nil error).
func (d *Decider) ObserveWindow(w schemas.Window) (Output, error) {
	if len(w.Entity) < 4 || w.Entity[:4] != schemas.EntityService+"/" {
		return Output{}, nil
	}
	if d.cfg.WindowSizeS > 0 && w.SizeS != d.cfg.WindowSizeS {
		return Output{}, nil
	}
	s, err := d.service(w.Entity)
	if err != nil {
		return Output{}, fmt.Errorf("autoscale: window %s: %w", w.EventID(), err)
	}
	defer s.mu.Unlock()
	if w.Signal == schemas.SignalReplicas {
		if w.EndMs >= s.replicasMs {
			s.replicasWin, s.replicasMs = w.Value(), w.EndMs
		}
	} else {
		st := s.sig(w.Signal)
		if w.EndMs >= st.currentMs {
			st.current, st.currentMs = w.Value(), w.EndMs
		}
	}
	s.nowMs = max(s.nowMs, w.EndMs)
	if st, ok := s.signals[w.Signal]; ok && st.forecast > 0 && s.nowMs-st.forecast <= d.cfg.StaleAfter.Milliseconds() {
		if _, demand := d.cfg.Policy.Signals[w.Signal]; demand {
			// Forecasts for this signal are flowing: the forecast of this
			// window decides, so one window does not give two decisions.
			return Output{Guard: "await_forecast"}, nil
		}
	}
	return d.decide(s, ""), nil
}

// ObserveForecast records a forecast and decides for its service.
func (d *Decider) ObserveForecast(f schemas.Forecast) (Output, error) {
	if len(f.Entity) < 4 || f.Entity[:4] != schemas.EntityService+"/" {
		return Output{}, nil
	}
	s, err := d.service(f.Entity)
	if err != nil {
		return Output{}, fmt.Errorf("autoscale: forecast %s: %w", f.ID, err)
	}
	defer s.mu.Unlock()
	st := s.sig(f.Signal)
	if f.OriginMs >= st.forecast {
		st.horizons, st.forecast, st.fallback, st.forecasID = f.Horizons, f.OriginMs, f.Fallback, f.ID
	}
	s.nowMs = max(s.nowMs, f.OriginMs)
	return d.decide(s, f.ID), nil
}

// policy resolves a service's policy: defaults, then config overrides,
// then annotations. A bad override is not applied (the previous level
// stays) and is returned, so the caller reports it: never silence.
func (d *Decider) policy(s *service, ann map[string]string) (Policy, string, bool, error) {
	pol := d.cfg.Policy
	kind := d.cfg.DefaultKind
	var rejected []error
	if sc, ok := d.cfg.Services[s.entity]; ok {
		if sc.Disabled {
			return pol, kind, false, nil
		}
		if p, err := PolicyFromAnnotations(pol, sc.annotations()); err == nil {
			pol = p
		} else {
			rejected = append(rejected, fmt.Errorf("services[%s]: %w", s.entity, err))
		}
		if sc.Kind != "" {
			kind = sc.Kind
		}
	}
	if ann != nil {
		if ann[AnnotationDisabled] == "true" {
			return pol, kind, false, nil
		}
		if p, err := PolicyFromAnnotations(pol, ann); err == nil {
			pol = p
		} else {
			rejected = append(rejected, err)
		}
	}
	return pol, kind, true, errors.Join(rejected...)
}

// policyRejected marks the decision of a service whose policy was
// rejected and, the first time this rejection is seen, raises an alert.
func (d *Decider) policyRejected(s *service, out *Output, perr error, target schemas.Target) {
	if perr == nil {
		s.badPolicy = ""
		return
	}
	out.PolicyErr = perr
	if out.Decision != nil {
		out.Decision.Reason.Summary += fmt.Sprintf("; %s: %v (configured policy used)", GuardBadPolicy, perr)
	}
	if perr.Error() == s.badPolicy {
		return
	}
	s.badPolicy = perr.Error()
	t := target
	out.Alerts = append(out.Alerts, schemas.Alert{
		ID:       fmt.Sprintf("policy/%s/%d", t.Key(), s.nowMs),
		Severity: schemas.SeverityWarning, Kind: schemas.AlertBadPolicy,
		Summary: fmt.Sprintf("%s: policy annotation rejected, configured policy used: %v", t.Key(), perr),
		Target:  &t, Entity: s.entity, AtMs: s.nowMs, Source: d.cfg.Source,
	})
}

func (d *Decider) decide(s *service, forecastID string) Output {
	var ann map[string]string
	n := int32(-1)
	kind := ""
	if d.workloads != nil && s.cluster == d.cluster {
		if wl, ok := d.workloads.Workload(s.namespace, s.name); ok {
			n, ann, kind = wl.Replicas, wl.Annotations, wl.Kind
		}
	}
	pol, defKind, enabled, perr := d.policy(s, ann)
	if !enabled {
		return Output{Guard: GuardDisabled}
	}
	if kind == "" {
		kind = defKind
	}
	target := schemas.Target{Cluster: s.cluster, Namespace: s.namespace, Kind: kind, Name: s.name}
	out := d.decideWith(s, forecastID, n, pol, target)
	d.policyRejected(s, &out, perr, target)
	return out
}

// decideWith runs Decide on the service's state under pol.
func (d *Decider) decideWith(s *service, forecastID string, n int32, pol Policy, target schemas.Target) Output {
	stale := d.cfg.StaleAfter.Milliseconds()
	if n < 0 {
		if s.replicasMs == 0 || s.nowMs-s.replicasMs > stale {
			return Output{Guard: GuardNoReplicas}
		}
		n = int32(math.Round(s.replicasWin))
	}
	st := s.hist
	st.NowMs, st.Replicas = s.nowMs, n
	if st.FirstSeenMs == 0 {
		st.FirstSeenMs = s.nowMs
	}
	if s.inputs == nil {
		s.inputs = make(map[string]SignalInput, len(pol.Signals))
	}
	clear(s.inputs)
	st.Signals = s.inputs
	for name := range pol.Signals {
		ss, ok := s.signals[name]
		if !ok {
			continue
		}
		in := SignalInput{}
		if ss.currentMs > 0 && s.nowMs-ss.currentMs <= stale {
			in.Current, in.HasCurrent = ss.current, true
		}
		if ss.forecast > 0 && s.nowMs-ss.forecast <= stale {
			in.Horizons, in.Fallback = ss.horizons, ss.fallback
		}
		st.Signals[name] = in
	}
	if l, ok := s.signals[schemas.SignalLatencyP99]; ok && l.currentMs > 0 && s.nowMs-l.currentMs <= stale {
		st.LatencyP99Ms, st.HasLatency = l.current, true
	}
	e, eok := s.signals[schemas.SignalErrorRate]
	q, qok := s.signals[schemas.SignalQPS]
	if eok && qok && e.currentMs > 0 && q.currentMs > 0 && s.nowMs-e.currentMs <= stale && s.nowMs-q.currentMs <= stale {
		st.ErrorRate, st.QPS, st.HasErrorRate = e.current, q.current, true
	}

	dec := Decide(st, pol)
	if Guard(dec.Reason.Guard) == GuardNoData {
		return Output{Guard: GuardNoData}
	}
	s.hist = Remember(st, pol, dec)
	s.hist.Signals = nil
	out := Output{Guard: Guard(dec.Reason.Guard)}
	if !dec.Change(n) {
		return out
	}
	if dec.Desired == s.lastTo && s.lastToMs > 0 && s.nowMs-s.lastToMs < d.cfg.RepeatSuppress.Milliseconds() {
		// Already asked for this count; the observed N lags while pods start.
		out.Guard = GuardRepeatSuppressed
		return out
	}
	seq := s.nowMs
	if seq <= s.lastSeq {
		seq = s.lastSeq + 1
	}
	s.lastSeq, s.lastTo, s.lastToMs = seq, dec.Desired, s.nowMs
	sd := &schemas.ScaleDecision{
		ID:         DecisionID(target, seq),
		Kind:       schemas.DecisionScale,
		Seq:        seq,
		Target:     target,
		Entity:     s.entity,
		AtMs:       s.nowMs,
		ExpiresMs:  s.nowMs + d.cfg.DecisionTTL.Milliseconds(),
		From:       n,
		To:         dec.Desired,
		DryRun:     d.cfg.DryRun,
		Reason:     dec.Reason,
		DecidedBy:  d.cfg.Source,
		ForecastID: forecastID,
	}
	out.Decision = sd
	out.Alerts = alertsFor(sd, dec, d.cfg)
	return out
}

// DecisionID is deterministic from (target, seq), so a replayed decision
// carries the id the actuator already recorded.
func DecisionID(t schemas.Target, seq int64) string {
	// Concatenation, not fmt: one allocation per decision at a burst.
	return "scale/" + t.Cluster + "/" + t.Namespace + "/" + t.Kind + "/" + t.Name + "/" + strconv.FormatInt(seq, 10)
}

func alertsFor(sd *schemas.ScaleDecision, dec Decision, cfg Config) []schemas.Alert {
	var out []schemas.Alert
	t := sd.Target
	vals := map[string]float64{"from": float64(sd.From), "to": float64(sd.To)}
	if dec.AtMax {
		out = append(out, schemas.Alert{
			ID: sd.ID + "/max_replicas", Severity: schemas.SeverityWarning, Kind: schemas.AlertMaxReplicas,
			Summary: fmt.Sprintf("%s wants more than max_replicas %d: %s", t.Key(), sd.To, dec.Reason.Summary),
			Target:  &t, Entity: sd.Entity, DecisionID: sd.ID, AtMs: sd.AtMs, Source: cfg.Source, Values: vals,
		})
	}
	if cfg.AlertScaleRatio > 0 && sd.From > 0 {
		ratio := math.Abs(float64(sd.To-sd.From)) / float64(sd.From)
		if ratio >= cfg.AlertScaleRatio {
			v := map[string]float64{"from": float64(sd.From), "to": float64(sd.To), "ratio": ratio}
			out = append(out, schemas.Alert{
				ID: sd.ID + "/scale_ratio", Severity: schemas.SeverityInfo, Kind: schemas.AlertScaleRatio,
				Summary: fmt.Sprintf("%s scaled %d → %d (%.0f%%): %s", t.Key(), sd.From, sd.To, ratio*100, dec.Reason.Summary),
				Target:  &t, Entity: sd.Entity, DecisionID: sd.ID, AtMs: sd.AtMs, Source: cfg.Source, Values: v,
			})
		}
	}
	return out
}

// Services returns how many services the decider tracks.
func (d *Decider) Services() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.services)
}

// Forget clears what the decider remembers about the last count it asked
// for on a service, so that inputs redelivered after a failed publish
// decide again instead of being suppressed as repeats.
func (d *Decider) Forget(entity string) {
	d.mu.RLock()
	s, ok := d.services[entity]
	d.mu.RUnlock()
	if ok {
		s.mu.Lock()
		s.lastTo, s.lastToMs = 0, 0
		s.mu.Unlock()
	}
}
