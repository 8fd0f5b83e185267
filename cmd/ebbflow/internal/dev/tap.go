package dev

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// tap reads the pipeline's output topics back from Kafka (read_committed,
// from the oldest offset) for the live view and the summary: the figures
// a user sees are the ones any other consumer of the topics would see.
// It is safe for concurrent use.
type tap struct {
	log *slog.Logger
	m   *tapMetrics

	mu        sync.Mutex
	windows   map[wkey]schemas.Window // highest revision per key
	forecasts []schemas.Forecast
	decisions []schemas.ScaleDecision
	inference []schemas.InferenceDecision
	nodes     []schemas.NodesDecision
	others    int // decisions of other kinds
	actions   []schemas.Action
	dead      int
	bad       int
	newestWin int64 // newest window end seen (ms), any entity
	latest    map[string]*latest
	lastMsg   time.Time

	client   sarama.Client
	consumer sarama.Consumer
	pcs      []sarama.PartitionConsumer
	wg       sync.WaitGroup
}

type wkey struct {
	entity, signal string
	size, start    int64
}

// tapMetrics count what the tap reads, by topic base name.
type tapMetrics struct {
	events, bad *prometheus.CounterVec
}

func newTapMetrics(reg prometheus.Registerer) (*tapMetrics, error) {
	m := &tapMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_dev_tap_events_total",
			Help: "Events the dev summary and view read back from the topics, by topic."}, []string{"topic"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_dev_tap_undecodable_total",
			Help: "Records on the pipeline's topics that did not decode or validate, by topic."}, []string{"topic"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.bad} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("dev: register tap metrics: %w", err)
			}
		}
	}
	return m, nil
}

// startTap consumes every partition of the windows, forecasts, decisions,
// actions and dead-letter topics until stop.
func startTap(ctx context.Context, kc kafkax.Config, reg prometheus.Registerer, log *slog.Logger) (*tap, error) {
	m, err := newTapMetrics(reg)
	if err != nil {
		return nil, err
	}
	sc, err := kc.Sarama()
	if err != nil {
		return nil, err
	}
	sc.ClientID = "ebbflow-dev-tap"
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Return.Errors = true
	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("dev: tap: connect to %v: %w", kc.Brokers, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("dev: tap: consumer: %w", err)
	}
	t := &tap{log: log, m: m, windows: map[wkey]schemas.Window{}, latest: map[string]*latest{}, client: client, consumer: consumer, lastMsg: time.Now()}
	topics := kc.Topics()
	for _, base := range []string{schemas.TopicMetricsWindows, schemas.TopicForecasts, schemas.TopicDecisions, schemas.TopicActions, schemas.TopicDeadLetter} {
		name := topics.Name(base)
		parts, err := client.Partitions(name)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("dev: tap: partitions of %s: %w", name, err)
		}
		for _, p := range parts {
			pc, err := consumer.ConsumePartition(name, p, sarama.OffsetOldest)
			if err != nil {
				t.close()
				return nil, fmt.Errorf("dev: tap: consume %s/%d: %w", name, p, err)
			}
			t.pcs = append(t.pcs, pc)
			t.wg.Go(func() { t.read(base, pc) })
		}
	}
	return t, nil
}

func (t *tap) read(base string, pc sarama.PartitionConsumer) {
	errs := pc.Errors()
	for {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				return
			}
			t.add(base, m)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t.log.Warn("dev: tap", "topic", e.Topic, "partition", e.Partition, "err", e.Err)
		}
	}
}

