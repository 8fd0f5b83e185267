package servers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/schemas"
)

// Publisher sends decisions on. Run's default publishes to the decisions
// topic (Kafka, the record) and, with JetStream, to
// ebbflow.decisions.inference.<cluster>.<namespace> (notification).
type Publisher interface {
	Publish(ctx context.Context, ds []schemas.InferenceDecision) error
}

// Deps are what Run needs besides its configuration.
type Deps struct {
	// Store is the filesystem the model store lives on (history.FS: local
	// or HDFS).
	Store history.FS
	// Kafka is the connection section; unused when Publisher is set.
	Kafka kafkax.Config
	// JetStream, when set, also gets every decision.
	JetStream jetstream.JetStream
	// Publisher overrides the Kafka/NATS publisher (tests, ebbflow dev).
	Publisher Publisher
	// Cluster names this cluster in decision targets.
	Cluster string
	// Clock gives decision times; nil = time.Now.
	Clock func() time.Time
	// Log and Registerer default to slog.Default() and a private registry.
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

type loopMetrics struct {
	decisions *prometheus.CounterVec
	guards    *prometheus.CounterVec
	errors    *prometheus.CounterVec
	models    prometheus.Gauge
}

func newLoopMetrics(reg prometheus.Registerer) (*loopMetrics, error) {
	m := &loopMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_servers_decisions_total",
			Help: "Inference decisions published, by action (launch, update, retire)."}, []string{"action"}),
		guards: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_servers_guards_total",
			Help: "Model store entries held back by a guard, by guard (invalid_spec, duplicate_name, version_not_bumped, version_regressed)."}, []string{"guard"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_servers_errors_total",
			Help: "Failed store listings, reads and publishes, by stage (list, read, publish)."}, []string{"stage"}),
		models: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_servers_models",
			Help: "Models the decider has decided to serve."}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.guards, m.errors, m.models} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("servers: register metrics: %w", err)
		}
	}
	return m, nil
}

// Loop is the model-store decider's state between polls. Not safe for
// concurrent use; Run drives it.
type Loop struct {
	cfg     Config
	deps    Deps
	m       *loopMetrics
	log     *slog.Logger
	serving map[string]Serving
	lastSeq int64
	// lastGuard remembers the guard logged per path, so a broken file is
	// logged and counted once, not at every poll.
	lastGuard map[string]string
}

// NewLoop returns the decider loop; call Poll, or Run to poll until ctx
// ends. On start nothing is known to serve, so the first poll decides a
// launch for every model in the store; the actuator skips those already
// serving the same spec (spec digest), so a restart changes nothing. A
// model whose file is removed while the decider is down is not retired.
func NewLoop(cfg Config, deps Deps) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	if deps.Store == nil {
		return nil, errors.New("servers: a model store filesystem is required")
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	m, err := newLoopMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	return &Loop{cfg: cfg, deps: deps, m: m, log: deps.Log, serving: map[string]Serving{}, lastGuard: map[string]string{}}, nil
}

// ReadStore lists the spec files (*.yaml, *.yml) of a model store directory.
func ReadStore(fsys history.FS, dir string) ([]Entry, error) {
	infos, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list model store %s: %w", dir, err)
	}
	var out []Entry
	for _, fi := range infos {
		name := fi.Name()
		if fi.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		p := path.Join(dir, name)
		f, err := fsys.Open(p)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", p, err)
		}
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		out = append(out, Entry{Path: p, Doc: b})
	}
	return out, nil
}

// Poll reads the store once, decides, publishes, and then remembers what
// was published. A store that cannot be listed decides nothing (a listing
// failure must not retire every model).
func (l *Loop) Poll(ctx context.Context) ([]Outcome, error) {
	entries, err := ReadStore(l.deps.Store, l.cfg.StoreDir)
	if err != nil {
		l.m.errors.WithLabelValues("list").Inc()
		return nil, fmt.Errorf("servers: %w", err)
	}
	now := l.deps.Clock()
	outs := Decide(l.serving, entries, DecideContext{Cfg: l.cfg, Cluster: l.deps.Cluster, AtMs: now.UnixMilli(), Seq: l.nextSeq, DryRun: l.cfg.DryRun})
	var ds []schemas.InferenceDecision
	seenGuard := map[string]string{}
	for _, o := range outs {
		if o.Decision != nil {
			ds = append(ds, *o.Decision)
			continue
		}
		seenGuard[o.Path] = string(o.Guard) + o.Detail
		if l.lastGuard[o.Path] != seenGuard[o.Path] {
			l.m.guards.WithLabelValues(string(o.Guard)).Inc()
			l.log.Warn("model store entry held back", "path", o.Path, "model", o.Model, "guard", o.Guard, "detail", o.Detail)
		}
	}
	l.lastGuard = seenGuard
	if len(ds) == 0 {
		return outs, nil
	}
	if err := l.publisher().Publish(ctx, ds); err != nil {
		l.m.errors.WithLabelValues("publish").Inc()
		// Not remembered: the next poll decides again (new ids, new seqs).
		return outs, fmt.Errorf("servers: publish %d decisions: %w", len(ds), err)
	}
	for _, o := range outs {
		if o.Decision == nil {
			continue
		}
		d := o.Decision
		l.m.decisions.WithLabelValues(d.Action).Inc()
		l.log.Info("decision", "id", d.ID, "action", d.Action, "model", d.Model.Name, "version", d.Model.Version,
			"target", d.Target.Key(), "trigger", d.Reason.Trigger, "reason", d.Reason.Summary)
		if o.Next == nil {
			delete(l.serving, o.Model)
		} else {
			l.serving[o.Model] = *o.Next
		}
	}
	l.m.models.Set(float64(len(l.serving)))
	return outs, nil
}

