package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/semaphore"

	"github.com/ebbflow/ebbflow/internal/history/crashpoint"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// ErrBackpressure means the bounded publish buffer stayed full for the
// allowed wait; the caller should push back (HTTP 429) and retry later.
var ErrBackpressure = errors.New("ingest: publish buffer full")

// ErrUnavailable means Kafka recently failed writes and has not recovered;
// the caller should answer 503 and retry later.
var ErrUnavailable = errors.New("ingest: kafka unavailable")

// ErrTooLarge means a request can never be written as it is: its batch is
// larger than the whole publish buffer, or one of its samples alone makes
// a record over publish.max_message_bytes. Retrying cannot help (413).
var ErrTooLarge = errors.New("ingest: batch larger than the publish buffer")

// ErrRecordTooLarge (an ErrTooLarge) means one sample alone encodes to a
// record over publish.max_message_bytes.
var ErrRecordTooLarge = fmt.Errorf("%w: record over publish.max_message_bytes", ErrTooLarge)

// recordOverhead bounds what Kafka adds to a record's key and value:
// sarama's per-record overhead (36 bytes) and the record batch header
// (61 bytes) when the record is alone in its batch.
const recordOverhead = 128

// minMessageBytes is the smallest publish.max_message_bytes accepted.
const minMessageBytes = 4 << 10

// NewProducer returns the async producer ingest publishes with: idempotent,
// acks=all, the configured compression, successes and errors returned.
func NewProducer(kc kafkax.Config, pc PublishConfig) (sarama.AsyncProducer, error) {
	sc, err := ProducerConfig(kc, pc)
	if err != nil {
		return nil, err
	}
	return newAsyncProducer(kc.Brokers, sc)
}

// transactionalID is pc's transactional id, "ebbflow-ingest-<hostname>"
// when unset.
func transactionalID(pc PublishConfig) string {
	if pc.TransactionalID != "" {
		return pc.TransactionalID
	}
	host, _ := os.Hostname()
	return "ebbflow-ingest-" + host
}

// laneConfig is the configuration of transaction lane i (0: pc itself;
// lane i > 0 uses the transactional id "<id>-lane<i>").
func laneConfig(pc PublishConfig, i int) PublishConfig {
	if i > 0 {
		pc.TransactionalID = fmt.Sprintf("%s-lane%d", transactionalID(pc), i)
	}
	return pc
}

// ProducerConfig returns the sarama configuration NewProducer uses.
func ProducerConfig(kc kafkax.Config, pc PublishConfig) (*sarama.Config, error) {
	sc, err := kc.IdempotentProducer()
	if err != nil {
		return nil, err
	}
	if pc.Transactional {
		sc.Producer.Transaction.ID = transactionalID(pc)
		sc.Producer.Transaction.Retry.Max = 20
		sc.Producer.Transaction.Retry.Backoff = 250 * time.Millisecond
	}
	sc.Producer.Retry.Max = pc.Retries
	sc.Producer.Retry.Backoff = pc.RetryBackoff
	sc.Producer.MaxMessageBytes = pc.MaxMessageBytes
	sc.Producer.Partitioner = newPartitioner
	sc.Producer.Flush.Bytes = 1 << 20
	sc.Producer.Flush.Frequency = time.Millisecond
	sc.ChannelBufferSize = 1024
	switch pc.Compression {
	case "snappy":
		sc.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		sc.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		sc.Producer.Compression = sarama.CompressionZSTD
	case "none":
		sc.Producer.Compression = sarama.CompressionNone
	default:
		return nil, fmt.Errorf("ingest.publish.compression: %q is not snappy, lz4, zstd or none", pc.Compression)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("ingest: producer config: %w", err)
	}
	return sc, nil
}

