package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/schemas"
)

// Deps are what Run needs besides its configuration.
type Deps struct {
	// Kafka is the connection section (brokers, topic prefix, TLS/SASL).
	Kafka kafkax.Config
	// Cluster names this cluster: Workloads are looked up for its services.
	Cluster string
	// Workloads gives N and annotation policies; nil takes N from the
	// replicas signal (see NewWorkloadInformer).
	Workloads WorkloadLister
	// JetStream publishes decisions and alerts; nil publishes to Kafka only.
	JetStream jetstream.JetStream
	// Log and Registerer default to slog.Default() and a throwaway registry.
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// Ready, when set, is called once the consumer group has joined.
	Ready func()
}

// metrics are the decider's Prometheus metrics.
type metrics struct {
	inputs    *prometheus.CounterVec
	bad       *prometheus.CounterVec
	decisions *prometheus.CounterVec
	guards    *prometheus.CounterVec
	alerts    *prometheus.CounterVec
	pubErrs   *prometheus.CounterVec
	latency   prometheus.Histogram
	services  prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, d *Decider) (*metrics, error) {
	m := &metrics{
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_decide_inputs_total",
			Help: "Windows and forecasts consumed, by topic."}, []string{"topic"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_decide_bad_input_total",
			Help: "Inputs that failed to decode or validate (sent to the dead-letter topic), by reason."}, []string{"reason"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_decide_decisions_total",
			Help: "Scale decisions emitted, by direction (up, down)."}, []string{"direction"}),
		guards: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_decide_guards_total",
			Help: "Evaluations where a guard had the last word, by guard."}, []string{"guard"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_decide_alerts_total",
			Help: "Alerts published, by kind."}, []string{"kind"}),
		pubErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_decide_publish_errors_total",
			Help: "Failed publishes, by sink (kafka, nats)."}, []string{"sink"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ebbflow_decide_decision_latency_seconds",
			Help:    "Wall time from consuming the input to the decision acknowledged by Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	m.services = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ebbflow_decide_services",
		Help: "Services the decider tracks."}, func() float64 { return float64(d.Services()) })
	for _, c := range []prometheus.Collector{m.inputs, m.bad, m.decisions, m.guards, m.alerts, m.pubErrs, m.latency, m.services} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("scaling: register metrics: %w", err)
		}
	}
	return m, nil
}

