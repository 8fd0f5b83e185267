package ui

import (
	"fmt"
	"sort"
	"sync"

	"github.com/ebbflow/ebbflow/schemas"
)

// Update tells the event stream's subscribers what changed: the kind of
// event (window, forecast, decision, nodes, training, inference, action,
// alert) and the service entity or node group it is about ("" when none).
type Update struct {
	Kind   string `json:"kind"`
	Entity string `json:"entity,omitempty"`
	Group  string `json:"group,omitempty"`
	Seq    int64  `json:"seq"`
}

// ring is a bounded list keeping the newest n items.
type ring[T any] struct {
	n     int
	items []T
}

func (r *ring[T]) add(v T) {
	r.items = append(r.items, v)
	if len(r.items) > r.n {
		// Drop the oldest quarter at once, so appends stay cheap.
		drop := len(r.items) - r.n + r.n/4
		r.items = append(r.items[:0:0], r.items[drop:]...)
	}
}

func (r *ring[T]) list() []T { return append([]T(nil), r.items...) }

// service is what the store keeps of one service.
type service struct {
	qps       map[int64]schemas.Window // by start, highest revision
	replicas  map[int64]schemas.Window
	forecasts ring[schemas.Forecast]
	decisions ring[schemas.ScaleDecision]
	latest    int64 // newest window end (ms)
}

// Store is the bounded in-memory record of recent events the pages show,
// fed by the topic consumer (or a test). It is safe for concurrent use.
type Store struct {
	perService, recent int

	mu        sync.Mutex
	services  map[string]*service
	nodes     ring[schemas.NodesDecision]
	training  ring[schemas.TrainingDecision]
	inference ring[schemas.InferenceDecision]
	actions   ring[schemas.Action]
	alerts    ring[schemas.Alert]
	bad       int
	seq       int64
	subs      map[chan Update]struct{}
}

// NewStore keeps perService events of each kind per service and recent
// events of the other kinds.
func NewStore(perService, recent int) *Store {
	return &Store{perService: perService, recent: recent, services: map[string]*service{},
		nodes: ring[schemas.NodesDecision]{n: recent}, training: ring[schemas.TrainingDecision]{n: recent},
		inference: ring[schemas.InferenceDecision]{n: recent}, actions: ring[schemas.Action]{n: recent},
		alerts: ring[schemas.Alert]{n: recent}, subs: map[chan Update]struct{}{}}
}

func (s *Store) svc(entity string) *service {
	v := s.services[entity]
	if v == nil {
		v = &service{qps: map[int64]schemas.Window{}, replicas: map[int64]schemas.Window{},
			forecasts: ring[schemas.Forecast]{n: s.perService}, decisions: ring[schemas.ScaleDecision]{n: s.perService}}
		s.services[entity] = v
	}
	return v
}

// Topic record kinds Add understands, besides the topics' base names.
const kindAlert = "alert"

// Add decodes and validates one record of a topic (its base name, e.g.
// schemas.TopicForecasts, or "alert" for the alerts stream) whose
// CloudEvents type is ceType, and keeps it. A record that does not decode
// is counted (Undecodable) and returned as an error; nothing is kept.
func (s *Store) Add(base, ceType string, value []byte) error {
	var (
		u   Update
		err error
	)
	switch base {
	case schemas.TopicMetricsWindows:
		var w schemas.Window
		if w, err = schemas.Decode[schemas.Window](value); err == nil {
			u, err = s.AddWindow(w)
		}
	case schemas.TopicForecasts:
		var f schemas.Forecast
		if f, err = schemas.Decode[schemas.Forecast](value); err == nil {
			u = s.AddForecast(f)
		}
	case schemas.TopicDecisions:
		switch ceType {
		case schemas.ScaleDecision{}.EventType():
			var d schemas.ScaleDecision
			if d, err = schemas.Decode[schemas.ScaleDecision](value); err == nil {
				u = s.AddScale(d)
			}
		case schemas.NodesDecision{}.EventType():
			var d schemas.NodesDecision
			if d, err = schemas.Decode[schemas.NodesDecision](value); err == nil {
				u = s.AddNodes(d)
			}
		case schemas.TrainingDecision{}.EventType():
			var d schemas.TrainingDecision
			if d, err = schemas.Decode[schemas.TrainingDecision](value); err == nil {
				u = s.AddTraining(d)
			}
		case schemas.InferenceDecision{}.EventType():
			var d schemas.InferenceDecision
			if d, err = schemas.Decode[schemas.InferenceDecision](value); err == nil {
				u = s.AddInference(d)
			}
		default:
			err = fmt.Errorf("ui: decision of unknown type %q", ceType)
		}
	case schemas.TopicActions:
		var a schemas.Action
		if a, err = schemas.Decode[schemas.Action](value); err == nil {
			u = s.AddAction(a)
		}
	case kindAlert:
		var a schemas.Alert
		if a, err = schemas.Decode[schemas.Alert](value); err == nil {
			u = s.AddAlert(a)
		}
	default:
		err = fmt.Errorf("ui: records of %q are not read", base)
	}
	if err != nil {
		s.mu.Lock()
		s.bad++
		s.mu.Unlock()
		return err
	}
	if u.Kind != "" {
		s.publish(u)
	}
	return nil
}

