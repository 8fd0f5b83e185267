package window

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/history/crashpoint"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// Deps are what the processor runs against.
type Deps struct {
	// Kafka is the cluster and topic naming.
	Kafka kafkax.Config
	// History is the history store; nil disables history writing.
	History history.FS
	// HistoryRoot is the directory under which windows/ lives.
	HistoryRoot string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the processor's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Source is the CloudEvents source of produced events; default
	// /ebbflow/window/<hostname>.
	Source string
}

// Run consumes metrics.raw in the consumer group cfg.Group until ctx ends
// or a partition fails, producing windows to metrics.windows exactly once
// and writing them to the history. A failure of a transaction or of the
// history store ends Run with the error: the committed state is always
// consistent, and a restarted processor resumes from it (see the package
// documentation).
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("window: config: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Source == "" {
		host, _ := os.Hostname()
		deps.Source = "/ebbflow/window/" + host
	}
	if cfg.History && deps.History == nil {
		return errors.New("window: history is on but Deps.History is nil")
	}
	topics := deps.Kafka.Topics()
	raw := topics.Name(schemas.TopicMetricsRaw)
	if err := kafkax.EnsureTopics(ctx, deps.Kafka, raw, topics.Name(schemas.TopicMetricsWindows), topics.Name(schemas.TopicDeadLetter)); err != nil {
		return fmt.Errorf("window: %w", err)
	}
	sc, err := consumerConfig(cfg, deps.Kafka)
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(deps.Kafka.Brokers, sc)
	if err != nil {
		return fmt.Errorf("window: connect to %v: %w", deps.Kafka.Brokers, err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("window: connect admin to %v: %w", deps.Kafka.Brokers, err)
	}
	group, err := sarama.NewConsumerGroupFromClient(cfg.Group, client)
	if err != nil {
		return fmt.Errorf("window: join group %s on %v: %w", cfg.Group, deps.Kafka.Brokers, err)
	}
	defer group.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	h := &handler{cfg: cfg, deps: deps, client: client, admin: admin, m: newMetrics(deps.Registerer), fail: cancel,
		windowsTopic: topics.Name(schemas.TopicMetricsWindows), deadTopic: topics.Name(schemas.TopicDeadLetter)}
	go func() {
		for err := range group.Errors() {
			deps.Logger.Warn("window: consumer group error", "group", cfg.Group, "err", err)
		}
	}()
	if err := fenceIfGroupEmpty(ctx, cfg, deps, client, admin, raw); err != nil {
		return err
	}
	deps.Logger.Info("window processor starting", "group", cfg.Group, "topic", raw, "sizes", cfg.Sizes, "delay", cfg.Delay, "allowed_lateness", cfg.AllowedLateness)
	for {
		err := group.Consume(ctx, []string{raw}, h)
		if ctx.Err() != nil {
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) && !errors.Is(c, context.DeadlineExceeded) {
				return c // a partition failed
			}
			return nil
		}
		switch {
		case errors.Is(err, sarama.ErrUnstableOffsetCommit):
			// A transaction holding offsets of this group is still open: a
			// live owner finishing it, or a dead one the broker aborts
			// after the transaction timeout. Wait and join again.
			deps.Logger.Info("window: committed offsets not yet stable (an open transaction); retrying", "group", cfg.Group)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		case err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup):
			return fmt.Errorf("window: consume %s in group %s: %w", raw, cfg.Group, err)
		}
	}
}

// fenceIfGroupEmpty aborts the open transactions a crashed processor left
// behind, when no member of the group is alive (so none can be an owner
// still at work): initialising a producer with a partition's transactional
// id completes or aborts its predecessor's transaction at once, instead of
// after the transaction timeout.
func fenceIfGroupEmpty(ctx context.Context, cfg Config, deps Deps, client sarama.Client, admin sarama.ClusterAdmin, topic string) error {
	groups, err := admin.DescribeConsumerGroups([]string{cfg.Group})
	if err != nil || len(groups) != 1 {
		return nil // best effort: the transaction timeout still applies
	}
	if st := groups[0].State; st != "Empty" && st != "Dead" && st != "" {
		return nil
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("window: partitions of %s: %w", topic, err)
	}
	for _, p := range parts {
		if ctx.Err() != nil {
			return nil
		}
		txnID := fmt.Sprintf("%s-%s-%d", cfg.Group, topic, p)
		psc, err := producerConfig(deps.Kafka, txnID)
		if err != nil {
			return err
		}
		prod, err := sarama.NewSyncProducer(deps.Kafka.Brokers, psc)
		if err != nil {
			return fmt.Errorf("window: fence transactional id %s: %w", txnID, err)
		}
		prod.Close()
	}
	return nil
}

