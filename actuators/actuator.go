package actuators

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/schemas"
)

// Actuator is the framework around the handlers: routing by ce_type,
// cluster filter, TTL, rate limit, retries, Kubernetes Events and metrics.
// It is safe for concurrent use.
type Actuator struct {
	cfg      Config
	cluster  string
	identity string
	kube     kubernetes.Interface
	reg      *Registry
	clock    Clock
	log      *slog.Logger
	m        *actMetrics
	// verifier checks signatures (Deps.Verifier); nil: none.
	verifier *decisionsig.Verifier

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	// sleep waits between retries (tests shorten it).
	sleep func(ctx context.Context, d time.Duration) error
}

type actMetrics struct {
	outcomes *prometheus.CounterVec
	bad      *prometheus.CounterVec
	ignored  prometheus.Counter
	retries  *prometheus.CounterVec
	latency  prometheus.Histogram
	eventErr prometheus.Counter
	leader   prometheus.Gauge
	rejected *prometheus.CounterVec
}

func newActMetrics(reg prometheus.Registerer) (*actMetrics, error) {
	m := &actMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_actuate_actions_total",
			Help: "Decisions handled, by kind, outcome and reason class (applied, duplicate, stale, expired, dry_run, error)."}, []string{"kind", "outcome", "why"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_actuate_bad_decisions_total",
			Help: "Decisions refused as input (dead-lettered), by reason (unknown_type, garbage, schema, out_of_range, future)."}, []string{"reason"}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_actuate_other_cluster_total",
			Help: "Decisions for other clusters, left to their actuators."}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_actuate_retries_total",
			Help: "Retried attempts, by cause (conflict, server)."}, []string{"cause"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ebbflow_actuate_apply_seconds",
			Help: "Wall time to handle one decision, retries included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		eventErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_actuate_event_errors_total",
			Help: "Kubernetes Events that could not be recorded."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_actuate_leader",
			Help: "1 while this replica holds the Lease and acts on decisions."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_actuate_rejected_decisions_total",
			Help: "Decisions refused before any handler saw them (dead-lettered), by signature reason (unsigned, malformed_signature, unknown_key, bad_signature, outside_window, replayed)."}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.outcomes, m.bad, m.ignored, m.retries, m.latency, m.eventErr, m.leader, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("actuators: register metrics: %w", err)
		}
	}
	for _, r := range decisionsig.Reasons {
		m.rejected.WithLabelValues(string(r))
	}
	for _, r := range BadReasons {
		m.bad.WithLabelValues(r)
	}
	return m, nil
}

// NewActuator builds the framework around the handlers in reg (required:
// the composition root, cmd/ebbflow/internal/wire.Handlers, lists them).
// clock nil means the wall clock; registerer nil means a private registry.
func NewActuator(cfg Config, cluster, identity string, kube kubernetes.Interface, reg *Registry, clock Clock, log *slog.Logger, registerer prometheus.Registerer) (*Actuator, error) {
	if reg == nil || len(reg.Types()) == 0 {
		return nil, errors.New("actuate: no handlers: pass a registry of decision handlers (Deps.Handlers)")
	}
	if clock == nil {
		clock = WallClock{}
	}
	if log == nil {
		log = slog.Default()
	}
	if registerer == nil {
		registerer = prometheus.NewRegistry()
	}
	m, err := newActMetrics(registerer)
	if err != nil {
		return nil, err
	}
	return &Actuator{cfg: cfg, cluster: cluster, identity: identity, kube: kube, reg: reg, clock: clock, log: log, m: m,
		limiters: map[string]*rate.Limiter{}, sleep: sleepCtx}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Verify checks a decision record's signature before it is routed to any
// handler, for every kind alike (no verifier: every record passes). A
// refused record is counted by reason; the error is a *decisionsig.Error
// and the caller dead-letters the record.
func (a *Actuator) Verify(r decisionsig.Record) error {
	if a.verifier == nil {
		return nil
	}
	err := a.verifier.Verify(r)
	if se := (*decisionsig.Error)(nil); errors.As(err, &se) {
		a.m.rejected.WithLabelValues(string(se.Reason)).Inc()
	}
	return err
}

// ErrUndecodable wraps a decision that could not be routed or decoded; the
// caller dead-letters it.
var ErrUndecodable = errors.New("undecodable decision")

// Reasons a decision is refused as input (the dead letter's reason and the
// label of ebbflow_actuate_bad_decisions_total). Signature rejections have
// their own reasons (decisionsig.Reasons).
const (
	// BadUnknownType: no handler for the record's ce_type (an unknown
	// decision kind, or no ce_type header).
	BadUnknownType = "unknown_type"
	// BadGarbage: the body is not JSON at all.
	BadGarbage = "garbage"
	// BadSchema: JSON that violates the kind's schema (a missing or
	// unknown field, a wrong type, another kind in the body); the error
	// names the field.
	BadSchema = "schema"
	// BadOutOfRange: a number outside its schema's bounds (negative
	// replicas or counts, seq 0); the error names the field.
	BadOutOfRange = "out_of_range"
	// BadFuture: at_ms more than max_future after the clock (it would
	// never expire).
	BadFuture = "future"
)

// BadReasons lists every reason of BadDecisionError.
var BadReasons = []string{BadUnknownType, BadGarbage, BadSchema, BadOutOfRange, BadFuture}

// BadDecisionError is a decision refused as input: Reason is one of
// BadReasons. It wraps ErrUndecodable.
type BadDecisionError struct {
	Reason string
	Err    error
}

func (e *BadDecisionError) Error() string { return e.Err.Error() }
func (e *BadDecisionError) Unwrap() error { return e.Err }

// bad counts and returns a refused decision.
func (a *Actuator) bad(reason, format string, args ...any) error {
	a.m.bad.WithLabelValues(reason).Inc()
	return &BadDecisionError{Reason: reason, Err: fmt.Errorf("%w: "+format, append([]any{ErrUndecodable}, args...)...)}
}

// decodeReason classifies a handler's decode error: not JSON (garbage), a
// number out of its bounds (out_of_range) or any other schema violation.
func decodeReason(err error) string {
	var ve *schemas.ValidationError
	if !errors.As(err, &ve) {
		return BadSchema
	}
	if strings.HasPrefix(ve.Reason, "not JSON") {
		return BadGarbage
	}
	for _, kw := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} {
		if strings.HasPrefix(ve.Reason, kw+":") {
			return BadOutOfRange
		}
	}
	return BadSchema
}

