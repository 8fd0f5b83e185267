package forecast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// Deps are what Run needs from outside the forecast section.
type Deps struct {
	// Kafka is the shared Kafka section (brokers, prefix, TLS/SASL).
	Kafka kafkax.Config
	// ModelFS holds ModelDir; nil means the local filesystem.
	ModelFS history.FS
	// Models, when set, is used instead of building a registry from
	// ModelFS (for `ebbflow dev` and tests that share one).
	Models *model.Registry
	Logger *slog.Logger
	// Registerer receives the ebbflow_forecast_* metrics.
	Registerer prometheus.Registerer
	// Instance names this replica in CloudEvents sources and logs.
	Instance string
	// Ready, when set, is called once the consumer group has joined.
	Ready func()
	// HistoryFS and HistoryRoot are the metric history scheduled retrains
	// read (cfg.Retrain.Interval > 0).
	HistoryFS   history.FS
	HistoryRoot string
}

type metrics struct {
	windows, forecasts, fallbacks, bad, skipped, publishErrors, rebuilt *prometheus.CounterVec
	entities                                                            prometheus.Gauge
	// Forecast error against last value, summed per signal and horizon (Score).
	absErr, lastValueAbsErr, scored *prometheus.CounterVec
}

// observeScore adds one judged forecast to the error counters.
func (m *metrics) observeScore(s Score) {
	l := []string{s.Signal, strconv.Itoa(s.Horizon), s.Method}
	m.absErr.WithLabelValues(l...).Add(s.AbsErr)
	m.lastValueAbsErr.WithLabelValues(l...).Add(s.LastValueAbsErr)
	m.scored.WithLabelValues(l...).Inc()
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		windows:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_windows_total", Help: "Windows consumed from metrics.windows."}, []string{"signal"}),
		forecasts:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_forecasts_total", Help: "Forecasts published, by signal and how they were made (model or a baseline)."}, []string{"signal", "method"}),
		fallbacks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_fallbacks_total", Help: "Forecasts that fell back to a baseline."}, []string{"signal"}),
		bad:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_bad_input_total", Help: "Records on metrics.windows that are not valid windows (sent to the dead-letter topic)."}, []string{"reason"}),
		skipped:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_skipped_windows_total", Help: "Valid windows not forecast (other size, too old, revision of an older step)."}, []string{"reason"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_publish_errors_total", Help: "Forecasts or dead letters Kafka refused."}, []string{"topic"}),
		rebuilt:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_rebuilt_windows_total", Help: "Windows read back to rebuild history after partitions were assigned."}, []string{"partition"}),
		entities:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_forecast_entities", Help: "Entities whose history is held in memory."}),
		absErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_abs_error_total",
			Help: "Sum of the absolute errors of forecasts judged when their target window closed, by signal, horizon (steps ahead) and method."}, []string{"signal", "horizon", "method"}),
		lastValueAbsErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_last_value_abs_error_total",
			Help: "Sum of the absolute errors last value (the value at each judged forecast's origin) would have made on the same targets, by signal, horizon and method."}, []string{"signal", "horizon", "method"}),
		scored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_scored_total",
			Help: "Forecasts judged against the window they forecast, by signal, horizon and method."}, []string{"signal", "horizon", "method"}),
	}
	if reg != nil {
		reg.MustRegister(m.windows, m.forecasts, m.fallbacks, m.bad, m.skipped, m.publishErrors, m.rebuilt, m.entities,
			m.absErr, m.lastValueAbsErr, m.scored)
	}
	return m
}

