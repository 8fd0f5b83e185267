package schemas

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is implemented by every JSON event type. The methods give what the
// CloudEvents headers and the Kafka key are made of.
type Event interface {
	// EventType is the CloudEvents type, e.g. "io.ebbflow.window.v1".
	EventType() string
	// EventID is unique per event (deterministic where the producer can make
	// it so, so that a replayed event carries the same id).
	EventID() string
	// EventTime is the event-time the event is about.
	EventTime() time.Time
	// EventKey is the Kafka key: the entity for metrics and forecasts, the
	// target object for decisions and actions.
	EventKey() string
}

// Signal names: ebbflow's canonical per-entity signals.
const (
	SignalCPU         = "cpu"
	SignalMemory      = "memory"
	SignalGPUUtil     = "gpu_util"
	SignalGPUMemory   = "gpu_memory"
	SignalQPS         = "qps"
	SignalLatencyP99  = "latency_p99"
	SignalErrorRate   = "error_rate"
	SignalPendingPods = "pending_pods"
	SignalReplicas    = "replicas"
)

// Signals lists every canonical signal.
var Signals = []string{SignalCPU, SignalMemory, SignalGPUUtil, SignalGPUMemory, SignalQPS, SignalLatencyP99, SignalErrorRate, SignalPendingPods, SignalReplicas}

// Value kinds of a raw sample: how the window processor aggregates it.
const (
	KindGauge   = "gauge"
	KindCounter = "counter"
)

// Entity keys. A service is svc/<cluster>/<namespace>/<workload>, a node is
// node/<cluster>/<node>.
const (
	EntityService = "svc"
	EntityNode    = "node"
)

// ServiceEntity builds the entity key of a workload.
func ServiceEntity(cluster, namespace, workload string) string {
	return EntityService + "/" + cluster + "/" + namespace + "/" + workload
}

// NodeEntity builds the entity key of a node.
func NodeEntity(cluster, node string) string {
	return EntityNode + "/" + cluster + "/" + node
}

// ParseServiceEntity splits svc/<cluster>/<namespace>/<workload>.
func ParseServiceEntity(entity string) (cluster, namespace, workload string, err error) {
	parts := strings.Split(entity, "/")
	if len(parts) != 4 || parts[0] != EntityService || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return "", "", "", fmt.Errorf("schemas: entity %q is not svc/<cluster>/<namespace>/<workload>", entity)
	}
	return parts[1], parts[2], parts[3], nil
}

