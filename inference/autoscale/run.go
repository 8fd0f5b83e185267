package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
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
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_autoscale_inputs_total",
			Help: "Windows and forecasts consumed, by topic."}, []string{"topic"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_autoscale_bad_input_total",
			Help: "Inputs that failed to decode or validate (sent to the dead-letter topic), by reason."}, []string{"reason"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_autoscale_decisions_total",
			Help: "Scale decisions emitted, by direction (up, down)."}, []string{"direction"}),
		guards: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_autoscale_guards_total",
			Help: "Evaluations where a guard had the last word, by guard."}, []string{"guard"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_autoscale_alerts_total",
			Help: "Alerts published, by kind."}, []string{"kind"}),
		pubErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_autoscale_publish_errors_total",
			Help: "Failed publishes, by sink (kafka, nats)."}, []string{"sink"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ebbflow_autoscale_decision_latency_seconds",
			Help:    "Wall time from consuming the input to the decision acknowledged by Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	m.services = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ebbflow_autoscale_services",
		Help: "Services the decider tracks."}, func() float64 { return float64(d.Services()) })
	for _, c := range []prometheus.Collector{m.inputs, m.bad, m.decisions, m.guards, m.alerts, m.pubErrs, m.latency, m.services} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("autoscale: register metrics: %w", err)
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
		return fmt.Errorf("autoscale: %w", err)
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
		return fmt.Errorf("autoscale: %w", err)
	}
	if deps.JetStream != nil {
		if err := natsbus.EnsureStreams(ctx, deps.JetStream, 7*24*time.Hour); err != nil {
			return fmt.Errorf("autoscale: %w", err)
		}
	}

	sc, err := deps.Kafka.GroupConsumer(cfg.InitialOffset)
	if err != nil {
		return fmt.Errorf("autoscale: %w", err)
	}
	kafkax.Idempotent(sc) // decisions and dead letters
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	// Asynchronous producer: a partition decides its next batch while the
	// previous one is in flight (see ConsumeClaim); acknowledgements are
	// routed back to their batch by acks.
	prod, err := sarama.NewAsyncProducer(deps.Kafka.Brokers, sc)
	if err != nil {
		return fmt.Errorf("autoscale: producer to %v: %w", deps.Kafka.Brokers, err)
	}
	acksDone := make(chan struct{})
	go func() { defer close(acksDone); routeAcks(prod) }()
	defer func() { prod.AsyncClose(); <-acksDone }()
	group, err := sarama.NewConsumerGroup(deps.Kafka.Brokers, cfg.ConsumerGroup, sc)
	if err != nil {
		return fmt.Errorf("autoscale: consumer group %s on %v: %w", cfg.ConsumerGroup, deps.Kafka.Brokers, err)
	}
	defer group.Close()

	h := &handler{cfg: cfg, dec: dec, m: m, log: log, prod: prod, js: deps.JetStream,
		decisions: out, deadletter: dead, ready: deps.Ready, inputs: map[string]prometheus.Counter{}}
	for _, t := range in {
		// Resolved once: a burst counts every record.
		h.inputs[t] = m.inputs.WithLabelValues(t)
	}
	log.Info("decider running", "inputs", in, "decisions", out, "group", cfg.ConsumerGroup, "nats", deps.JetStream != nil, "workloads", deps.Workloads != nil)
	for {
		if err := group.Consume(ctx, in, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("autoscale: consume %v: %w", in, err)
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
	prod       sarama.AsyncProducer
	js         jetstream.JetStream
	decisions  string
	deadletter string
	ready      func()
	readyDone  bool
	// inputs is ebbflow_autoscale_inputs_total per input topic (read-only).
	inputs map[string]prometheus.Counter
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error {
	if h.ready != nil && !h.readyDone {
		h.readyDone = true
		h.ready()
	}
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// maxBatch bounds how many consumed records are decided together.
const maxBatch = 512

// maxInFlight bounds the batches of one partition produced and not yet
// acknowledged: the partition decides the next while these are in flight.
const maxInFlight = 4

// burstLog is the most decisions of one batch logged one Info line each;
// a larger batch (a burst) logs one Info summary and each decision at Debug.
const burstLog = 16

// pending is one batch of decisions and dead letters handed to the
// producer. routeAcks counts its acknowledgements down and closes done;
// err (the first produce error) is read only after done.
type pending struct {
	left  int
	err   error
	done  chan struct{}
	outs  []Output
	last  *sarama.ConsumerMessage
	start time.Time
}

// routeAcks delivers the producer's acknowledgements and errors to their
// batch (the message's Metadata) until the producer is closed.
func routeAcks(prod sarama.AsyncProducer) {
	succ, errs := prod.Successes(), prod.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			m.Metadata.(*pending).ack(nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			pe.Msg.Metadata.(*pending).ack(pe.Err)
		}
	}
}

func (p *pending) ack(err error) {
	if err != nil && p.err == nil {
		p.err = err
	}
	p.left--
	if p.left == 0 {
		close(p.done)
	}
}

// ConsumeClaim decides what is fetched in batches and pipelines the
// produce: batch N+1 is decided and handed to the producer while batch N
// waits for its acknowledgement. Records enter the idempotent producer in
// consumption order (one goroutine per partition writes them), so the
// decisions of one partition keep their order on each output partition;
// offsets are marked strictly in order, each batch only after all its
// records were acknowledged (at-least-once as before).
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	// settle holds the oldest batch while it waits: the channel the rest.
	inflight := make(chan *pending, maxInFlight-1)
	failed := make(chan error, 1)
	settled := make(chan struct{})
	go func() { defer close(settled); h.settle(sess, inflight, failed) }()
	defer func() { close(inflight); <-settled }()
	batch := make([]*sarama.ConsumerMessage, 0, maxBatch)
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case err := <-failed:
			return err
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			// Everything already fetched is decided together: at a minute
			// boundary every service's window closes at once, and one
			// round trip per decision would queue them.
			batch = append(batch[:0], msg)
		drain:
			for len(batch) < maxBatch {
				select {
				case m, ok := <-claim.Messages():
					if !ok {
						break drain
					}
					batch = append(batch, m)
				default:
					break drain
				}
			}
			p := h.handleBatch(batch)
			select {
			case inflight <- p:
			case err := <-failed:
				// Not committed: redelivered inputs must decide again.
				<-p.done
				h.forget(p)
				return err
			}
		}
	}
}