// Publisher writes batches to metrics.raw: one Kafka record per entity
// (split when an entity has more than MaxSamplesPerRecord samples), value
// an Arrow IPC stream, key the entity. Memory is bounded by a byte budget
// for records in flight; Publish waits or refuses when it is spent.
// Publisher is safe for concurrent use.
type Publisher struct {
	// lanes are the producers; in transactional mode each runs its own
	// committer, so one lane's transaction is written while another's
	// commits (overlapping transactions).
	lanes      []*lane
	topic      string
	m          *Metrics
	log        *slog.Logger
	sem        *semaphore.Weighted
	capBytes   int64
	inflight   atomic.Int64
	maxPer     int
	maxMsg     int
	retryAfter time.Duration
	lastErr    atomic.Int64 // unix ns of the last failed record
	lastOK     atomic.Int64 // unix ns of the last acknowledged record
	encs       sync.Pool    // *encState
	// nparts is the metrics topic's partition count as the partitioner
	// last saw it; 0 (unknown) makes one record per entity.
	nparts partitionCount
	// digestTopic, when set, receives in each transaction the digests of
	// its requests (see LoadDigests).
	digestTopic string
	closeOnce   sync.Once

	// Transactional mode: requests queue as jobs for one committer that
	// writes each group of them in a Kafka transaction.
	txn       bool
	jobs      chan *txnJob
	committer sync.WaitGroup
	resolve   CommitResolver
	dedup     *dedupSet
	closing   chan struct{}
	hooks     PublishHooks
}

// lane is one producer (in transactional mode, one transactional id)
// and what replaces it after a fatal error.
type lane struct {
	prod    sarama.AsyncProducer
	newProd func() (sarama.AsyncProducer, error)
	done    sync.WaitGroup
	// prodClosed: replace gave up at Close with no producer attached.
	prodClosed bool
}

// WithLane adds a transaction lane: another transactional producer, with
// its own transactional id, and how to replace it. Queued requests go to
// whichever lane is free, so with several lanes a transaction's records are
// written while the previous transaction commits. Every lane's
// transactional id must be fenced at restart (keep the lane count).
func WithLane(prod sarama.AsyncProducer, newProd func() (sarama.AsyncProducer, error)) PublisherOption {
	return func(p *Publisher) { p.lanes = append(p.lanes, &lane{prod: prod, newProd: newProd}) }
}

type txnJob struct {
	msgs   []*sarama.ProducerMessage
	done   chan error
	digest Digest
	dedup  bool
}

type pending struct {
	left    atomic.Int32
	mu      sync.Mutex
	err     error
	done    chan struct{}
	samples int
}

type msgMeta struct {
	p       *pending
	bytes   int64
	samples int
	sent    time.Time
	// preset: the record holds the samples of every entity of the
	// request that belongs to partition part of a topic with nparts
	// partitions (0: any count); the partitioner keeps it there.
	preset bool
	part   int32
	nparts int32
	// learn, when set, receives the topic's partition count.
	learn *partitionCount
	// aux: the record of the transaction's request digests.
	aux bool
	// buf is the record's value, recycled once the record is answered.
	buf []byte
}

// NewPublisher starts a publisher on prod, which it owns and closes in
// Close. When prod is transactional (see PublishConfig.Transactional),
// newProd must be able to build a replacement: a transactional producer
// that hit a fatal error cannot be used again.
func NewPublisher(prod sarama.AsyncProducer, topic string, cfg PublishConfig, m *Metrics, log *slog.Logger, newProd func() (sarama.AsyncProducer, error), opts ...PublisherOption) *Publisher {
	p := &Publisher{
		topic: topic, m: m, log: log,
		sem: semaphore.NewWeighted(cfg.MaxBufferBytes), capBytes: cfg.MaxBufferBytes,
		maxPer: cfg.MaxSamplesPerRecord, maxMsg: cfg.MaxMessageBytes, retryAfter: cfg.RetryAfter,
		txn: prod.IsTransactional(), closing: make(chan struct{}),
		lanes: []*lane{{prod: prod, newProd: newProd}},
	}
	if p.txn && cfg.DedupRequests > 0 {
		p.dedup = newDedupSet(cfg.DedupRequests, cfg.DedupMaxAge)
	}
	for _, o := range opts {
		o(p)
	}
	p.encs.New = func() any { return &encState{enc: schemas.NewRawEncoder()} }
	m.BufferCapacity.Set(float64(cfg.MaxBufferBytes))
	if !p.txn {
		for _, l := range p.lanes[1:] {
			l.prod.AsyncClose() // lanes are for transactions only
		}
		p.lanes = p.lanes[:1]
	}
	for _, l := range p.lanes {
		p.attach(l, l.prod)
	}
	if p.txn {
		p.jobs = make(chan *txnJob)
		for _, l := range p.lanes {
			p.committer.Add(1)
			go p.commitLoop(l)
		}
	}
	return p
}

