package mixing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/schemas"
)

// Deps are what Run needs besides its configuration.
type Deps struct {
	Kafka   kafkax.Config
	Cluster string
	// Kube reads nodes and pods through informers (deploy/rbac/mixing.yaml).
	Kube kubernetes.Interface
	// JetStream receives every decision on ebbflow.decisions.nodes.<cluster>.<group>; nil = Kafka only.
	JetStream  jetstream.JetStream
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

type loopMetrics struct {
	decisions   *prometheus.CounterVec
	flips       *prometheus.CounterVec
	utilisation *prometheus.GaugeVec
	nodes       *prometheus.GaugeVec
	pending     *prometheus.GaugeVec
	inputs      *prometheus.CounterVec
	pubErrs     *prometheus.CounterVec
}

func newLoopMetrics(reg prometheus.Registerer) (*loopMetrics, error) {
	m := &loopMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_mixing_decisions_total",
			Help: "Evaluations of a group, by direction (hold, to-offline, to-online), reason and guard."}, []string{"group", "direction", "reason", "guard"}),
		flips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_mixing_node_flips_total",
			Help: "Nodes the decider handed to the other pool, by direction."}, []string{"group", "direction"}),
		utilisation: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_mixing_utilisation_ratio",
			Help: "The group's inference utilisation of its ready online nodes at the last evaluation."}, []string{"group"}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_mixing_nodes",
			Help: "Nodes per group and pool (online, offline, fixed, incoming, outgoing) at the last evaluation."}, []string{"group", "pool"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_mixing_pending_inference_pods",
			Help: "Inference pods Pending for lack of a node in the group."}, []string{"group"}),
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_mixing_inputs_total",
			Help: "Records read from Kafka, by topic and result (used, ignored, bad)."}, []string{"topic", "result"}),
		pubErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_mixing_publish_errors_total",
			Help: "Decisions that could not be published, by sink (kafka, nats)."}, []string{"sink"}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.flips, m.utilisation, m.nodes, m.pending, m.inputs, m.pubErrs} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mixing: register metrics: %w", err)
		}
	}
	return m, nil
}

// Run is the decider loop: informers on nodes and pods, a consumer of
// node windows and forecasts, and every Interval one Decide per managed
// group; decisions that move nodes go to the decisions topic (key
// <cluster>//NodeGroup/<group>) and to NATS. Run one per cluster.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("mixing: %w", err)
	}
	if deps.Kube == nil {
		return errors.New("mixing: a Kubernetes client is required")
	}
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	reg := deps.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	m, err := newLoopMetrics(reg)
	if err != nil {
		return err
	}
	tr := NewTracker(deps.Cluster, cfg.GroupLabel, cfg.SignalFor)
	fac := informers.NewSharedInformerFactory(deps.Kube, 0)
	if err := watch(fac, tr); err != nil {
		return err
	}
	fac.Start(ctx.Done())
	for typ, ok := range fac.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("mixing: %v informer did not sync", typ)
		}
	}

	topics := deps.Kafka.Topics()
	in := []string{topics.Name(schemas.TopicMetricsWindows), topics.Name(schemas.TopicForecasts)}
	out := topics.Name(schemas.TopicDecisions)
	dead := topics.Name(schemas.TopicDeadLetter)
	if err := kafkax.EnsureTopics(ctx, deps.Kafka, append(in, out, dead)...); err != nil {
		return fmt.Errorf("mixing: %w", err)
	}
	if deps.JetStream != nil {
		if err := natsbus.EnsureStreams(ctx, deps.JetStream, 7*24*time.Hour); err != nil {
			return fmt.Errorf("mixing: %w", err)
		}
	}
	sc, err := deps.Kafka.IdempotentProducer()
	if err != nil {
		return fmt.Errorf("mixing: %w", err)
	}
	kafkax.ReadCommittedGroup(sc, "newest")
	prod, err := sarama.NewSyncProducer(deps.Kafka.Brokers, sc)
	if err != nil {
		return fmt.Errorf("mixing: producer to %v: %w", deps.Kafka.Brokers, err)
	}
	defer prod.Close()
	group, err := sarama.NewConsumerGroup(deps.Kafka.Brokers, cfg.ConsumerGroup, sc)
	if err != nil {
		return fmt.Errorf("mixing: consumer group %s on %v: %w", cfg.ConsumerGroup, deps.Kafka.Brokers, err)
	}
	defer group.Close()
	consumeErr := make(chan error, 1)
	go func() {
		h := &inputHandler{tr: tr, m: m, log: log, prod: prod, dead: dead, source: cfg.Source, now: now, maxFuture: cfg.MaxFuture}
		for ctx.Err() == nil {
			if err := group.Consume(ctx, in, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) && ctx.Err() == nil {
				consumeErr <- fmt.Errorf("mixing: consume %v: %w", in, err)
				return
			}
		}
	}()

	l := &loop{cfg: cfg, cluster: deps.Cluster, tr: tr, m: m, log: log, prod: prod, js: deps.JetStream, topic: out, states: map[string]State{}}
	log.Info("mixing decider running", "inputs", in, "decisions", out, "interval", cfg.Interval)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-consumeErr:
			return err
		case <-t.C:
			l.evaluate(ctx, now())
		}
	}
}