func consumerConfig(cfg Config, kc kafkax.Config) (*sarama.Config, error) {
	initial := "oldest"
	if cfg.StartFrom == "newest" {
		initial = "newest"
	}
	sc, err := kc.GroupConsumer(initial)
	if err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Return.Errors = true
	switch cfg.Rebalance {
	case RebalanceCooperativeSticky:
		sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	case RebalanceSticky:
		sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	}
	return sc, nil
}

// producerConfig is the transactional producer of one input partition. One
// transactional id per input partition (EOS as in KIP-98): a new owner of
// the partition fences the previous one and aborts its open transaction.
func producerConfig(kc kafkax.Config, txnID string) (*sarama.Config, error) {
	sc, err := kc.TransactionalProducer(txnID)
	if err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	return sc, nil
}

type handler struct {
	cfg          Config
	deps         Deps
	client       sarama.Client
	admin        sarama.ClusterAdmin
	m            *metrics
	fail         context.CancelCauseFunc
	windowsTopic string
	deadTopic    string
	failOnce     sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	err := h.consume(sess.Context(), claim)
	if err != nil {
		h.failOnce.Do(func() { h.fail(err) })
	}
	return err
}

// partProc is the processing of one claimed input partition.
type partProc struct {
	h         *handler
	topic     string
	partition int32
	plabel    string
	log       *slog.Logger
	prod      sarama.SyncProducer
	e         *engine
	st        *partitionState
	enc       *schemas.RawEncoder
	samples   []schemas.RawSample

	pendingDead []*sarama.ProducerMessage
	// Metric children of this partition, resolved once (a label lookup per
	// record is measurable at these rates).
	mProcess, mRebuild, mAccepted, mStale, mLate, mInvalid prometheus.Counter
	mLag                                                   prometheus.Gauge
	advancedAt                                             time.Time // wall time of the first watermark advance in this batch
	lastRecord                                             time.Time
}

func (h *handler) consume(ctx context.Context, claim sarama.ConsumerGroupClaim) error {
	topic, part := claim.Topic(), claim.Partition()
	txnID := fmt.Sprintf("%s-%s-%d", h.cfg.Group, topic, part)
	psc, err := producerConfig(h.deps.Kafka, txnID)
	if err != nil {
		return err
	}
	// Creating the producer runs InitProducerId, which fences a previous
	// owner and completes or aborts its transaction; only then are the
	// committed offset and metadata final.
	prod, err := sarama.NewSyncProducer(h.deps.Kafka.Brokers, psc)
	if err != nil {
		return fmt.Errorf("window: transactional producer %s for %s/%d: %w", txnID, topic, part, err)
	}
	defer prod.Close()
	e, err := newEngine(h.cfg.Settings())
	if err != nil {
		return err
	}
	pp := &partProc{h: h, topic: topic, partition: part, plabel: strconv.Itoa(int(part)), prod: prod, e: e, st: e.st,
		enc: schemas.NewRawEncoder(), log: h.deps.Logger.With("topic", topic, "partition", part), lastRecord: time.Now()}
	pp.mProcess, pp.mRebuild = h.m.records.WithLabelValues("process"), h.m.records.WithLabelValues("rebuild")
	pp.mAccepted, pp.mStale = h.m.samples.WithLabelValues("accepted"), h.m.samples.WithLabelValues("stale")
	pp.mLate, pp.mInvalid = h.m.samples.WithLabelValues("late"), h.m.samples.WithLabelValues("invalid")
	pp.mLag = h.m.lag.WithLabelValues(pp.plabel)
	if err := pp.restore(claim.InitialOffset()); err != nil {
		return err
	}
	if h.cfg.History {
		if err := pp.cleanOrphans(ctx); err != nil {
			return err
		}
	}
	tick := time.NewTicker(h.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return pp.shutdown()
			}
			if pp.e.skip(msg.Offset) {
				continue
			}
			pp.process(msg)
			pp.mLag.Set(float64(claim.HighWaterMarkOffset() - pp.e.next))
			if pp.e.batchRecs >= h.cfg.MaxBatchRecords {
				if err := pp.flush(ctx); err != nil {
					return err
				}
			}
		case <-tick.C:
			pp.e.caughtUp()
			idle := time.Since(pp.lastRecord).Milliseconds()
			if !pp.e.rebuilding && pp.st.idleAdvance(idle) && pp.advancedAt.IsZero() {
				pp.advancedAt = time.Now()
			}
			if err := pp.flush(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			return pp.shutdown()
		}
	}
}