// settle waits for each batch's acknowledgements in order, then publishes
// its decisions to NATS, logs them and marks its offsets. After a failed
// produce nothing more is marked (the session ends, the records are
// redelivered) and the later batches' decisions are forgotten.
func (h *handler) settle(sess sarama.ConsumerGroupSession, inflight <-chan *pending, failed chan<- error) {
	var broken bool
	for p := range inflight {
		<-p.done
		if broken {
			h.forget(p)
			continue
		}
		if p.err != nil {
			broken = true
			h.m.pubErrs.WithLabelValues("kafka").Inc()
			h.forget(p)
			failed <- fmt.Errorf("autoscale: produce to %s: %w", h.decisions, p.err)
			continue
		}
		h.settled(sess.Context(), p)
		if p.last != nil {
			sess.MarkMessage(p.last, "")
		}
	}
}

// forget makes a batch's services decide again when their inputs are
// redelivered, instead of suppressing the decisions as repeats.
func (h *handler) forget(p *pending) {
	for _, o := range p.outs {
		h.dec.Forget(o.Decision.Entity)
	}
}

// handleBatch decides on every record and hands the decisions and dead
// letters to the producer, in record order; the returned batch's done
// closes when all are acknowledged (at once when there are none).
func (h *handler) handleBatch(batch []*sarama.ConsumerMessage) *pending {
	p := &pending{done: make(chan struct{}), start: time.Now(), last: batch[len(batch)-1]}
	pms := make([]*sarama.ProducerMessage, 0, len(batch))
	for _, msg := range batch {
		out, dl := h.decide(msg)
		if dl != nil {
			pms = append(pms, dl)
			continue
		}
		if out.Decision == nil {
			continue
		}
		pm, err := kafkax.NewMessage(h.decisions, h.cfg.Source, *out.Decision)
		if err != nil {
			// Our own bug: a decision that violates its schema. Do not retry forever.
			h.m.bad.WithLabelValues("own_decision_schema").Inc()
			h.log.Error("decision violates its schema; dropped", "id", out.Decision.ID, "err", err)
			continue
		}
		pms = append(pms, pm)
		p.outs = append(p.outs, out)
	}
	if len(pms) == 0 {
		close(p.done)
		return p
	}
	p.left = len(pms)
	in := h.prod.Input()
	for _, pm := range pms {
		pm.Metadata = p
		in <- pm
	}
	return p
}