func (t *tap) add(base string, m *sarama.ConsumerMessage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastMsg = time.Now()
	var err error
	switch base {
	case schemas.TopicMetricsWindows:
		var w schemas.Window
		if w, err = schemas.Decode[schemas.Window](m.Value); err == nil {
			k := wkey{w.Entity, w.Signal, w.SizeS, w.StartMs}
			if old, ok := t.windows[k]; !ok || w.Revision >= old.Revision {
				t.windows[k] = w
			}
			t.newestWin = max(t.newestWin, w.EndMs)
			if w.Signal == schemas.SignalQPS && w.EndMs >= t.last(w.Entity).qps.EndMs {
				t.last(w.Entity).qps = w
			}
		}
	case schemas.TopicForecasts:
		var f schemas.Forecast
		if f, err = schemas.Decode[schemas.Forecast](m.Value); err == nil {
			t.forecasts = append(t.forecasts, f)
			if f.Signal == schemas.SignalQPS && f.OriginMs >= t.last(f.Entity).forecast.OriginMs {
				t.last(f.Entity).forecast = f
			}
		}
	case schemas.TopicDecisions:
		// Scale decisions are summarised per service, inference decisions
		// listed; other kinds are counted.
		switch kafkax.HeaderValue(m.Headers, "ce_type") {
		case schemas.ScaleDecision{}.EventType():
			var d schemas.ScaleDecision
			if d, err = schemas.Decode[schemas.ScaleDecision](m.Value); err == nil {
				t.decisions = append(t.decisions, d)
				if d.AtMs >= t.last(d.Entity).decision.AtMs {
					t.last(d.Entity).decision = d
				}
			}
		case schemas.InferenceDecision{}.EventType():
			var d schemas.InferenceDecision
			if d, err = schemas.Decode[schemas.InferenceDecision](m.Value); err == nil {
				t.inference = append(t.inference, d)
			}
		case schemas.NodesDecision{}.EventType():
			var d schemas.NodesDecision
			if d, err = schemas.Decode[schemas.NodesDecision](m.Value); err == nil {
				t.nodes = append(t.nodes, d)
			}
		default:
			t.others++
		}
	case schemas.TopicActions:
		var a schemas.Action
		if a, err = schemas.Decode[schemas.Action](m.Value); err == nil {
			t.actions = append(t.actions, a)
		}
	case schemas.TopicDeadLetter:
		t.dead++
	}
	if t.m != nil {
		t.m.events.WithLabelValues(base).Inc()
		if err != nil {
			t.m.bad.WithLabelValues(base).Inc()
		}
	}
	if err != nil {
		t.bad++
		t.log.Warn("dev: tap: event does not decode", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
	}
}

// latest is the newest qps window, qps forecast and decision of a service.
type latest struct {
	qps      schemas.Window
	forecast schemas.Forecast
	decision schemas.ScaleDecision
}

// last returns the entity's latest record; the caller holds t.mu.
func (t *tap) last(entity string) *latest {
	l := t.latest[entity]
	if l == nil {
		l = &latest{}
		t.latest[entity] = l
	}
	return l
}

// latestOf returns a copy of the entity's latest record.
func (t *tap) latestOf(entity string) latest {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.latest[entity]; l != nil {
		return *l
	}
	return latest{}
}

// newestWindowEnd is the newest window end seen, zero before the first.
func (t *tap) newestWindowEnd() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.newestWin == 0 {
		return time.Time{}
	}
	return time.UnixMilli(t.newestWin)
}

// unactioned is how many scale and inference decisions read so far have
// no action yet: every decision of a kind the actuator handles ends as
// exactly one action.
func (t *tap) unactioned() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.decisions) + len(t.inference)
	for _, a := range t.actions {
		if a.DecisionKind != schemas.DecisionNodes { // node handovers report several steps
			n--
		}
	}
	return n
}

// drain waits until no message has arrived for quiet, or max passes.
func (t *tap) drain(ctx context.Context, quiet, maxWait time.Duration) {
	deadline := time.Now().Add(maxWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		t.mu.Lock()
		idle := time.Since(t.lastMsg)
		t.mu.Unlock()
		if idle >= quiet {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events is a consistent copy of what the tap has read.
type events struct {
	Windows   []schemas.Window // sorted by entity, signal, size, start
	Forecasts []schemas.Forecast
	Decisions []schemas.ScaleDecision
	Inference []schemas.InferenceDecision
	Nodes     []schemas.NodesDecision
	Actions   []schemas.Action
	Dead, Bad int
}

func (t *tap) snapshot() events {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev := events{
		Windows:   make([]schemas.Window, 0, len(t.windows)),
		Forecasts: append([]schemas.Forecast(nil), t.forecasts...),
		Decisions: append([]schemas.ScaleDecision(nil), t.decisions...),
		Inference: append([]schemas.InferenceDecision(nil), t.inference...),
		Nodes:     append([]schemas.NodesDecision(nil), t.nodes...),
		Actions:   append([]schemas.Action(nil), t.actions...),
		Dead:      t.dead, Bad: t.bad,
	}
	for _, w := range t.windows {
		ev.Windows = append(ev.Windows, w)
	}
	sort.Slice(ev.Windows, func(i, j int) bool { return schemas.CompareWindows(&ev.Windows[i], &ev.Windows[j]) < 0 })
	sort.SliceStable(ev.Decisions, func(i, j int) bool { return ev.Decisions[i].AtMs < ev.Decisions[j].AtMs })
	sort.SliceStable(ev.Nodes, func(i, j int) bool { return ev.Nodes[i].AtMs < ev.Nodes[j].AtMs })
	sort.SliceStable(ev.Actions, func(i, j int) bool { return ev.Actions[i].AtMs < ev.Actions[j].AtMs })
	return ev
}

func (t *tap) close() {
	for _, pc := range t.pcs {
		pc.AsyncClose()
	}
	t.wg.Wait()
	if t.consumer != nil {
		t.consumer.Close()
	}
	t.wg.Wait()
	if t.client != nil {
		t.client.Close()
	}
}