// restore reads the committed offset and metadata of the partition and
// prepares the rebuild of the windows that were open at the last commit.
func (pp *partProc) restore(initial int64) error {
	h := pp.h
	resp, err := h.admin.ListConsumerGroupOffsets(h.cfg.Group, map[string][]int32{pp.topic: {pp.partition}})
	if err != nil {
		return fmt.Errorf("window: fetch committed offset of %s/%d in group %s: %w", pp.topic, pp.partition, h.cfg.Group, err)
	}
	blk := resp.GetBlock(pp.topic, pp.partition)
	if blk == nil || blk.Offset < 0 {
		from := initial
		if initial < 0 {
			from, err = h.client.GetOffset(pp.topic, pp.partition, initial)
			if err != nil {
				return fmt.Errorf("window: resolve start offset of %s/%d: %w", pp.topic, pp.partition, err)
			}
		}
		pp.e.restore(-1, commitMeta{}, false, from)
		pp.log.Info("window: partition assigned, no committed state", "start_offset", from)
		return nil
	}
	meta, ok, err := parseCommitMeta(blk.Metadata)
	if err != nil {
		return fmt.Errorf("window: %s/%d: %w", pp.topic, pp.partition, err)
	}
	pp.e.restore(blk.Offset, meta, ok, 0)
	pp.log.Info("window: partition assigned", "resume_offset", blk.Offset, "committed_next", pp.e.committed.next,
		"watermark", pp.e.committed.wm, "rebuild_records", pp.e.committed.next-blk.Offset)
	return nil
}

func (pp *partProc) process(msg *sarama.ConsumerMessage) {
	m := pp.h.m
	var err error
	pp.samples, err = schemas.DecodeRaw(pp.samples[:0], msg.Value)
	if err != nil {
		if pp.e.undecodable(msg.Offset) {
			pp.lastRecord = time.Now()
			pp.mProcess.Inc()
			m.decodeErrors.Inc()
			pp.deadLetter(msg, "decode", err.Error(), msg.Value)
			pp.log.Warn("window: undecodable record sent to dead letter", "offset", msg.Offset, "err", err)
		}
		return
	}
	limit := pp.futureLimit(msg)
	r := pp.e.recordAt(msg.Offset, limit, pp.samples)
	if r.rebuild {
		pp.mRebuild.Inc()
		return
	}
	pp.lastRecord = time.Now()
	pp.mProcess.Inc()
	pp.mAccepted.Add(float64(r.accepted))
	if r.stale > 0 {
		pp.mStale.Add(float64(r.stale))
		m.staleSamples.Add(float64(r.stale))
	}
	if len(r.late) > 0 {
		pp.mLate.Add(float64(len(r.late)))
		m.lateSamples.Add(float64(len(r.late)))
	}
	if len(r.invalid) > 0 {
		pp.mInvalid.Add(float64(len(r.invalid)))
		m.invalidSamples.Add(float64(len(r.invalid)))
	}
	if r.advanced && pp.advancedAt.IsZero() {
		pp.advancedAt = time.Now()
	}
	for _, bad := range []struct {
		reason string
		ss     []schemas.RawSample
	}{{"late", r.late}, {"invalid", r.invalid}} {
		if len(bad.ss) == 0 {
			continue
		}
		payload, err := pp.enc.Encode(bad.ss)
		if err != nil {
			payload = nil
		}
		text := fmt.Sprintf("%d sample(s) beyond the allowed lateness %s (watermark %s)", len(bad.ss), pp.h.cfg.AllowedLateness, time.UnixMilli(pp.st.wm).UTC().Format(time.RFC3339))
		if bad.reason == "invalid" {
			text = fmt.Sprintf("%d invalid sample(s), the first: %s", len(bad.ss), sampleProblemAt(&bad.ss[0], limit, pp.h.cfg.MaxFuture))
		}
		pp.deadLetter(msg, bad.reason, text, payload)
	}
	crashpoint.Hit(crashpoint.MidWindow)
}

// futureLimit is the latest event time a sample of msg may carry: the
// record's timestamp (set when ingest produced it, so a rebuild after a
// restart judges alike) plus max_future; no limit when max_future is 0 or
// the record has no timestamp.
func (pp *partProc) futureLimit(msg *sarama.ConsumerMessage) int64 {
	mf := pp.h.cfg.MaxFuture
	if mf <= 0 || msg.Timestamp.IsZero() || msg.Timestamp.UnixMilli() <= 0 {
		return math.MaxInt64
	}
	return msg.Timestamp.UnixMilli() + mf.Milliseconds()
}