// Process handles one decision record: ceType is its ce_type header.
// It returns the action to publish, ok=false when the decision belongs to
// another cluster (nothing to publish), or a *BadDecisionError (wrapping
// ErrUndecodable) for input to dead-letter.
func (a *Actuator) Process(ctx context.Context, ceType string, body []byte) (act schemas.Action, ok bool, err error) {
	start := time.Now()
	h, found := a.reg.Handler(ceType)
	if !found {
		return act, false, a.bad(BadUnknownType, "no handler for ce_type %q (have %s)", ceType, strings.Join(a.reg.Types(), ", "))
	}
	d, err := h.Decode(body)
	if err != nil {
		return act, false, a.bad(decodeReason(err), "%s: %w", ceType, err)
	}
	if mf := a.cfg.MaxFuture; mf > 0 {
		if now := a.clock.Now(); d.AtMs > now.Add(mf).UnixMilli() {
			return act, false, a.bad(BadFuture, "%s %s: too far in the future: at_ms %d (%s) is more than max_future %s after the clock (%s)", ceType, d.ID,
				d.AtMs, time.UnixMilli(d.AtMs).UTC().Format(time.RFC3339), mf, now.UTC().Format(time.RFC3339))
		}
	}
	if d.Target.Cluster != a.cluster {
		a.m.ignored.Inc()
		return act, false, nil
	}
	if a.cfg.DryRun {
		d.DryRun = true
	}
	why := ""
	attempts := 0
	now := a.clock.Now()
	switch {
	case d.ExpiresMs > 0 && now.UnixMilli() > d.ExpiresMs:
		act = Skipped(d, fmt.Sprintf("expired: expires_ms %d is %s before now %d", d.ExpiresMs,
			time.Duration(now.UnixMilli()-d.ExpiresMs)*time.Millisecond, now.UnixMilli()))
		why = "expired"
	default:
		if err := a.limiter(d.Target.Cluster).Wait(ctx); err != nil {
			return act, false, fmt.Errorf("actuators: rate limit for %s: %w", d.ID, err)
		}
		act, attempts, err = a.applyWithRetry(ctx, h, d)
		if err != nil {
			if ctx.Err() != nil {
				return act, false, ctx.Err()
			}
			act = schemas.Action{Outcome: schemas.OutcomeFailed, Reason: "error after retries", Error: err.Error(), DryRun: d.DryRun}
			why = "error"
		}
	}
	if why == "" {
		why = classify(act)
	}
	act.ID = d.ID + "/" + act.Outcome + "/" + why
	act.DecisionID, act.DecisionKind, act.Seq, act.Target = d.ID, d.Kind, d.Seq, d.Target
	act.AtMs = a.clock.Now().UnixMilli()
	act.Attempts = attempts
	act.Actuator = a.identity
	a.m.outcomes.WithLabelValues(d.Kind, act.Outcome, why).Inc()
	a.m.latency.Observe(time.Since(start).Seconds())
	a.log.Info("action", "decision", d.ID, "target", d.Target.Key(), "outcome", act.Outcome, "reason", act.Reason, "error", act.Error, "attempts", attempts)
	if a.cfg.Events {
		a.recordEvent(ctx, d, act)
	}
	return act, true, nil
}

