package actuators

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Annotations the actuator records on every object it acts on.
const (
	AnnotationLastDecisionID  = "ebbflow.io/last-decision-id"
	AnnotationLastDecisionSeq = "ebbflow.io/last-decision-seq"
	AnnotationLastAction      = "ebbflow.io/last-action"
)

// Decision is a decoded decision of any kind: the fields the framework
// needs (idempotency, TTL, routing) and the kind-specific event.
type Decision struct {
	Kind      string
	ID        string
	Seq       int64
	Target    schemas.Target
	AtMs      int64
	ExpiresMs int64
	// DryRun is set by the decision or by the actuator's configuration;
	// a handler in dry run reads and reports but writes nothing.
	DryRun bool
	// Event is the decision itself, e.g. schemas.ScaleDecision.
	Event schemas.Event
}

// Handler carries out one decision kind. Apply returns the action (its
// Outcome applied or skipped; the framework fills ID, actuator, time and
// attempts) or an error; errors for which Retryable is true are retried
// with backoff, others end as a failed action.
type Handler interface {
	// Decode validates and decodes a decision body.
	Decode(body []byte) (Decision, error)
	// Apply acts on the target, idempotently: a decision whose id or
	// sequence is already recorded on the object is skipped.
	Apply(ctx context.Context, d Decision) (schemas.Action, error)
}

// Registry maps CloudEvents types to handlers, so new decision kinds plug
// in. It is safe for concurrent use.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[string]Handler{}} }

// Register adds the handler of a CloudEvents type (e.g.
// "io.ebbflow.decision.scale.v1"), replacing any earlier one.
func (r *Registry) Register(ceType string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[ceType] = h
}

// Handler returns the handler of a CloudEvents type.
func (r *Registry) Handler(ceType string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.m[ceType]
	return h, ok
}

// Types lists the registered CloudEvents types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.m))
	for t := range r.m {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Clock tells the time TTLs are checked against: the wall clock in
// production, simulated time under `ebbflow dev --speed`.
type Clock interface{ Now() time.Time }

// WallClock is the system clock.
type WallClock struct{}

// Now implements Clock.
func (WallClock) Now() time.Time { return time.Now() }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now implements Clock.
func (f ClockFunc) Now() time.Time { return f() }

// Skipped is the action of a decision a handler does not carry out (a
// duplicate, a stale sequence, a dry run): outcome skipped with the reason.
func Skipped(d Decision, reason string) schemas.Action {
	return schemas.Action{Outcome: schemas.OutcomeSkipped, Reason: reason, DryRun: d.DryRun}
}

// RecordedDecision reads the idempotency annotations of an object: the id
// and sequence of the decision last applied to it ("" and 0 when none).
func RecordedDecision(ann map[string]string) (id string, seq int64) {
	if s := ann[AnnotationLastDecisionSeq]; s != "" {
		fmt.Sscan(s, &seq)
	}
	return ann[AnnotationLastDecisionID], seq
}

// IdempotencyCheck says why a decision must be skipped on an object with
// these annotations: a duplicate (its id is the one recorded) or stale (its
// sequence is not above the recorded one). "" means apply it. Every handler
// calls it before acting, and records DecisionAnnotations after.
func IdempotencyCheck(d Decision, ann map[string]string) string {
	lastID, lastSeq := RecordedDecision(ann)
	switch {
	case lastID == d.ID:
		return fmt.Sprintf("duplicate: decision %s already applied", d.ID)
	case d.Seq <= lastSeq:
		return fmt.Sprintf("stale: seq %d is not above the last applied seq %d (%s)", d.Seq, lastSeq, lastID)
	}
	return ""
}

// DecisionAnnotations are the annotations a handler records on the object
// it acted on: the decision id and sequence (read by IdempotencyCheck) and
// a one-line description of the action.
func DecisionAnnotations(d Decision, action string) map[string]string {
	return map[string]string{
		AnnotationLastDecisionID:  d.ID,
		AnnotationLastDecisionSeq: strconv.FormatInt(d.Seq, 10),
		AnnotationLastAction:      action,
	}
}