// attach makes prod the current producer and starts draining its
// acknowledgements.
func (p *Publisher) attach(l *lane, prod sarama.AsyncProducer) {
	l.prod = prod
	l.done.Add(2)
	go func() {
		defer l.done.Done()
		for msg := range prod.Successes() {
			p.complete(msg, nil)
		}
	}()
	go func() {
		defer l.done.Done()
		for e := range prod.Errors() {
			p.complete(e.Msg, fmt.Errorf("ingest: write %s partition %d: %w", e.Msg.Topic, e.Msg.Partition, e.Err))
		}
	}()
}

// PublishHooks let a caller (fault-injection tests) act at points of a
// transaction. Nil fields do nothing. They are given to NewPublisher
// (WithHooks) or Run (Deps.PublishHooks) and fixed for the publisher's
// life.
type PublishHooks struct {
	// BeforeCommit runs between the last produce acknowledgement of a
	// transaction and its EndTxn.
	BeforeCommit func()
	// CommitFailed runs when a transaction's commit failed (its outcome
	// unknown), before its requests are answered.
	CommitFailed func(error)
}

// PublisherOption configures NewPublisher.
type PublisherOption func(*Publisher)

// WithHooks installs hooks on the publisher.
func WithHooks(h PublishHooks) PublisherOption { return func(p *Publisher) { p.hooks = h } }

// CrashAfterCommit is the crash point (compiled only into builds with the
// crashpoints tag, see internal/history/crashpoint) between a
// transaction's commit and the answers to its requests.
const CrashAfterCommit = "ingest-after-commit"

// maxGroupRecords bounds how many records one transaction carries.
const maxGroupRecords = 4096

// commitLoop is the only user of the producer in transactional mode: it
// takes every queued request (group commit), writes their records in one
// transaction, commits, and answers each request with the outcome. A
// failed record or commit aborts the transaction, so nothing of the group
// becomes visible and every request in it is answered with the error.
func (p *Publisher) commitLoop(l *lane) {
	defer p.committer.Done()
	for job := range p.jobs {
		group := []*txnJob{job}
		n := len(job.msgs)
	more:
		for n < maxGroupRecords {
			select {
			case j, ok := <-p.jobs:
				if !ok {
					break more
				}
				group = append(group, j)
				n += len(j.msgs)
			default:
				break more
			}
		}
		answered := false
		answer := func(err error) {
			if !answered {
				answered = true
				for _, j := range group {
					j.done <- err
				}
			}
		}
		err := p.writeTxn(l, group, n, answer)
		if err == nil {
			// Crash tests: the transaction is committed, no request in it
			// is answered yet.
			crashpoint.Hit(CrashAfterCommit)
		}
		// The claims on the requests' digests end only with the final
		// outcome: a resend while it is being resolved waits or gets 503.
		now := time.Now()
		for _, j := range group {
			if j.dedup {
				p.dedup.end(j.digest, err == nil, now)
			}
		}
		answer(err)
	}
}