// Window is one closed (or, after late data, revised) tumbling event-time
// window of one signal of one entity. Topic metrics.windows, key = Entity.
type Window struct {
	Entity  string `json:"entity"`
	Signal  string `json:"signal"`
	Kind    string `json:"kind"`
	SizeS   int64  `json:"size_s"`
	StartMs int64  `json:"start_ms"`
	EndMs   int64  `json:"end_ms"`
	// Revision is 0 for the first emission and grows each time late data
	// within the allowed lateness updates the window.
	Revision int     `json:"revision"`
	Count    int64   `json:"count"`
	Sum      float64 `json:"sum"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Mean     float64 `json:"mean"`
	Last     float64 `json:"last"`
	P50      float64 `json:"p50"`
	P95      float64 `json:"p95"`
	P99      float64 `json:"p99"`
	// Rate is the per-second increase of a counter over the window, with
	// counter resets handled; nil for gauges.
	Rate *float64 `json:"rate,omitempty"`
}

// EventType implements Event.
func (w Window) EventType() string { return "io.ebbflow.window.v1" }

// EventID implements Event: deterministic, so a re-emitted window has the same id.
func (w Window) EventID() string {
	// entity|signal|size_s|start_ms|r<revision>, without fmt: the window
	// processor names every window it emits (ce_id).
	b := make([]byte, 0, len(w.Entity)+len(w.Signal)+48)
	b = append(append(b, w.Entity...), '|')
	b = append(append(b, w.Signal...), '|')
	b = append(strconv.AppendInt(b, w.SizeS, 10), '|')
	b = append(strconv.AppendInt(b, w.StartMs, 10), "|r"...)
	return string(strconv.AppendInt(b, int64(w.Revision), 10))
}

// EventTime implements Event: the window end.
func (w Window) EventTime() time.Time { return time.UnixMilli(w.EndMs).UTC() }

// EventKey implements Event.
func (w Window) EventKey() string { return w.Entity }

// CompareWindows orders windows by entity, signal, size and start (the
// order of the window processor's output and of history reads); for
// slices.SortFunc.
func CompareWindows(a, b *Window) int {
	if c := strings.Compare(a.Entity, b.Entity); c != 0 {
		return c
	}
	if c := strings.Compare(a.Signal, b.Signal); c != 0 {
		return c
	}
	if c := cmp.Compare(a.SizeS, b.SizeS); c != 0 {
		return c
	}
	return cmp.Compare(a.StartMs, b.StartMs)
}

// Value is the number forecasts and decisions use for the window: the rate
// for counters, the mean for gauges.
func (w Window) Value() float64 {
	if w.Rate != nil {
		return *w.Rate
	}
	return w.Mean
}

// HorizonValue is the forecast for one horizon.
type HorizonValue struct {
	Minutes int     `json:"minutes"`
	AtMs    int64   `json:"at_ms"`
	Value   float64 `json:"value"`
}

// ModelRef names the model that produced a forecast.
type ModelRef struct {
	ID          string `json:"id"`
	Version     string `json:"version"`
	FeatureSpec string `json:"feature_spec"`
}

// Fallback methods a forecast may use when no model can score.
const (
	FallbackNone          = ""
	FallbackLastValue     = "last_value"
	FallbackSeasonalNaive = "seasonal_naive"
)

// Forecast predicts one signal of one entity 1–5 minutes past the window
// that triggered it. Topic forecasts, key = Entity.
type Forecast struct {
	ID       string `json:"id"`
	Entity   string `json:"entity"`
	Signal   string `json:"signal"`
	OriginMs int64  `json:"origin_ms"`
	StepS    int64  `json:"step_s"`
	// Observed is the value of the window the forecast starts from.
	Observed float64        `json:"observed"`
	Horizons []HorizonValue `json:"horizons"`
	Model    ModelRef       `json:"model"`
	// Fallback is empty when a model scored, else the baseline used, with
	// FallbackReason saying why.
	Fallback       string `json:"fallback,omitempty"`
	FallbackReason string `json:"fallback_reason,omitempty"`
}

// EventType implements Event.
func (f Forecast) EventType() string { return "io.ebbflow.forecast.v1" }

// EventID implements Event.
func (f Forecast) EventID() string { return f.ID }

// EventTime implements Event: the forecast origin.
func (f Forecast) EventTime() time.Time { return time.UnixMilli(f.OriginMs).UTC() }

// EventKey implements Event.
func (f Forecast) EventKey() string { return f.Entity }

// Target is the Kubernetes object a decision is about.
type Target struct {
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
}

// Key is the Kafka key of decisions and actions about the target.
func (t Target) Key() string {
	return t.Cluster + "/" + t.Namespace + "/" + t.Kind + "/" + t.Name
}

// Decision kinds. Each has its own schema (json/decision.<kind>.schema.json).
const (
	DecisionScale = "scale"
)

// DecisionKinds lists every decision kind with a schema.
var DecisionKinds = []string{DecisionScale, DecisionNodes, DecisionInference, DecisionTraining}

// SignalDemand is what one signal asked for in a scaling decision.
type SignalDemand struct {
	Signal string `json:"signal"`
	// Current is the observed per-replica utilisation (or QPS per replica).
	Current float64 `json:"current"`
	// Predicted is the forecast for the horizon covering start-up.
	Predicted float64 `json:"predicted"`
	// Used is the value the formula used: the larger of predicted and
	// current when the reactive value demands more.
	Used       float64 `json:"used"`
	ExpectRate float64 `json:"expect_rate"`
	Desired    int32   `json:"desired"`
	Source     string  `json:"source"`
}

// Reason explains a decision to a person asking "why?".
type Reason struct {
	Summary string `json:"summary"`
	// Formula is the rule applied, with the numbers substituted.
	Formula string `json:"formula"`
	// Guard names the guard that had the last word ("" when none did).
	Guard          string         `json:"guard,omitempty"`
	HorizonMinutes int            `json:"horizon_minutes"`
	Demands        []SignalDemand `json:"demands"`
	// Inputs holds the other numbers the decision read (latency, error
	// rate, thresholds, bounds).
	Inputs map[string]float64 `json:"inputs,omitempty"`
}

// ScaleDecision sets the replica count of a Deployment or StatefulSet.
// Topic decisions, key = Target.Key().
type ScaleDecision struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Seq grows per target; actuators skip a decision whose Seq is not
	// above the last one they applied to the target.
	Seq        int64  `json:"seq"`
	Target     Target `json:"target"`
	Entity     string `json:"entity"`
	AtMs       int64  `json:"at_ms"`
	ExpiresMs  int64  `json:"expires_ms"`
	From       int32  `json:"from"`
	To         int32  `json:"to"`
	DryRun     bool   `json:"dry_run,omitempty"`
	Reason     Reason `json:"reason"`
	DecidedBy  string `json:"decided_by"`
	ForecastID string `json:"forecast_id,omitempty"`
}

// EventType implements Event.
func (d ScaleDecision) EventType() string { return "io.ebbflow.decision.scale.v1" }

// EventID implements Event.
func (d ScaleDecision) EventID() string { return d.ID }

// EventTime implements Event.
func (d ScaleDecision) EventTime() time.Time { return time.UnixMilli(d.AtMs).UTC() }

// EventKey implements Event.
func (d ScaleDecision) EventKey() string { return d.Target.Key() }

// Action outcomes.
const (
	OutcomeApplied = "applied"
	OutcomeSkipped = "skipped"
	OutcomeFailed  = "failed"
)

// Action is the outcome of one decision. Topic actions, key = Target.Key().
type Action struct {
	ID           string `json:"id"`
	DecisionID   string `json:"decision_id"`
	DecisionKind string `json:"decision_kind"`
	Seq          int64  `json:"seq"`
	Target       Target `json:"target"`
	Outcome      string `json:"outcome"`
	// Reason says why it was skipped or what was done.
	Reason   string `json:"reason"`
	Error    string `json:"error,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
	AtMs     int64  `json:"at_ms"`
	Attempts int    `json:"attempts"`
	Actuator string `json:"actuator"`
	// Before and After are the replica counts observed and set (scale only).
	Before *int32 `json:"before,omitempty"`
	After  *int32 `json:"after,omitempty"`
}