// settled records an acknowledged batch: metrics, log, NATS.
func (h *handler) settled(ctx context.Context, p *pending) {
	if len(p.outs) == 0 {
		return
	}
	lat := time.Since(p.start).Seconds()
	up, down := 0, 0
	perDecision := len(p.outs) <= burstLog
	debug := !perDecision && h.log.Enabled(ctx, slog.LevelDebug)
	for _, o := range p.outs {
		d := o.Decision
		if d.To < d.From {
			down++
		} else {
			up++
		}
		h.m.latency.Observe(lat)
		switch {
		case perDecision:
			h.log.Info("decision", "id", d.ID, "target", d.Target.Key(), "from", d.From, "to", d.To, "guard", d.Reason.Guard, "why", d.Reason.Summary)
		case debug:
			h.log.Debug("decision", "id", d.ID, "target", d.Target.Key(), "from", d.From, "to", d.To, "guard", d.Reason.Guard, "why", d.Reason.Summary)
		}
	}
	if up > 0 {
		h.m.decisions.WithLabelValues("up").Add(float64(up))
	}
	if down > 0 {
		h.m.decisions.WithLabelValues("down").Add(float64(down))
	}
	if !perDecision {
		// A burst: one line for the batch; each decision carries its own
		// explanation on the decisions topic (and at Debug here).
		h.log.Info("decisions", "count", len(p.outs), "up", up, "down", down,
			"first", p.outs[0].Decision.ID, "last", p.outs[len(p.outs)-1].Decision.ID, "acked_after", time.Duration(lat*float64(time.Second)).Round(time.Microsecond))
	}
	if h.js != nil {
		h.publishNATS(ctx, p.outs)
	}
}

// decide decodes and decides one record; a bad record returns its dead
// letter instead.
func (h *handler) decide(msg *sarama.ConsumerMessage) (Output, *sarama.ProducerMessage) {
	if c, ok := h.inputs[msg.Topic]; ok {
		c.Inc()
	} else {
		h.m.inputs.WithLabelValues(msg.Topic).Inc()
	}
	ceType := kafkax.HeaderBytes(msg.Headers, schemas.HeaderType)
	var out Output
	var err error
	switch t := ceType; { // compared in place, no copy
	case string(t) == schemas.Forecast{}.EventType():
		var f schemas.Forecast
		if f, err = schemas.Decode[schemas.Forecast](msg.Value); err == nil {
			if err = forecastInRange(f, time.Now(), h.cfg.MaxFuture); err == nil {
				out, err = h.dec.ObserveForecast(f)
			}
		}
	case string(t) == schemas.Window{}.EventType():
		var w schemas.Window
		if w, err = schemas.Decode[schemas.Window](msg.Value); err == nil {
			if err = windowInRange(w, time.Now(), h.cfg.MaxFuture); err == nil {
				out, err = h.dec.ObserveWindow(w)
			}
		}
	default:
		err = fmt.Errorf("unexpected ce_type %q", string(ceType))
	}
	if err != nil {
		return Output{}, h.deadLetter(msg, err)
	}
	if out.Guard != "" {
		h.m.guards.WithLabelValues(string(out.Guard)).Inc()
	}
	for _, a := range out.Alerts {
		if a.Kind == schemas.AlertBadPolicy {
			// Counted once per new rejection (the alert is raised once).
			h.m.bad.WithLabelValues("policy").Inc()
			h.log.Warn("policy annotation rejected; configured policy used", "entity", a.Entity, "err", out.PolicyErr)
		}
	}
	return out, nil
}