func (pp *partProc) deadLetter(msg *sarama.ConsumerMessage, reason, text string, payload []byte) {
	pm, err := kafkax.DeadLetter(pp.h.deadTopic, pp.h.deps.Source, msg, reason, text, payload)
	if err != nil {
		pp.log.Error("window: cannot build dead letter", "offset", msg.Offset, "reason", reason, "err", err)
		return
	}
	pp.pendingDead = append(pp.pendingDead, pm)
	pp.h.m.deadLetters.WithLabelValues(reason).Inc()
}

var partFileRE = regexp.MustCompile(`^part-p(\d+)-o(\d+)-(-?\d+)-w(-?\d+)\.parquet$`)

// fileName names a history file deterministically from what it covers.
func (pp *partProc) fileName(first, last int64) string {
	return fmt.Sprintf("part-p%d-o%d-%d-w%d.parquet", pp.partition, first, last, pp.st.wm)
}

// cleanOrphans removes, at partition assignment, the history files of this
// partition that a transaction wrote but never committed (a crash after the
// rename and before the commit). A file covering records starts at or past
// the committed position; a file of an idle flush (no records: last <
// first) starts at it and was written at a watermark past the committed one.
// The windows in them are emitted again after the restart, under new names.
// Without committed state, every file of the partition from the start offset
// on is such a file.
func (pp *partProc) cleanOrphans(ctx context.Context) error {
	h := pp.h
	from := pp.e.resumeFrom
	if pp.e.hasMeta {
		from = pp.e.committed.next
	}
	var fromMs int64
	if pp.e.hasMeta && pp.e.committed.hasWM {
		fromMs = pp.e.committed.wm - h.cfg.AllowedLateness.Milliseconds() - pp.st.set.maxSizeMs() - time.Hour.Milliseconds()
	}
	files, err := history.ListFiles(ctx, h.deps.History, h.deps.HistoryRoot, 0, fromMs, 0)
	if err != nil {
		return fmt.Errorf("window: %s/%d: list history for uncommitted files: %w", pp.topic, pp.partition, err)
	}
	for _, f := range files {
		mm := partFileRE.FindStringSubmatch(path.Base(f))
		if mm == nil {
			continue
		}
		p, _ := strconv.ParseInt(mm[1], 10, 32)
		first, _ := strconv.ParseInt(mm[2], 10, 64)
		last, _ := strconv.ParseInt(mm[3], 10, 64)
		wm, _ := strconv.ParseInt(mm[4], 10, 64)
		if int32(p) != pp.partition || first < from {
			continue
		}
		if last < first && pp.e.hasMeta && pp.e.committed.hasWM && wm <= pp.e.committed.wm {
			continue // a committed idle flush
		}
		if err := h.deps.History.Remove(f); err != nil {
			return fmt.Errorf("window: %s/%d: remove uncommitted history file %s: %w", pp.topic, pp.partition, f, err)
		}
		h.m.orphansRemoved.Inc()
		pp.log.Info("window: removed history file of an uncommitted transaction", "file", f)
	}
	return nil
}