func classify(act schemas.Action) string {
	switch {
	case act.Outcome == schemas.OutcomeApplied:
		return "applied"
	case strings.HasPrefix(act.Reason, "duplicate"):
		return "duplicate"
	case strings.HasPrefix(act.Reason, "stale"):
		return "stale"
	case strings.HasPrefix(act.Reason, "dry run"):
		return "dry_run"
	}
	return "other"
}

func (a *Actuator) limiter(cluster string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.limiters[cluster]
	if !ok {
		l = rate.NewLimiter(rate.Limit(a.cfg.RateLimit), a.cfg.RateBurst)
		a.limiters[cluster] = l
	}
	return l
}

// Retryable reports whether an API error is worth retrying: a conflict
// (someone else changed the object), 429, or a server-side 5xx/timeout.
func Retryable(err error) (bool, string) {
	switch {
	case apierrors.IsConflict(err):
		return true, "conflict"
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return true, "server"
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code >= 500 {
		return true, "server"
	}
	return false, ""
}

func (a *Actuator) applyWithRetry(ctx context.Context, h Handler, d Decision) (schemas.Action, int, error) {
	backoff := a.cfg.Retry.InitialBackoff
	var lastErr error
	for attempt := 1; attempt <= a.cfg.Retry.Attempts; attempt++ {
		act, err := h.Apply(ctx, d)
		if err == nil {
			return act, attempt, nil
		}
		lastErr = err
		retry, cause := Retryable(err)
		if !retry || attempt == a.cfg.Retry.Attempts {
			return act, attempt, fmt.Errorf("decision %s on %s (attempt %d): %w", d.ID, d.Target.Key(), attempt, err)
		}
		a.m.retries.WithLabelValues(cause).Inc()
		a.log.Debug("retrying", "decision", d.ID, "cause", cause, "attempt", attempt, "err", err)
		if err := a.sleep(ctx, backoff); err != nil {
			return act, attempt, err
		}
		backoff = min(backoff*2, a.cfg.Retry.MaxBackoff)
	}
	return schemas.Action{}, a.cfg.Retry.Attempts, lastErr
}

// recordEvent creates an events.k8s.io/v1 Event on the target, so
// `kubectl describe` shows why it was (or was not) scaled. Best effort:
// a failure is counted and logged.
func (a *Actuator) recordEvent(ctx context.Context, d Decision, act schemas.Action) {
	if d.Target.Namespace == "" {
		// A cluster-scoped target (a node group) is no object to attach
		// an Event to; its handler records Events on the nodes it changes.
		return
	}
	typ, reason := corev1.EventTypeNormal, "EbbflowScaled"
	if d.Kind != schemas.DecisionScale {
		reason = "EbbflowApplied"
	}
	switch act.Outcome {
	case schemas.OutcomeSkipped:
		reason = "EbbflowSkipped"
	case schemas.OutcomeFailed:
		typ, reason = corev1.EventTypeWarning, "EbbflowFailed"
	}
	note := act.Reason
	if act.Error != "" {
		note += ": " + act.Error
	}
	note = fmt.Sprintf("decision %s: %s", d.ID, note)
	if len(note) > 1000 {
		note = note[:1000]
	}
	now := a.clock.Now()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// Named from the action id: a redelivered decision finds its
			// Event already there instead of adding a second one.
			Name:      eventName(d.Target.Name, act.ID),
			Namespace: d.Target.Namespace,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: "ebbflow.io/actuator",
		ReportingInstance:   a.identity,
		Action:              "Scale",
		Reason:              reason,
		Type:                typ,
		Note:                note,
		Regarding: corev1.ObjectReference{
			APIVersion: "apps/v1", Kind: d.Target.Kind, Namespace: d.Target.Namespace, Name: d.Target.Name,
		},
	}
	if d.Kind != schemas.DecisionScale {
		ev.Action = d.Kind
	}
	if _, err := a.kube.EventsV1().Events(d.Target.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		a.m.eventErr.Inc()
		a.log.Warn("record Kubernetes event", "decision", d.ID, "target", d.Target.Key(), "err", err)
	}
}

func eventName(object, actionID string) string {
	h := fnv.New64a()
	h.Write([]byte(actionID))
	name := strings.ToLower(object)
	if len(name) > 200 {
		name = name[:200]
	}
	return fmt.Sprintf("%s.ebbflow.%016x", name, h.Sum64())
}