func watch(fac informers.SharedInformerFactory, tr *Tracker) error {
	nodeKey := func(obj any) (string, *corev1.Node) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			return d.Key, nil
		}
		n, _ := obj.(*corev1.Node)
		if n == nil {
			return "", nil
		}
		return n.Name, n
	}
	podKey := func(obj any) (string, *corev1.Pod) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			return d.Key, nil
		}
		p, _ := obj.(*corev1.Pod)
		if p == nil {
			return "", nil
		}
		return p.Namespace + "/" + p.Name, p
	}
	if _, err := fac.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k, n := nodeKey(o); tr.SetNode(k, n) },
		UpdateFunc: func(_, o any) { k, n := nodeKey(o); tr.SetNode(k, n) },
		DeleteFunc: func(o any) { k, _ := nodeKey(o); tr.SetNode(k, nil) },
	}); err != nil {
		return fmt.Errorf("mixing: node informer: %w", err)
	}
	if _, err := fac.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k, p := podKey(o); tr.SetPod(k, p) },
		UpdateFunc: func(_, o any) { k, p := podKey(o); tr.SetPod(k, p) },
		DeleteFunc: func(o any) { k, _ := podKey(o); tr.SetPod(k, nil) },
	}); err != nil {
		return fmt.Errorf("mixing: pod informer: %w", err)
	}
	return nil
}

// inputHandler feeds node windows and forecasts to the tracker.
type inputHandler struct {
	tr  *Tracker
	m   *loopMetrics
	log *slog.Logger
	// prod sends bad input of node entities to the dead-letter topic.
	prod      sarama.SyncProducer
	dead      string
	source    string
	now       func() time.Time
	maxFuture time.Duration
}

func (h *inputHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *inputHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *inputHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.observe(msg)
			sess.MarkMessage(msg, "")
		}
	}
}