// writeTxn writes the group in one transaction and returns its outcome
// (nil: committed). When it fails it calls answer with the error before
// recovering, so that senders are told to retry at once rather than after
// the outage; the outcome it then returns may still be nil when a lost
// commit answer turns out to have been a commit.
func (p *Publisher) writeTxn(l *lane, group []*txnJob, n int, answer func(error)) error {
	if l.prodClosed {
		return ErrUnavailable
	}
	if err := l.prod.BeginTxn(); err != nil {
		err = fmt.Errorf("ingest: begin transaction on %s: %w", p.topic, err)
		answer(err)
		p.recover(l, err)
		return err
	}
	gp := &pending{done: make(chan struct{})}
	now := time.Now()
	// The digests of the group's requests go to the digests topic in the
	// same transaction: visible exactly when their samples are.
	var digests *sarama.ProducerMessage
	if p.digestTopic != "" {
		var ds []Digest
		for _, j := range group {
			if j.dedup {
				ds = append(ds, j.digest)
			}
		}
		if len(ds) > 0 {
			digests = &sarama.ProducerMessage{Topic: p.digestTopic, Value: sarama.ByteEncoder(encodeDigests(nil, now, ds)),
				Metadata: &msgMeta{p: gp, sent: now, preset: true, part: 0, aux: true}}
			n++
		}
	}
	gp.left.Store(int32(n))
	for _, j := range group {
		for _, msg := range j.msgs {
			meta := msg.Metadata.(*msgMeta)
			meta.p, meta.sent = gp, now
			l.prod.Input() <- msg
		}
	}
	if digests != nil {
		l.prod.Input() <- digests
	}
	<-gp.done
	if err := gp.err; err != nil {
		// No EndTxn(commit) was sent: aborting, or the next producer's
		// InitProducerID, aborts the transaction. Its outcome is known.
		answer(err)
		p.recover(l, err)
		return err
	}
	if h := p.hooks.BeforeCommit; h != nil {
		h()
	}
	err := l.prod.CommitTxn()
	if err == nil {
		p.m.SamplesPublished.Add(float64(gp.samples))
		return nil
	}
	err = fmt.Errorf("ingest: commit transaction on %s: %w", p.topic, err)
	if h := p.hooks.CommitFailed; h != nil {
		h(err)
	}
	// The EndTxn may have reached the coordinator: the outcome is unknown.
	// A new producer's InitProducerID completes or aborts the transaction;
	// then a read_committed fetch at its offsets tells which.
	p.lastErr.Store(time.Now().UnixNano())
	p.log.Warn("transaction commit outcome unknown; re-initialising the producer to resolve it", "topic", p.topic, "err", err)
	answer(err)
	if !p.replace(l) || p.resolve == nil {
		p.m.CommitsResolved.WithLabelValues("unknown").Inc()
		return err
	}
	committed, ok := p.resolveGroup(group)
	switch {
	case !ok:
		p.m.CommitsResolved.WithLabelValues("unknown").Inc()
		return err
	case committed:
		p.m.CommitsResolved.WithLabelValues("committed").Inc()
		p.m.SamplesPublished.Add(float64(gp.samples))
		p.log.Info("transaction whose commit answer was lost is committed; resends of its requests will be acknowledged without writing", "topic", p.topic, "records", n)
		return nil
	default:
		p.m.CommitsResolved.WithLabelValues("aborted").Inc()
		p.log.Info("transaction whose commit answer was lost was aborted; its requests will be retried", "topic", p.topic, "records", n)
		return err
	}
}

// resolveGroup asks, until it gets an answer or the publisher closes,
// whether the group's transaction committed. It looks at the first
// record of the transaction in one partition: a transaction is atomic.
func (p *Publisher) resolveGroup(group []*txnJob) (committed, ok bool) {
	part, first := int32(-1), int64(-1)
	for _, j := range group {
		for _, msg := range j.msgs {
			if part < 0 {
				part, first = msg.Partition, msg.Offset
			} else if msg.Partition == part && msg.Offset < first {
				first = msg.Offset
			}
		}
	}
	if part < 0 {
		return false, false
	}
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, p.retryAfter) {
		c, err := p.resolve(p.topic, part, first)
		if err == nil {
			return c, true
		}
		if !errors.Is(err, errUndecided) {
			p.log.Warn("cannot resolve the transaction's outcome yet", "topic", p.topic, "partition", part, "offset", first, "err", err)
		}
		select {
		case <-p.closing:
			return false, false
		case <-time.After(wait):
		}
	}
}