// AddWindow keeps a service's qps and replicas windows (the highest
// revision of each); other signals and entities are not shown.
func (s *Store) AddWindow(w schemas.Window) (Update, error) {
	if w.Signal != schemas.SignalQPS && w.Signal != schemas.SignalReplicas {
		return Update{}, nil
	}
	if _, _, _, err := schemas.ParseServiceEntity(w.Entity); err != nil {
		return Update{}, nil // node windows are not charted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.svc(w.Entity)
	m := v.qps
	if w.Signal == schemas.SignalReplicas {
		m = v.replicas
	}
	if old, ok := m[w.StartMs]; ok && old.Revision > w.Revision {
		return Update{}, nil
	}
	m[w.StartMs] = w
	if len(m) > s.perService {
		keys := sortedKeys(m)
		for _, k := range keys[:len(keys)-s.perService] {
			delete(m, k)
		}
	}
	v.latest = max(v.latest, w.EndMs)
	return Update{Kind: "window", Entity: w.Entity}, nil
}

// AddForecast keeps a service's qps forecasts.
func (s *Store) AddForecast(f schemas.Forecast) Update {
	if f.Signal != schemas.SignalQPS {
		return Update{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.svc(f.Entity).forecasts.add(f)
	return Update{Kind: "forecast", Entity: f.Entity}
}

// AddScale keeps a scale decision under its service.
func (s *Store) AddScale(d schemas.ScaleDecision) Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.svc(d.Entity).decisions.add(d)
	return Update{Kind: "decision", Entity: d.Entity}
}

// AddNodes keeps a node-group decision.
func (s *Store) AddNodes(d schemas.NodesDecision) Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes.add(d)
	return Update{Kind: "nodes", Group: d.Group}
}

// AddTraining keeps a training decision.
func (s *Store) AddTraining(d schemas.TrainingDecision) Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.training.add(d)
	return Update{Kind: "training"}
}

// AddInference keeps an inference (model server) decision.
func (s *Store) AddInference(d schemas.InferenceDecision) Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inference.add(d)
	return Update{Kind: "inference"}
}

// AddAction keeps an action.
func (s *Store) AddAction(a schemas.Action) Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions.add(a)
	return Update{Kind: "action"}
}

// AddAlert keeps an alert.
func (s *Store) AddAlert(a schemas.Alert) Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts.add(a)
	return Update{Kind: "alert", Entity: a.Entity}
}

// Undecodable is how many records did not decode or validate.
func (s *Store) Undecodable() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

// Subscribe returns a channel of updates and its cancel function. A slow
// subscriber misses updates (the channel is buffered, sends never block);
// every update makes it re-read the store, so none is lost for good.
func (s *Store) Subscribe() (<-chan Update, func()) {
	ch := make(chan Update, 64)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *Store) publish(u Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	u.Seq = s.seq
	for ch := range s.subs {
		select {
		case ch <- u:
		default:
		}
	}
}

// ServiceView is a copy of what the store holds of one service.
type ServiceView struct {
	Entity    string
	QPS       []schemas.Window // by start
	Replicas  []schemas.Window
	Forecasts []schemas.Forecast // by origin
	Decisions []schemas.ScaleDecision
	LatestMs  int64
}

// Service returns the service's events, sorted by time.
func (s *Store) Service(entity string) (ServiceView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.services[entity]
	if v == nil {
		return ServiceView{Entity: entity}, false
	}
	out := ServiceView{Entity: entity, Forecasts: v.forecasts.list(), Decisions: v.decisions.list(), LatestMs: v.latest}
	for _, k := range sortedKeys(v.qps) {
		out.QPS = append(out.QPS, v.qps[k])
	}
	for _, k := range sortedKeys(v.replicas) {
		out.Replicas = append(out.Replicas, v.replicas[k])
	}
	sort.SliceStable(out.Forecasts, func(i, j int) bool { return out.Forecasts[i].OriginMs < out.Forecasts[j].OriginMs })
	sort.SliceStable(out.Decisions, func(i, j int) bool { return out.Decisions[i].AtMs < out.Decisions[j].AtMs })
	return out, true
}

// Services lists the services' entities, sorted.
func (s *Store) Services() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.services))
	for e := range s.services {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// Recent is a copy of the store's global lists, each sorted by time.
type Recent struct {
	Nodes     []schemas.NodesDecision
	Training  []schemas.TrainingDecision
	Inference []schemas.InferenceDecision
	Actions   []schemas.Action
	Alerts    []schemas.Alert
	Scale     []schemas.ScaleDecision // every service's, newest services' last decisions
}

// Recent returns the global lists.
func (s *Store) Recent() Recent {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Recent{Nodes: s.nodes.list(), Training: s.training.list(), Inference: s.inference.list(),
		Actions: s.actions.list(), Alerts: s.alerts.list()}
	for _, v := range s.services {
		r.Scale = append(r.Scale, v.decisions.items...)
	}
	sort.SliceStable(r.Nodes, func(i, j int) bool { return r.Nodes[i].AtMs < r.Nodes[j].AtMs })
	sort.SliceStable(r.Training, func(i, j int) bool { return r.Training[i].AtMs < r.Training[j].AtMs })
	sort.SliceStable(r.Inference, func(i, j int) bool { return r.Inference[i].AtMs < r.Inference[j].AtMs })
	sort.SliceStable(r.Actions, func(i, j int) bool { return r.Actions[i].AtMs < r.Actions[j].AtMs })
	sort.SliceStable(r.Alerts, func(i, j int) bool { return r.Alerts[i].AtMs < r.Alerts[j].AtMs })
	sort.SliceStable(r.Scale, func(i, j int) bool { return r.Scale[i].AtMs < r.Scale[j].AtMs })
	return r
}

func sortedKeys[V any](m map[int64]V) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func sortStrings(xs []string) { sort.Strings(xs) }