// Run is the forecaster service: it consumes metrics.windows in the
// consumer group cfg.Group until ctx ends, and publishes a Forecast for
// every newest closed window of cfg.Signals.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("forecast: %w", err)
	}
	// The composition root hands in a logger that already names the
	// component; name it only on the default one.
	log := deps.Logger
	if log == nil {
		log = slog.Default().With("component", "forecast")
	}
	if deps.Instance == "" {
		h, _ := os.Hostname()
		deps.Instance = h
	}
	reg := deps.Models
	if reg == nil {
		fsys := deps.ModelFS
		if fsys == nil {
			fsys = history.LocalFS{}
		}
		reg = model.NewRegistry(fsys, cfg.ModelDir, log, deps.Registerer)
		if err := reg.Reload(ctx); err != nil {
			log.Warn("forecast: some models were refused at start; affected signals use baselines", "err", err)
		}
		go reg.Run(ctx, cfg.ReloadInterval)
	}
	if err := startRetrainer(ctx, cfg, deps, reg, log); err != nil {
		return err
	}
	topics := deps.Kafka.Topics()
	in, out, dl := topics.Name(schemas.TopicMetricsWindows), topics.Name(schemas.TopicForecasts), topics.Name(schemas.TopicDeadLetter)
	if err := kafkax.EnsureTopics(ctx, deps.Kafka, in, out, dl); err != nil {
		return fmt.Errorf("forecast: %w", err)
	}
	sc, err := deps.Kafka.GroupConsumer("oldest")
	if err != nil {
		return fmt.Errorf("forecast: %w", err)
	}
	sc.Consumer.Return.Errors = true
	// Forecasts are a notification stream (a newer one supersedes): an
	// async, non-idempotent producer, errors counted.
	sc.Producer.Return.Successes = false
	sc.Producer.Return.Errors = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Compression = sarama.CompressionZSTD
	sc.Producer.Flush.Frequency = 5 * time.Millisecond
	client, err := sarama.NewClient(deps.Kafka.Brokers, sc)
	if err != nil {
		return fmt.Errorf("forecast: connect to %v: %w", deps.Kafka.Brokers, err)
	}
	defer client.Close()
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("forecast: producer: %w", err)
	}
	m := newMetrics(deps.Registerer)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pe := range producer.Errors() {
			m.publishErrors.WithLabelValues(pe.Msg.Topic).Inc()
			log.Error("forecast: publish failed", "topic", pe.Msg.Topic, "err", pe.Err)
		}
	}()
	defer func() {
		producer.AsyncClose()
		wg.Wait()
	}()
	group, err := sarama.NewConsumerGroupFromClient(cfg.Group, client)
	if err != nil {
		return fmt.Errorf("forecast: consumer group %s: %w", cfg.Group, err)
	}
	defer group.Close()
	go func() {
		for err := range group.Errors() {
			log.Warn("forecast: consumer group", "group", cfg.Group, "err", err)
		}
	}()
	h := &handler{cfg: cfg, client: client, producer: producer, models: reg.Current, log: log, m: m,
		in: in, out: out, dl: dl, source: "/ebbflow/forecast/" + deps.Instance, ready: deps.Ready}
	log.Info("forecast: consuming", "topic", in, "group", cfg.Group, "publishing", out, "signals", cfg.Signals, "models", cfg.ModelDir)
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{in}, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				break
			}
			log.Warn("forecast: consume", "topic", in, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

type handler struct {
	cfg       Config
	client    sarama.Client
	producer  sarama.AsyncProducer
	models    func() *model.Set
	log       *slog.Logger
	m         *metrics
	in, out   string
	dl        string
	source    string
	ready     func()
	readyOnce sync.Once
	mu        sync.Mutex
	held      map[int32]int
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.log.Info("forecast: partitions assigned", "claims", s.Claims()[h.in], "generation", s.GenerationID())
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.held = nil
	h.mu.Unlock()
	h.m.entities.Set(0)
	return nil
}

func (h *handler) setEntities(p int32, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[int32]int{}
	}
	h.held[p] = n
	t := 0
	for _, v := range h.held {
		t += v
	}
	h.m.entities.Set(float64(t))
}

// ConsumeClaim rebuilds the partition's history, then forecasts each
// window. One Processor per partition: entities are keyed to partitions,
// so nothing is shared between claims.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	p := NewProcessor(h.cfg, h.models)
	p.OnScore = h.m.observeScore
	n, err := h.rebuild(sess.Context(), p, claim.Partition(), claim.InitialOffset())
	if err != nil {
		// Forecasting continues: the history fills as windows arrive, and
		// baselines cover the gap, said so in each event.
		h.log.Error("forecast: history rebuild failed; forecasting from new windows only", "topic", h.in, "partition", claim.Partition(), "err", err)
	} else {
		h.log.Info("forecast: history rebuilt", "topic", h.in, "partition", claim.Partition(), "windows", n, "entities", p.Entities(), "until_offset", claim.InitialOffset())
	}
	h.setEntities(claim.Partition(), p.Entities())
	h.readyOnce.Do(func() {
		if h.ready != nil {
			h.ready()
		}
	})
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.handle(p, msg)
			sess.MarkMessage(msg, "")
			if p.Entities()%64 == 0 {
				h.setEntities(claim.Partition(), p.Entities())
			}
		}
	}
}

