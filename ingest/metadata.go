package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// Metric metadata: the TYPE, HELP and UNIT senders declare (remote_write
// 1.0's WriteRequest.metadata, 2.0's per-series TimeSeries.metadata) have
// no column in metrics.raw, whose Arrow layout is fixed. Ingest writes
// them to the compacted topic <prefix>.metrics.metadata.v1, key the
// metric family name, value a schemas.MetricMetadata, only when a family's
// metadata is new or changed in this process — or unchanged but last
// written more than metadataRefresh ago, which keeps last_seen_ms true to
// within that interval. The last-written map is bounded
// (metadataMaxFamilies); past it an arbitrary family is forgotten, and is
// written again (a harmless duplicate on a compacted topic) when seen next.
//
// The records go through their own idempotent producer, NOT in the
// samples' Kafka transactions: metadata is state (the last record of a key
// wins), not a stream that must line up with samples, and tying it to the
// transactions would have to undo the last-written map when a transaction
// aborts. So a metadata record can be visible before or without the
// samples of the request that declared it (if that request then failed,
// its resend declares it again: the record is written once). Writing never
// delays a request: events queue (metadataQueue) for one writer goroutine;
// when the queue is full the event is dropped and counted
// (ebbflow_ingest_metadata_total{result="dropped"}) and not remembered, so
// the next request declaring it tries again.

const (
	metadataMaxFamilies = 100_000
	metadataRefresh     = time.Hour
	metadataQueue       = 4096
)

var metricTypeNames = []string{"unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"}

func metricTypeName(t int32) string {
	if t < 0 || int(t) >= len(metricTypeNames) {
		return "unknown"
	}
	return metricTypeNames[t]
}

type metaEntry struct {
	typ, unit, help string
	first, written  int64 // unix ms
}

// MetadataWriter writes metric metadata to the metadata topic (see above).
type MetadataWriter struct {
	topic string
	m     *Metrics
	log   *slog.Logger
	prod  sarama.SyncProducer
	now   func() time.Time

	mu     sync.Mutex
	seen   map[string]metaEntry
	q      chan schemas.MetricMetadata
	closed bool
	done   chan struct{}
	once   sync.Once
}

// NewMetadataWriter starts a writer on prod (owned; closed by Close).
func NewMetadataWriter(prod sarama.SyncProducer, topic string, m *Metrics, log *slog.Logger) *MetadataWriter {
	w := &MetadataWriter{topic: topic, m: m, log: log, prod: prod, now: time.Now,
		seen: map[string]metaEntry{}, q: make(chan schemas.MetricMetadata, metadataQueue), done: make(chan struct{})}
	go w.run()
	return w
}

// Observe takes the metadata a request declared (source rw1 or rw2). It
// copies what it keeps: mds may point into a request body.
func (w *MetadataWriter) Observe(source string, mds []MetricMeta) {
	if w == nil || len(mds) == 0 {
		return
	}
	now := w.now().UnixMilli()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for _, md := range mds {
		typ := metricTypeName(md.Type)
		e, ok := w.seen[md.Name]
		if ok && e.typ == typ && e.unit == md.Unit && e.help == md.Help && now-e.written < metadataRefresh.Milliseconds() {
			continue
		}
		if !ok {
			if len(w.seen) >= metadataMaxFamilies {
				for k := range w.seen {
					delete(w.seen, k)
					break
				}
			}
			e.first = now
		}
		name := strings.Clone(md.Name)
		e.typ, e.unit, e.help, e.written = typ, strings.Clone(md.Unit), strings.Clone(md.Help), now
		ev := schemas.MetricMetadata{Metric: name, Type: typ, Unit: e.unit, Help: e.help, Source: source, FirstSeenMs: e.first, LastSeenMs: now}
		select {
		case w.q <- ev:
			w.seen[name] = e
		default:
			w.m.Metadata.WithLabelValues("dropped").Inc()
		}
	}
}

func (w *MetadataWriter) run() {
	defer close(w.done)
	for ev := range w.q {
		msg, err := kafkax.NewMessage(w.topic, "/ebbflow/ingest", ev)
		if err == nil {
			_, _, err = w.prod.SendMessage(msg)
		}
		if err != nil {
			w.m.Metadata.WithLabelValues("failed").Inc()
			w.log.Warn("metric metadata not written; it is written when declared again", "metric", ev.Metric, "topic", w.topic, "err", err)
			w.mu.Lock()
			if e, ok := w.seen[ev.Metric]; ok && e.written == ev.LastSeenMs {
				delete(w.seen, ev.Metric)
			}
			w.mu.Unlock()
			continue
		}
		w.m.Metadata.WithLabelValues("written").Inc()
	}
}

// Close writes what is queued and closes the producer.
func (w *MetadataWriter) Close() error {
	if w == nil {
		return nil
	}
	var err error
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.q)
		w.mu.Unlock()
		<-w.done
		err = w.prod.Close()
	})
	return err
}

// EnsureMetadataTopic creates the metadata topic (one partition,
// cleanup.policy=compact) unless it exists or topic creation is off.
func EnsureMetadataTopic(ctx context.Context, kc kafkax.Config, topic string) error {
	policy := "compact"
	return kafkax.EnsureTopic(ctx, kc, topic, sarama.TopicDetail{NumPartitions: 1,
		ConfigEntries: map[string]*string{"cleanup.policy": &policy}})
}

// newMetadataWriter builds the writer Run uses: the topic (created when
// kafka.create_topics), an idempotent producer.
func newMetadataWriter(ctx context.Context, kc kafkax.Config, topic string, m *Metrics, log *slog.Logger) (*MetadataWriter, error) {
	if err := EnsureMetadataTopic(ctx, kc, topic); err != nil {
		return nil, err
	}
	sc, err := kc.IdempotentProducer()
	if err != nil {
		return nil, err
	}
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("ingest: metadata producer for %s: %w", topic, err)
	}
	return NewMetadataWriter(prod, topic, m, log), nil
}