// Run consumes forecasts and metrics.windows, decides per service and
// publishes each decision to the decisions topic (key = target) and to
// NATS ebbflow.decisions.scale.<cluster>.<namespace>, and alerts to
// ebbflow.alerts.<severity>.<kind>. It returns when ctx ends (nil) or on
// a fatal Kafka error.
//
// Delivery is at least once: an input's offset is committed after its
// decision is acknowledged; a redelivered decision carries the same id
// (from target and seq) and the actuator skips it as a duplicate.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("decide: %w", err)
	}
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	reg := deps.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	dec := NewDecider(cfg, deps.Cluster, deps.Workloads)
	m, err := newMetrics(reg, dec)
	if err != nil {
		return err
	}
	topics := deps.Kafka.Topics()
	in := []string{topics.Name(schemas.TopicForecasts), topics.Name(schemas.TopicMetricsWindows)}
	out := topics.Name(schemas.TopicDecisions)
	dead := topics.Name(schemas.TopicDeadLetter)
	if err := kafkax.EnsureTopics(ctx, deps.Kafka, append(in, out, dead)...); err != nil {
		return fmt.Errorf("decide: %w", err)
	}
	if deps.JetStream != nil {
		if err := natsbus.EnsureStreams(ctx, deps.JetStream, 7*24*time.Hour); err != nil {
			return fmt.Errorf("decide: %w", err)
		}
	}

	sc, err := deps.Kafka.Sarama()
	if err != nil {
		return fmt.Errorf("decide: %w", err)
	}
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Retry.Max = 10
	sc.Net.MaxOpenRequests = 1
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	if cfg.InitialOffset == "oldest" {
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	prod, err := sarama.NewSyncProducer(deps.Kafka.Brokers, sc)
	if err != nil {
		return fmt.Errorf("decide: producer to %v: %w", deps.Kafka.Brokers, err)
	}
	defer prod.Close()
	group, err := sarama.NewConsumerGroup(deps.Kafka.Brokers, cfg.ConsumerGroup, sc)
	if err != nil {
		return fmt.Errorf("decide: consumer group %s on %v: %w", cfg.ConsumerGroup, deps.Kafka.Brokers, err)
	}
	defer group.Close()

	h := &handler{cfg: cfg, dec: dec, m: m, log: log, prod: prod, js: deps.JetStream,
		decisions: out, deadletter: dead, ready: deps.Ready}
	log.Info("decider running", "inputs", in, "decisions", out, "group", cfg.ConsumerGroup, "nats", deps.JetStream != nil, "workloads", deps.Workloads != nil)
	for {
		if err := group.Consume(ctx, in, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("decide: consume %v: %w", in, err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

type handler struct {
	cfg        Config
	dec        *Decider
	m          *metrics
	log        *slog.Logger
	prod       sarama.SyncProducer
	js         jetstream.JetStream
	decisions  string
	deadletter string
	ready      func()
	readyDone  bool
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error {
	if h.ready != nil && !h.readyDone {
		h.readyDone = true
		h.ready()
	}
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if err := h.handle(sess.Context(), msg); err != nil {
				// A failed publish must not be committed: end the session so
				// the message is redelivered.
				return err
			}
			sess.MarkMessage(msg, "")
		}
	}
}

// handle processes one input; an error means "do not commit".
func (h *handler) handle(ctx context.Context, msg *sarama.ConsumerMessage) error {
	start := time.Now()
	h.m.inputs.WithLabelValues(msg.Topic).Inc()
	ceType := schemas.HeaderValue(msg.Headers, schemas.HeaderType)
	var out Output
	var err error
	switch ceType {
	case schemas.Forecast{}.EventType():
		var f schemas.Forecast
		if f, err = schemas.Decode[schemas.Forecast](msg.Value); err == nil {
			out, err = h.dec.ObserveForecast(f)
		}
	case schemas.Window{}.EventType():
		var w schemas.Window
		if w, err = schemas.Decode[schemas.Window](msg.Value); err == nil {
			out, err = h.dec.ObserveWindow(w)
		}
	default:
		err = fmt.Errorf("unexpected ce_type %q", ceType)
	}
	if err != nil {
		return h.deadLetter(msg, err)
	}
	if out.Guard != "" {
		h.m.guards.WithLabelValues(out.Guard).Inc()
	}
	if out.Decision == nil {
		return nil
	}
	if err := h.publish(ctx, out); err != nil {
		return err
	}
	h.m.latency.Observe(time.Since(start).Seconds())
	return nil
}

func (h *handler) publish(ctx context.Context, out Output) error {
	d := out.Decision
	pm, err := schemas.NewMessage(h.decisions, h.cfg.Source, *d)
	if err != nil {
		// Our own bug: a decision that violates its schema. Do not retry forever.
		h.m.bad.WithLabelValues("own_decision_schema").Inc()
		h.log.Error("decision violates its schema; dropped", "id", d.ID, "err", err)
		return nil
	}
	if _, _, err := h.prod.SendMessage(pm); err != nil {
		h.m.pubErrs.WithLabelValues("kafka").Inc()
		return fmt.Errorf("decide: produce decision %s to %s: %w", d.ID, h.decisions, err)
	}
	dir := "up"
	if d.To < d.From {
		dir = "down"
	}
	h.m.decisions.WithLabelValues(dir).Inc()
	h.log.Info("decision", "id", d.ID, "target", d.Target.Key(), "from", d.From, "to", d.To, "guard", d.Reason.Guard, "why", d.Reason.Summary)
	if h.js == nil {
		return nil
	}
	b, _ := json.Marshal(d)
	if err := publishJS(ctx, h.js, schemas.DecisionSubject(d.Kind, d.Target.Cluster, d.Target.Namespace), d.ID, d.EventType(), b); err != nil {
		// NATS is a notification stream; Kafka is the record. Count, log, go on.
		h.m.pubErrs.WithLabelValues("nats").Inc()
		h.log.Warn("publish decision to NATS", "id", d.ID, "err", err)
	}
	for _, a := range out.Alerts {
		if err := PublishAlert(ctx, h.js, a); err != nil {
			h.m.pubErrs.WithLabelValues("nats").Inc()
			h.log.Warn("publish alert to NATS", "id", a.ID, "err", err)
			continue
		}
		h.m.alerts.WithLabelValues(a.Kind).Inc()
	}
	return nil
}

// PublishAlert validates an alert and publishes it to JetStream on
// ebbflow.alerts.<severity>.<kind>, deduplicated by its id.
func PublishAlert(ctx context.Context, js jetstream.JetStream, a schemas.Alert) error {
	b, err := schemas.Marshal(a)
	if err != nil {
		return err
	}
	return publishJS(ctx, js, schemas.AlertSubject(a.Severity, a.Kind), a.ID, a.EventType(), b)
}

func publishJS(ctx context.Context, js jetstream.JetStream, subject, id, ceType string, body []byte) error {
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Nats-Msg-Id", id)
	msg.Header.Set("ce_id", id)
	msg.Header.Set("ce_type", ceType)
	msg.Header.Set("ce_specversion", "1.0")
	msg.Header.Set("content-type", "application/json")
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, msg); err != nil {
		return fmt.Errorf("nats: publish %s to %s: %w", id, subject, err)
	}
	return nil
}

func (h *handler) deadLetter(msg *sarama.ConsumerMessage, cause error) error {
	reason := "decode"
	var ve *schemas.ValidationError
	if errors.As(cause, &ve) {
		reason = "schema"
	}
	h.m.bad.WithLabelValues(reason).Inc()
	h.log.Warn("bad input sent to dead letter", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", cause)
	payload := msg.Value
	if len(payload) > 64<<10 {
		payload = payload[:64<<10]
	}
	dl := schemas.DeadLetter{
		ID:     fmt.Sprintf("%s/%d/%d", msg.Topic, msg.Partition, msg.Offset),
		Source: h.cfg.Source, Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
		Key: string(msg.Key), Reason: reason, Error: cause.Error(), AtMs: msg.Timestamp.UnixMilli(), Payload: payload,
	}
	pm, err := schemas.NewMessage(h.deadletter, h.cfg.Source, dl)
	if err != nil {
		return fmt.Errorf("decide: dead letter for %s/%d@%d: %w", msg.Topic, msg.Partition, msg.Offset, err)
	}
	if _, _, err := h.prod.SendMessage(pm); err != nil {
		h.m.pubErrs.WithLabelValues("kafka").Inc()
		return fmt.Errorf("decide: produce dead letter for %s/%d@%d to %s: %w", msg.Topic, msg.Partition, msg.Offset, h.deadletter, err)
	}
	return nil
}