// flush emits what the watermark closed and late data revised, writes it
// to the history, and commits it with the input position in one Kafka
// transaction. Any error is fatal to the processor (see Run).
func (pp *partProc) flush(ctx context.Context) error {
	h := pp.h
	now := time.Now()
	windows, meta, resume, dirty := pp.e.flush()
	h.m.openWindows.WithLabelValues(pp.plabel).Set(float64(len(pp.st.windows)))
	h.m.openSeries.WithLabelValues(pp.plabel).Set(float64(len(pp.st.series)))
	if pp.st.hasWM {
		h.m.watermarkDelay.WithLabelValues(pp.plabel).Set(now.Sub(time.UnixMilli(pp.st.wm)).Seconds())
	}
	if !dirty && len(pp.pendingDead) == 0 {
		return nil
	}
	if err := pp.prod.BeginTxn(); err != nil {
		return fmt.Errorf("window: %s/%d: begin transaction: %w", pp.topic, pp.partition, err)
	}
	msgs := make([]*sarama.ProducerMessage, 0, len(windows)+len(pp.pendingDead))
	kept := windows[:0]
	for _, w := range windows {
		if !finite(&w) {
			// Sums of huge values can overflow; such a window cannot be
			// written as JSON. Say so and go on rather than stop the stream.
			h.m.invalidWindows.Inc()
			pp.log.Error("window: dropping a window with an infinite aggregate (overflow)", "window", w.EventID())
			continue
		}
		kept = append(kept, w)
		msgs = append(msgs, windowMessage(h.windowsTopic, h.deps.Source, w))
	}
	windows = kept
	msgs = append(msgs, pp.pendingDead...)
	if len(msgs) > 0 {
		if err := pp.prod.SendMessages(msgs); err != nil {
			return pp.abort(fmt.Errorf("window: %s/%d: produce %d windows to %s: %w", pp.topic, pp.partition, len(windows), h.windowsTopic, err))
		}
	}
	crashpoint.Hit(crashpoint.MidTransaction)
	if h.cfg.History && len(windows) > 0 {
		first := pp.e.batchFirst
		if pp.e.batchRecs == 0 {
			first = meta.next
		}
		paths, err := history.WriteWindows(ctx, h.deps.History, h.deps.HistoryRoot, windows, pp.fileName(first, meta.next-1))
		if err != nil {
			return pp.abort(fmt.Errorf("window: %s/%d: %w", pp.topic, pp.partition, err))
		}
		for _, p := range paths {
			h.m.historyFiles.Inc()
			if fi, err := h.deps.History.Stat(p); err == nil {
				h.m.historyBytes.Add(float64(fi.Size()))
			}
		}
	}
	crashpoint.Hit(crashpoint.AfterRenameBeforeCommit)
	md := meta.String()
	err := pp.prod.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{
		pp.topic: {{Partition: pp.partition, Offset: resume, Metadata: &md}},
	}, h.cfg.Group)
	if err != nil {
		return pp.abort(fmt.Errorf("window: %s/%d: add offset %d to transaction: %w", pp.topic, pp.partition, resume, err))
	}
	if err := pp.prod.CommitTxn(); err != nil {
		return pp.abort(fmt.Errorf("window: %s/%d: commit transaction: %w", pp.topic, pp.partition, err))
	}
	h.m.transactions.WithLabelValues("committed").Inc()
	// One counter update per (size, revision) label pair, not per window.
	type sizeRev struct {
		size int64
		rev  bool
	}
	emitted := map[sizeRev]int{}
	for _, w := range windows {
		emitted[sizeRev{w.SizeS, w.Revision > 0}]++
	}
	for k, n := range emitted {
		h.m.windowsEmitted.WithLabelValues(strconv.FormatInt(k.size, 10)+"s", strconv.FormatBool(k.rev)).Add(float64(n))
	}
	if len(windows) > 0 && !pp.advancedAt.IsZero() {
		h.m.emitLatency.Observe(time.Since(pp.advancedAt).Seconds())
	}
	pp.e.commitDone(meta)
	pp.pendingDead = pp.pendingDead[:0]
	pp.advancedAt = time.Time{}
	return nil
}

// windowMessage builds the Kafka message of a window (json.Marshal's bytes,
// without reflection) without the JSON Schema validation of
// kafkax.NewMessage: windows are built here from
// samples checked by sampleProblem and finite, so they satisfy the schema
// by construction (the tests decode every emitted window with
// schemas.Decode, which validates), and validation costs about a sixth of
// the processor's CPU.
func windowMessage(topic, source string, w schemas.Window) *sarama.ProducerMessage {
	// finite numbers and strings (see finite): cannot fail
	b, _ := schemas.AppendWindowJSON(make([]byte, 0, 384), &w)
	return &sarama.ProducerMessage{
		Topic: topic, Key: sarama.StringEncoder(w.Entity), Value: sarama.ByteEncoder(b),
		Headers: kafkax.Headers(source, w), Timestamp: w.EventTime(),
	}
}

func (pp *partProc) abort(err error) error {
	pp.h.m.transactions.WithLabelValues("aborted").Inc()
	if aerr := pp.prod.AbortTxn(); aerr != nil {
		err = errors.Join(err, fmt.Errorf("abort transaction: %w", aerr))
	}
	return err
}

// shutdown commits what was processed when the partition is revoked or the
// processor stops; a failure here loses nothing (the next owner rebuilds
// from the last commit).
func (pp *partProc) shutdown() error {
	if pp.e.rebuilding || (pp.e.batchRecs == 0 && len(pp.pendingDead) == 0) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pp.flush(ctx); err != nil {
		pp.log.Warn("window: final commit on revoke failed; the next owner resumes from the last commit", "err", err)
	}
	return nil
}