// recover aborts the open transaction, or replaces the producer when it
// is in a fatal state (or aborting keeps failing).
func (p *Publisher) recover(l *lane, cause error) {
	p.lastErr.Store(time.Now().UnixNano())
	st := l.prod.TxnStatus()
	if st&sarama.ProducerTxnFlagInTransaction != 0 || st&sarama.ProducerTxnFlagAbortableError != 0 {
		if err := l.prod.AbortTxn(); err == nil {
			return
		} else {
			p.log.Warn("abort transaction failed; replacing the producer", "topic", p.topic, "err", err, "cause", cause)
		}
	} else if st&sarama.ProducerTxnFlagFatalError == 0 {
		return
	}
	p.replace(l)
}

// replace closes the producer and builds a new one, retrying until it
// succeeds (its InitProducerID fences the old one and completes or aborts
// its open transaction) or the publisher closes. It reports success.
func (p *Publisher) replace(l *lane) bool {
	if l.newProd == nil {
		return false
	}
	old := l.prod
	old.AsyncClose()
	l.done.Wait()
	for {
		np, err := l.newProd()
		if err == nil {
			p.attach(l, np)
			p.log.Info("replaced the transactional producer", "topic", p.topic)
			return true
		}
		p.log.Warn("cannot create a producer yet", "topic", p.topic, "err", err)
		select {
		case <-p.closing:
			l.prodClosed = true
			return false
		case <-time.After(p.retryAfter):
		}
	}
}

func (p *Publisher) complete(msg *sarama.ProducerMessage, err error) {
	meta, ok := msg.Metadata.(*msgMeta)
	if !ok {
		return
	}
	p.sem.Release(meta.bytes)
	p.m.BufferBytes.Set(float64(p.inflight.Add(-meta.bytes)))
	now := time.Now()
	if err != nil {
		p.lastErr.Store(now.UnixNano())
		p.m.PublishErrors.Inc()
		meta.p.mu.Lock()
		if meta.p.err == nil {
			meta.p.err = err
		}
		meta.p.mu.Unlock()
	} else {
		p.lastOK.Store(now.UnixNano())
		if !meta.aux {
			p.m.RecordsPublished.Inc()
		}
		if p.txn {
			meta.p.mu.Lock()
			meta.p.samples += meta.samples // counted as published at commit
			meta.p.mu.Unlock()
		} else {
			p.m.SamplesPublished.Add(float64(meta.samples))
		}
	}
	if meta.buf != nil {
		msg.Value = nil
		putRecordBuf(meta.buf)
		meta.buf = nil
	}
	if meta.p.left.Add(-1) == 0 {
		p.m.PublishLatency.Observe(now.Sub(meta.sent).Seconds())
		close(meta.p.done)
	}
}

// Healthy reports an error while Kafka is failing writes: the last record
// failed, none has succeeded since, and it is less than RetryAfter ago.
func (p *Publisher) Healthy() error {
	le, lo := p.lastErr.Load(), p.lastOK.Load()
	if le > lo && time.Since(time.Unix(0, le)) < p.retryAfter {
		return ErrUnavailable
	}
	return nil
}

// RetryAfter is how long callers should wait after ErrUnavailable or
// ErrBackpressure.
func (p *Publisher) RetryAfter() time.Duration { return p.retryAfter }