// nextSeq grows across restarts: milliseconds of wall time, at least one
// above the last.
func (l *Loop) nextSeq() int64 {
	s := l.deps.Clock().UnixMilli()
	if s <= l.lastSeq {
		s = l.lastSeq + 1
	}
	l.lastSeq = s
	return s
}

func (l *Loop) publisher() Publisher {
	if l.deps.Publisher == nil {
		return noPublisher{}
	}
	return l.deps.Publisher
}

type noPublisher struct{}

func (noPublisher) Publish(context.Context, []schemas.InferenceDecision) error {
	return errors.New("no publisher configured")
}

// Run polls the model store every cfg.PollInterval until ctx ends.
// Errors of one poll are logged and counted; the loop goes on.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if deps.Publisher == nil {
		p, err := NewKafkaPublisher(deps.Kafka, cfg.Source, deps.JetStream, deps.Log)
		if err != nil {
			return err
		}
		defer p.Close()
		deps.Publisher = p
	}
	l, err := NewLoop(cfg, deps)
	if err != nil {
		return err
	}
	l.log.Info("watching the model store", "dir", cfg.StoreDir, "every", cfg.PollInterval, "cluster", deps.Cluster)
	t := time.NewTicker(cfg.PollInterval)
	defer t.Stop()
	for {
		if _, err := l.Poll(ctx); err != nil && ctx.Err() == nil {
			l.log.Error("poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// KafkaPublisher publishes decisions to the decisions topic (idempotent
// producer, all in-sync replicas) and, with JetStream, to NATS. Safe for
// concurrent use.
type KafkaPublisher struct {
	prod   sarama.SyncProducer
	topic  string
	source string
	js     jetstream.JetStream
	log    *slog.Logger
	mu     sync.Mutex
}

// NewKafkaPublisher connects a producer; Close it when done.
func NewKafkaPublisher(kc kafkax.Config, source string, js jetstream.JetStream, log *slog.Logger) (*KafkaPublisher, error) {
	if log == nil {
		log = slog.Default()
	}
	sc, err := kc.IdempotentProducer()
	if err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	topic := kc.Topics().Name(schemas.TopicDecisions)
	if err := kafkax.EnsureTopics(context.Background(), kc, topic); err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("servers: producer to %v: %w", kc.Brokers, err)
	}
	return &KafkaPublisher{prod: prod, topic: topic, source: source, js: js, log: log}, nil
}

// Publish implements Publisher: all decisions to Kafka (validated against
// their schema), then to NATS best effort.
func (p *KafkaPublisher) Publish(ctx context.Context, ds []schemas.InferenceDecision) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	msgs := make([]*sarama.ProducerMessage, 0, len(ds))
	for _, d := range ds {
		m, err := kafkax.NewMessage(p.topic, p.source, d)
		if err != nil {
			return fmt.Errorf("decision %s: %w", d.ID, err)
		}
		msgs = append(msgs, m)
	}
	if err := p.prod.SendMessages(msgs); err != nil {
		return fmt.Errorf("produce to %s: %w", p.topic, err)
	}
	if p.js == nil {
		return nil
	}
	for _, d := range ds {
		subject := schemas.DecisionSubject(d.Kind, d.Target.Cluster, d.Target.Namespace)
		if err := natsbus.Publish(ctx, p.js, subject, p.source, d); err != nil {
			// NATS is the notification stream; Kafka is the record.
			p.log.Warn("publish decision to NATS", "subject", subject, "id", d.ID, "err", err)
		}
	}
	return nil
}

// Close closes the producer.
func (p *KafkaPublisher) Close() error { return p.prod.Close() }

// Fetch copies the model files of a model store directory into a local
// directory: what the pod's init container runs (`ebbflow inference
// fetch`). from is hdfs://namenode:port/dir (the user is $HADOOP_USER_NAME
// or the current user) or a local directory.
func Fetch(ctx context.Context, from, to string) ([]string, error) {
	var fsys history.FS = history.LocalFS{}
	dir := from
	if rest, ok := strings.CutPrefix(from, "hdfs://"); ok {
		host, p, found := strings.Cut(rest, "/")
		if !found || host == "" {
			return nil, fmt.Errorf("fetch: %q: want hdfs://namenode:port/dir", from)
		}
		h, err := history.OpenHDFS(ctx, []string{host}, "")
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		defer history.Close(h)
		fsys, dir = h, "/"+p
	}
	infos, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fetch: list %s: %w", from, err)
	}
	local := history.LocalFS{}
	if err := local.MkdirAll(to); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	var copied []string
	for _, fi := range infos {
		if fi.IsDir() {
			continue
		}
		src, dst := path.Join(dir, fi.Name()), path.Join(to, fi.Name())
		if err := copyFile(fsys, src, dst); err != nil {
			return copied, fmt.Errorf("fetch: %s → %s: %w", src, dst, err)
		}
		copied = append(copied, dst)
	}
	if len(copied) == 0 {
		return nil, fmt.Errorf("fetch: %s holds no model files", from)
	}
	return copied, nil
}

func copyFile(fsys history.FS, src, dst string) error {
	in, err := fsys.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	local := history.LocalFS{}
	out, err := local.Create(dst + ".part")
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return local.Rename(dst+".part", dst)
}