func (h *handler) handle(p *Processor, msg *sarama.ConsumerMessage) {
	w, err := schemas.Decode[schemas.Window](msg.Value)
	if err != nil {
		h.m.bad.WithLabelValues("schema").Inc()
		h.log.Warn("forecast: bad window sent to the dead-letter topic", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
		if pm, err := kafkax.DeadLetter(h.dl, h.source, msg, "schema", err.Error(), msg.Value); err == nil {
			h.producer.Input() <- pm
		} else {
			h.log.Error("forecast: dead letter not built", "err", err)
		}
		return
	}
	if why := OutOfRange(w, time.Now(), h.cfg.MaxFuture); why != "" {
		h.m.bad.WithLabelValues("out_of_range").Inc()
		h.log.Warn("forecast: out-of-range window sent to the dead-letter topic", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "entity", w.Entity, "why", why)
		if pm, err := kafkax.DeadLetter(h.dl, h.source, msg, "out_of_range", why, msg.Value); err == nil {
			h.producer.Input() <- pm
		} else {
			h.log.Error("forecast: dead letter not built", "err", err)
		}
		return
	}
	h.m.windows.WithLabelValues(w.Signal).Inc()
	f, ok := p.Observe(w)
	if !ok {
		reason := "not_newest"
		if w.SizeS != h.cfg.StepS {
			reason = "size"
		} else if !p.signals[w.Signal] {
			reason = "signal_not_forecast"
		}
		h.m.skipped.WithLabelValues(reason).Inc()
		return
	}
	pm, err := kafkax.NewMessage(h.out, h.source, f)
	if err != nil {
		h.m.publishErrors.WithLabelValues(h.out).Inc()
		h.log.Error("forecast: forecast failed validation", "entity", f.Entity, "signal", f.Signal, "err", err)
		return
	}
	method := "model"
	if f.Fallback != "" {
		method = f.Fallback
		h.m.fallbacks.WithLabelValues(f.Signal).Inc()
	}
	h.m.forecasts.WithLabelValues(f.Signal, method).Inc()
	h.producer.Input() <- pm
}

// rebuild reads the partition back from the offset of (event time of the
// last record before the claim) − cfg.Rebuild up to the claim's initial
// offset, storing windows without forecasting. Record timestamps are
// window ends (kafkax.NewMessage), so the look-back is in event time.
func (h *handler) rebuild(ctx context.Context, p *Processor, partition int32, until int64) (int, error) {
	if until <= 0 || h.cfg.Rebuild == 0 {
		return 0, nil
	}
	oldest, err := h.client.GetOffset(h.in, partition, sarama.OffsetOldest)
	if err != nil {
		return 0, fmt.Errorf("topic %s partition %d: oldest offset: %w", h.in, partition, err)
	}
	if oldest >= until {
		return 0, nil
	}
	consumer, err := sarama.NewConsumerFromClient(h.client)
	if err != nil {
		return 0, err
	}
	defer consumer.Close()
	// The newest record before the claim gives the event time to count from.
	last, err := h.readRange(ctx, consumer, partition, max(until-1, oldest), until, nil)
	if err != nil {
		return 0, err
	}
	if last == nil {
		return 0, nil
	}
	start, err := h.client.GetOffset(h.in, partition, last.Timestamp.Add(-h.cfg.Rebuild).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("topic %s partition %d: offset for time: %w", h.in, partition, err)
	}
	if start < 0 || start < oldest {
		start = oldest
	}
	n := 0
	_, err = h.readRange(ctx, consumer, partition, start, until, func(msg *sarama.ConsumerMessage) {
		// Dead-lettered when first consumed: not history either.
		if w, err := schemas.Decode[schemas.Window](msg.Value); err == nil && OutOfRange(w, time.Now(), h.cfg.MaxFuture) == "" {
			p.Store(w)
			n++
		}
	})
	h.m.rebuilt.WithLabelValues(fmt.Sprint(partition)).Add(float64(n))
	return n, err
}

// readRange reads [from, until) and returns the last message. With
// read_committed, transaction markers and aborted records leave offsets
// that never arrive, so it also stops once the partition goes quiet.
func (h *handler) readRange(ctx context.Context, c sarama.Consumer, partition int32, from, until int64, fn func(*sarama.ConsumerMessage)) (*sarama.ConsumerMessage, error) {
	pc, err := c.ConsumePartition(h.in, partition, from)
	if err != nil {
		return nil, fmt.Errorf("topic %s partition %d: read back from %d: %w", h.in, partition, from, err)
	}
	defer pc.Close()
	var last *sarama.ConsumerMessage
	quiet := time.NewTimer(2 * time.Second)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case err := <-pc.Errors():
			return last, fmt.Errorf("topic %s partition %d: read back: %w", h.in, partition, err)
		case <-quiet.C:
			return last, nil
		case msg := <-pc.Messages():
			if msg.Offset >= until {
				return last, nil
			}
			last = msg
			if fn != nil {
				fn(msg)
			}
			if msg.Offset >= until-1 {
				return last, nil
			}
			if !quiet.Stop() {
				<-quiet.C
			}
			quiet.Reset(2 * time.Second)
		}
	}
}

// OutOfRange says why a window that passed its schema cannot be a real
// one, or "" when it can: its end is not its start plus its size, or (with
// maxFuture > 0) it ends more than maxFuture after now.
func OutOfRange(w schemas.Window, now time.Time, maxFuture time.Duration) string {
	if w.EndMs != w.StartMs+w.SizeS*1000 {
		return fmt.Sprintf("end_ms %d is not start_ms %d + size_s %d s", w.EndMs, w.StartMs, w.SizeS)
	}
	if limit := now.Add(maxFuture).UnixMilli(); maxFuture > 0 && w.EndMs > limit {
		return fmt.Sprintf("end_ms %d (%s) is more than max_future %s after the clock (%s)", w.EndMs,
			time.UnixMilli(w.EndMs).UTC().Format(time.RFC3339), maxFuture, now.UTC().Format(time.RFC3339))
	}
	return ""
}