// Publish encodes b and writes it, returning once Kafka has acknowledged
// every record (nil) or any record failed (the first error). wait bounds
// how long Publish waits for room in the buffer before returning
// ErrBackpressure; a negative wait waits as long as ctx allows. When ctx
// ends after the records were handed over, Publish returns ctx's error but
// the records may still be written.
func (p *Publisher) Publish(ctx context.Context, b *Batch, wait time.Duration) error {
	if p.dedup != nil && b.HasDigest {
		dup, err := p.claim(ctx, b.Digest, wait)
		if err != nil || dup {
			return err
		}
		// Until the request is handed to the committer, release the claim
		// on every way out.
		handed := false
		defer func() {
			if !handed {
				p.dedup.end(b.Digest, false, time.Now())
			}
		}()
		return p.publish(ctx, b, wait, &handed)
	}
	return p.publish(ctx, b, wait, nil)
}

// claim waits until no request with digest d is being written, then
// either reports a duplicate of a committed request (counted, answered as
// written) or claims d for this request.
func (p *Publisher) claim(ctx context.Context, d Digest, wait time.Duration) (dup bool, err error) {
	var timeout <-chan time.Time
	if wait >= 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		committed, busy := p.dedup.begin(d, time.Now())
		if committed {
			p.m.DuplicateRequests.Inc()
			return true, nil
		}
		if busy == nil {
			return false, nil
		}
		// The same request is being written (a resend while the first
		// attempt's commit is being resolved): wait for its outcome.
		select {
		case <-busy:
		case <-timeout:
			return false, ErrUnavailable
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// encState is what one publishing goroutine reuses between requests.
type encState struct {
	enc   *schemas.RawEncoder
	parts [][]schemas.RawSample
}

// encodeFitting encodes a prefix of s, up to
// publish.max_samples_per_record samples, whose record (with a key of
// keyLen bytes and Kafka's overhead) fits in publish.max_message_bytes,
// and returns it and how many samples it holds. It fails with
// ErrRecordTooLarge when even one sample does not fit.
func (p *Publisher) encodeFitting(enc *schemas.RawEncoder, keyLen int, s []schemas.RawSample) ([]byte, int, error) {
	limit := p.maxMsg - recordOverhead - keyLen
	n := min(len(s), p.maxPer)
	buf := getRecordBuf()
	for {
		buf = enc.AppendEncode(buf[:0], s[:n])
		if len(buf) <= limit {
			return buf, n, nil
		}
		if n == 1 {
			size := len(buf)
			putRecordBuf(buf)
			return nil, 0, fmt.Errorf("%w: one sample of entity %s (metric %q) encodes to a %d-byte record, over publish.max_message_bytes %d",
				ErrRecordTooLarge, s[0].Entity, s[0].Metric, size+recordOverhead+keyLen, p.maxMsg)
		}
		// Shrink in proportion (records are nearly linear in samples),
		// with a 10 % margin, by at least one sample.
		next := int(int64(n) * int64(limit) / int64(len(buf)) * 9 / 10)
		n = max(1, min(next, n-1))
	}
}

// recordBufs recycles record values: a value goes back once Kafka
// acknowledged or failed its record (sarama no longer holds it then).
var recordBufs sync.Pool // *[]byte

func getRecordBuf() []byte {
	if v, ok := recordBufs.Get().(*[]byte); ok {
		return (*v)[:0]
	}
	return make([]byte, 0, 64<<10)
}

func putRecordBuf(b []byte) {
	if cap(b) == 0 || cap(b) > 4<<20 {
		return
	}
	b = b[:0]
	recordBufs.Put(&b)
}

// encode turns b into records. Once the topic's partition count is known
// (after the first record), the samples of all of b's entities that
// belong to one partition go into one record (one Arrow IPC stream, no
// key, split only above max_samples_per_record or max_message_bytes):
// per-record costs (the stream's schema message, batch framing, Kafka's
// record overhead) are paid per partition, not per entity. Before that,
// each entity gets its own record keyed by entity, which the hash
// partitioner puts in the same partition.
func (p *Publisher) encode(b *Batch) ([]*sarama.ProducerMessage, int64, error) {
	st := p.encs.Get().(*encState)
	n := p.nparts.Load()
	msgs := make([]*sarama.ProducerMessage, 0, max(1, min(int(n), len(b.Groups))))
	var total int64
	add := func(key string, s []schemas.RawSample, preset bool, part int32) error {
		for len(s) > 0 {
			val, k, err := p.encodeFitting(st.enc, len(key), s)
			if err != nil {
				return err
			}
			msg := &sarama.ProducerMessage{Topic: p.topic, Value: sarama.ByteEncoder(val),
				Metadata: &msgMeta{bytes: int64(len(val)), samples: k, preset: preset, part: part, nparts: n, learn: &p.nparts, buf: val}}
			if key != "" {
				msg.Key = sarama.StringEncoder(key)
			}
			msgs = append(msgs, msg)
			total += int64(len(val))
			s = s[k:]
		}
		return nil
	}
	var err error
	if n <= 0 {
		for _, g := range b.Groups {
			if err = add(g.Entity, g.Samples, false, 0); err != nil {
				break
			}
		}
	} else {
		if cap(st.parts) < int(n) {
			st.parts = make([][]schemas.RawSample, n)
		}
		st.parts = st.parts[:n]
		for _, g := range b.Groups {
			part := entityPartition(g.Entity, n)
			st.parts[part] = append(st.parts[part], g.Samples...)
		}
		for part, s := range st.parts {
			if err == nil && len(s) > 0 {
				err = add("", s, true, int32(part))
			}
			clear(s) // drop references to the request body
			st.parts[part] = s[:0]
		}
	}
	if err != nil {
		if !errors.Is(err, ErrTooLarge) {
			st.enc = schemas.NewRawEncoder() // an encoder that failed may hold half a record
		}
		p.encs.Put(st)
		return nil, 0, err
	}
	p.encs.Put(st)
	return msgs, total, nil
}

func (p *Publisher) publish(ctx context.Context, b *Batch, wait time.Duration, handed *bool) error {
	if b.Len() == 0 {
		return nil
	}
	if err := p.Healthy(); err != nil {
		return err
	}
	msgs, total, err := p.encode(b)
	if err != nil {
		return err
	}
	if total > p.capBytes {
		return fmt.Errorf("%w: %d bytes, buffer %d", ErrTooLarge, total, p.capBytes)
	}
	actx := ctx
	if wait >= 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	if err := p.sem.Acquire(actx, total); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrBackpressure
	}
	p.m.BufferBytes.Set(float64(p.inflight.Add(total)))
	if p.txn {
		job := &txnJob{msgs: msgs, done: make(chan error, 1), digest: b.Digest, dedup: handed != nil}
		select {
		case p.jobs <- job:
			if handed != nil {
				*handed = true
			}
		case <-actx.Done():
			// The committer is stuck (Kafka down): refuse rather than queue.
			for _, msg := range msgs {
				p.sem.Release(msg.Metadata.(*msgMeta).bytes)
			}
			p.m.BufferBytes.Set(float64(p.inflight.Add(-total)))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrUnavailable
		}
		select {
		case err := <-job.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	pd := &pending{done: make(chan struct{}), samples: b.Len()}
	pd.left.Store(int32(len(msgs)))
	now := time.Now()
	for _, msg := range msgs {
		meta := msg.Metadata.(*msgMeta)
		meta.p, meta.sent = pd, now
		p.lanes[0].prod.Input() <- msg
	}
	select {
	case <-pd.done:
		return pd.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes the producer and waits for the outstanding acknowledgements.
// A transaction whose outcome is still being resolved (Kafka unreachable)
// is given up: its requests are answered with an error.
func (p *Publisher) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closing)
		if p.txn {
			close(p.jobs)
			p.committer.Wait()
		}
		for _, l := range p.lanes {
			if !l.prodClosed {
				l.prod.AsyncClose()
				l.done.Wait()
			}
		}
	})
	return err
}

func newAsyncProducer(brokers []string, sc *sarama.Config) (sarama.AsyncProducer, error) {
	p, err := sarama.NewAsyncProducer(brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("ingest: producer for %v: %w", brokers, err)
	}
	return p, nil
}