// EventType implements Event.
func (a Action) EventType() string { return "io.ebbflow.action.v1" }

// EventID implements Event.
func (a Action) EventID() string { return a.ID }

// EventTime implements Event.
func (a Action) EventTime() time.Time { return time.UnixMilli(a.AtMs).UTC() }

// EventKey implements Event.
func (a Action) EventKey() string { return a.Target.Key() }

// DeadLetter carries input that could not be processed, with the reason,
// so nothing bad disappears. Topic deadletter, key = the original key.
type DeadLetter struct {
	ID        string `json:"id"`
	Source    string `json:"source"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key,omitempty"`
	// Reason is a short machine-friendly cause ("late", "decode", "schema").
	Reason string `json:"reason"`
	Error  string `json:"error"`
	AtMs   int64  `json:"at_ms"`
	// Payload is the original bytes (base64 in JSON); may be truncated.
	Payload []byte `json:"payload,omitempty"`
}

// EventType implements Event.
func (d DeadLetter) EventType() string { return "io.ebbflow.deadletter.v1" }

// EventID implements Event.
func (d DeadLetter) EventID() string { return d.ID }

// EventTime implements Event.
func (d DeadLetter) EventTime() time.Time { return time.UnixMilli(d.AtMs).UTC() }

// EventKey implements Event.
func (d DeadLetter) EventKey() string { return d.Key }