// publishNATS publishes decisions and alerts asynchronously and waits for
// the acknowledgements. NATS is a notification stream (Kafka is the
// record): failures are counted and logged, not retried.
func (h *handler) publishNATS(ctx context.Context, outs []Output) {
	var futures []jetstream.PubAckFuture
	pub := func(subject string, ev schemas.Event, body []byte) {
		id := ev.EventID()
		f, err := h.js.PublishMsgAsync(natsbus.Msg(subject, h.cfg.Source, ev, body))
		if err != nil {
			h.m.pubErrs.WithLabelValues("nats").Inc()
			h.log.Warn("publish to NATS", "subject", subject, "id", id, "err", err)
			return
		}
		futures = append(futures, f)
	}
	for _, o := range outs {
		d := o.Decision
		b, _ := json.Marshal(d)
		pub(schemas.DecisionSubject(d.Kind, d.Target.Cluster, d.Target.Namespace), d, b)
		for _, a := range o.Alerts {
			b, err := schemas.Marshal(a)
			if err != nil {
				h.log.Error("alert violates its schema; dropped", "id", a.ID, "err", err)
				continue
			}
			pub(schemas.AlertSubject(a.Severity, a.Kind), a, b)
			h.m.alerts.WithLabelValues(a.Kind).Inc()
		}
	}
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			h.m.pubErrs.WithLabelValues("nats").Inc()
			h.log.Warn("publish to NATS", "subject", f.Msg().Subject, "err", err)
		case <-timeout.C:
			h.m.pubErrs.WithLabelValues("nats").Inc()
			h.log.Warn("NATS acknowledgements timed out")
			return
		case <-ctx.Done():
			return
		}
	}
}

func (h *handler) deadLetter(msg *sarama.ConsumerMessage, cause error) *sarama.ProducerMessage {
	reason := "decode"
	var ve *schemas.ValidationError
	if errors.As(cause, &ve) {
		reason = "schema"
	} else if errors.Is(cause, errOutOfRange) {
		reason = "out_of_range"
	}
	h.m.bad.WithLabelValues(reason).Inc()
	h.log.Warn("bad input sent to dead letter", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", cause)
	pm, err := kafkax.DeadLetter(h.deadletter, h.cfg.Source, msg, reason, cause.Error(), msg.Value)
	if err != nil {
		// Cannot happen for a well-formed DeadLetter; keep the record's
		// reason in the log rather than block the partition.
		h.log.Error("dead letter violates its schema", "topic", msg.Topic, "offset", msg.Offset, "err", err)
		return nil
	}
	return pm
}

// errOutOfRange marks an input that passed its schema but cannot be real
// (dead letter reason out_of_range).
var errOutOfRange = errors.New("out of range")

// windowInRange rejects a window whose end is not its start plus its size,
// or (maxFuture > 0) that ends more than maxFuture after now.
func windowInRange(w schemas.Window, now time.Time, maxFuture time.Duration) error {
	if w.EndMs != w.StartMs+w.SizeS*1000 {
		return fmt.Errorf("%w: window %s: end_ms %d is not start_ms %d + size_s %d s", errOutOfRange, w.EventID(), w.EndMs, w.StartMs, w.SizeS)
	}
	if err := futureCheck("end_ms", w.EndMs, now, maxFuture); err != nil {
		// The window's id only on failure: this runs for every input.
		return fmt.Errorf("window %s: %w", w.EventID(), err)
	}
	return nil
}

// forecastInRange rejects a forecast whose origin is more than maxFuture
// after now (maxFuture > 0), or with a horizon not after its origin.
func forecastInRange(f schemas.Forecast, now time.Time, maxFuture time.Duration) error {
	for _, h := range f.Horizons {
		if h.AtMs <= f.OriginMs {
			return fmt.Errorf("%w: forecast %s: horizon %d min at_ms %d is not after origin_ms %d", errOutOfRange, f.ID, h.Minutes, h.AtMs, f.OriginMs)
		}
	}
	if err := futureCheck("origin_ms", f.OriginMs, now, maxFuture); err != nil {
		return fmt.Errorf("forecast %s: %w", f.ID, err)
	}
	return nil
}

func futureCheck(what string, ms int64, now time.Time, maxFuture time.Duration) error {
	if maxFuture > 0 && ms > now.Add(maxFuture).UnixMilli() {
		return fmt.Errorf("%w: %s %d (%s) is more than max_future %s after the clock (%s)", errOutOfRange, what, ms,
			time.UnixMilli(ms).UTC().Format(time.RFC3339), maxFuture, now.UTC().Format(time.RFC3339))
	}
	return nil
}