// observe reads one record; only node entities matter. A node entity's
// record that does not decode, or lies out of range, is counted, logged
// and sent to the dead-letter topic with the reason.
func (h *inputHandler) observe(msg *sarama.ConsumerMessage) {
	if len(msg.Key) < 5 || string(msg.Key[:5]) != schemas.EntityNode+"/" {
		h.m.inputs.WithLabelValues(msg.Topic, "ignored").Inc()
		return
	}
	var used bool
	var err error
	switch kafkax.HeaderValue(msg.Headers, schemas.HeaderType) {
	case schemas.Window{}.EventType():
		var w schemas.Window
		if w, err = schemas.Decode[schemas.Window](msg.Value); err == nil {
			if w.EndMs != w.StartMs+w.SizeS*1000 {
				err = fmt.Errorf("%w: window %s: end_ms %d is not start_ms %d + size_s %d s", errOutOfRange, w.EventID(), w.EndMs, w.StartMs, w.SizeS)
			} else if err = h.future("window "+w.EventID()+": end_ms", w.EndMs); err == nil {
				used = h.tr.ObserveWindow(w)
			}
		}
	case schemas.Forecast{}.EventType():
		var f schemas.Forecast
		if f, err = schemas.Decode[schemas.Forecast](msg.Value); err == nil {
			if err = h.future("forecast "+f.ID+": origin_ms", f.OriginMs); err == nil {
				used = h.tr.ObserveForecast(f)
			}
		}
	default:
		err = fmt.Errorf("ce_type %q is neither a window nor a forecast", kafkax.HeaderValue(msg.Headers, schemas.HeaderType))
	}
	switch {
	case err != nil:
		h.m.inputs.WithLabelValues(msg.Topic, "bad").Inc()
		h.log.Warn("bad input sent to dead letter", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
		h.deadLetter(msg, err)
	case used:
		h.m.inputs.WithLabelValues(msg.Topic, "used").Inc()
	default:
		h.m.inputs.WithLabelValues(msg.Topic, "ignored").Inc()
	}
}

// loop evaluates every group once per interval.
type loop struct {
	cfg     Config
	cluster string
	tr      *Tracker
	m       *loopMetrics
	log     *slog.Logger
	prod    sarama.SyncProducer
	js      jetstream.JetStream
	topic   string
	states  map[string]State
}

func (l *loop) evaluate(ctx context.Context, now time.Time) {
	for _, g := range l.tr.Groups() {
		if !l.cfg.Manages(g) {
			continue
		}
		in, bad := l.tr.Snapshot(g, now, l.cfg.StaleAfter)
		for _, b := range bad {
			l.log.Warn("node labels unreadable; node left out", "group", g, "err", b)
		}
		pol := l.cfg.PolicyFor(g)
		d, st := Decide(pol, l.states[g], in)
		l.states[g] = st
		l.record(d)
		if len(d.Nodes) == 0 {
			l.log.Debug("hold", "group", g, "reason", d.Reason, "guard", d.Guard, "summary", d.Summary)
			continue
		}
		ev := d.Event(EventMeta{Cluster: l.cluster, Seq: now.UnixMilli(), TTL: l.cfg.DecisionTTL, Source: l.cfg.Source, DryRun: l.cfg.DryRun})
		l.log.Info("decision", "group", g, "id", ev.ID, "direction", d.Direction, "reason", d.Reason, "guard", d.Guard, "nodes", len(d.Nodes), "summary", d.Summary)
		if err := l.publish(ctx, ev); err != nil {
			l.log.Error("publish decision", "id", ev.ID, "err", err)
		}
	}
}

func (l *loop) record(d Decision) {
	f := d.Figures
	l.m.decisions.WithLabelValues(d.Group, string(d.Direction), string(d.Reason), string(d.Guard)).Inc()
	if len(d.Nodes) > 0 {
		l.m.flips.WithLabelValues(d.Group, string(d.Direction)).Add(float64(len(d.Nodes)))
	}
	l.m.utilisation.WithLabelValues(d.Group).Set(f.Utilisation)
	l.m.pending.WithLabelValues(d.Group).Set(float64(f.PendingInference))
	for pool, n := range map[string]int{"online": f.Online, "offline": f.Offline, "fixed": f.Fixed, "incoming": f.Incoming, "outgoing": f.Outgoing} {
		l.m.nodes.WithLabelValues(d.Group, pool).Set(float64(n))
	}
}

// publish sends a decision to Kafka and, when configured, to NATS.
func (l *loop) publish(ctx context.Context, ev schemas.NodesDecision) error {
	pm, err := kafkax.NewMessage(l.topic, l.cfg.Source, ev)
	if err != nil {
		return err
	}
	if _, _, err := l.prod.SendMessage(pm); err != nil {
		l.m.pubErrs.WithLabelValues("kafka").Inc()
		return fmt.Errorf("kafka %s: %w", l.topic, err)
	}
	if l.js == nil {
		return nil
	}
	if err := natsbus.Publish(ctx, l.js, ev.Subject(), l.cfg.Source, ev); err != nil {
		l.m.pubErrs.WithLabelValues("nats").Inc()
		return err
	}
	return nil
}

// errOutOfRange marks input that passed its schema but cannot be real.
var errOutOfRange = errors.New("out of range")

func (h *inputHandler) future(what string, ms int64) error {
	if h.maxFuture <= 0 {
		return nil
	}
	if now := h.now(); ms > now.Add(h.maxFuture).UnixMilli() {
		return fmt.Errorf("%w: %s %d (%s) is more than max_future %s after the clock (%s)", errOutOfRange, what, ms,
			time.UnixMilli(ms).UTC().Format(time.RFC3339), h.maxFuture, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// deadLetter sends a bad record to the dead-letter topic (reason decode,
// schema or out_of_range); a failure to do so is logged, not fatal: the
// record is counted either way.
func (h *inputHandler) deadLetter(msg *sarama.ConsumerMessage, cause error) {
	if h.prod == nil {
		return
	}
	reason := "decode"
	var ve *schemas.ValidationError
	if errors.As(cause, &ve) {
		reason = "schema"
	} else if errors.Is(cause, errOutOfRange) {
		reason = "out_of_range"
	}
	pm, err := kafkax.DeadLetter(h.dead, h.source, msg, reason, cause.Error(), msg.Value)
	if err == nil {
		_, _, err = h.prod.SendMessage(pm)
	}
	if err != nil {
		h.log.Error("dead letter not sent", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
	}
}
