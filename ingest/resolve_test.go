package ingest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func TestTxnOutcome(t *testing.T) {
	blk := func(lso int64, aborted []*sarama.AbortedTransaction, batches ...*sarama.RecordBatch) *sarama.FetchResponseBlock {
		b := &sarama.FetchResponseBlock{LastStableOffset: lso, AbortedTransactions: aborted}
		for _, rb := range batches {
			b.RecordsSet = append(b.RecordsSet, &sarama.Records{RecordBatch: rb})
		}
		return b
	}
	ours := &sarama.RecordBatch{FirstOffset: 10, LastOffsetDelta: 2, ProducerID: 7, IsTransactional: true}
	for _, tc := range []struct {
		name      string
		blk       *sarama.FetchResponseBlock
		committed bool
		err       bool
	}{
		{"open", blk(10, nil, ours), false, true},
		{"committed", blk(14, nil, ours), true, false},
		{"committed, other producer aborted", blk(14, []*sarama.AbortedTransaction{{ProducerID: 8, FirstOffset: 10}}, ours), true, false},
		{"committed, our earlier txn aborted", blk(14, []*sarama.AbortedTransaction{{ProducerID: 7, FirstOffset: 3}}, ours), true, false},
		{"aborted", blk(14, []*sarama.AbortedTransaction{{ProducerID: 7, FirstOffset: 10}}, ours), false, false},
		{"no batch", blk(14, nil), false, true},
	} {
		c, err := txnOutcome(tc.blk, 10)
		if (err != nil) != tc.err || c != tc.committed {
			t.Errorf("%s: committed=%v err=%v, want committed=%v err=%v", tc.name, c, err, tc.committed, tc.err)
		}
	}
}

func TestDedupSetBounds(t *testing.T) {
	s := newDedupSet(3, time.Minute)
	now := time.Unix(1000, 0)
	d := func(i int) Digest { return Digest{byte(i)} }
	for i := 0; i < 5; i++ {
		if c, busy := s.begin(d(i), now); c || busy != nil {
			t.Fatalf("%d: fresh digest reported committed=%v busy=%v", i, c, busy != nil)
		}
		if _, busy := s.begin(d(i), now); busy == nil {
			t.Fatalf("%d: digest being written not reported busy", i)
		}
		s.end(d(i), true, now)
	}
	if s.len() != 3 {
		t.Fatalf("remembers %d, want 3 (count bound)", s.len())
	}
	if c, _ := s.begin(d(4), now); !c {
		t.Error("latest digest not remembered")
	}
	if c, busy := s.begin(d(0), now); c || busy != nil {
		t.Error("oldest digest not evicted")
	}
	s.end(d(0), false, now) // not committed: not remembered
	if c, _ := s.begin(d(0), now); c {
		t.Error("failed request remembered as committed")
	}
	s.end(d(0), false, now)
	if c, _ := s.begin(d(4), now.Add(2*time.Minute)); c {
		t.Error("digest older than max age still counts")
	}
}

// publisherOnKfake returns a transactional publisher on kfake whose
// connections go through a cuttable dialer, with a fetch resolver.
func publisherOnKfake(t *testing.T, hooks PublishHooks) (*Publisher, *Metrics, *cuttableDialer, []string, string) {
	t.Helper()
	kc := kafkax.DefaultConfig()
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	emb, err := kafkax.StartEmbedded(0, 4, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	kc.Brokers = emb.Addrs()
	pc := DefaultConfig().Publish
	pc.Retries, pc.RetryBackoff, pc.RetryAfter = 2, 50*time.Millisecond, 200*time.Millisecond
	pc.TransactionalID = fmt.Sprintf("resolve-test-%d", time.Now().UnixNano())
	sc, err := ProducerConfig(kc, pc)
	if err != nil {
		t.Fatal(err)
	}
	d := &cuttableDialer{}
	sc.Net.Proxy.Enable, sc.Net.Proxy.Dialer = true, d
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = time.Second, time.Second, time.Second
	sc.Metadata.Retry.Max, sc.Metadata.Retry.Backoff = 1, 50*time.Millisecond
	sc.Producer.Transaction.Retry.Max, sc.Producer.Transaction.Retry.Backoff = 2, 50*time.Millisecond
	newProd := func() (sarama.AsyncProducer, error) { return newAsyncProducer(kc.Brokers, sc) }
	prod, err := newProd()
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(nil)
	p := NewPublisher(prod, topic, pc, m, quietLog(), newProd, WithHooks(hooks))
	res, closeRes := LazyFetchResolver(func() (sarama.Client, error) { return sarama.NewClient(kc.Brokers, sc) })
	p.ResolveWith(res)
	t.Cleanup(func() { p.Close(); closeRes() })
	return p, m, d, kc.Brokers, topic
}

func requestBatch(t *testing.T, ts int64) *Batch {
	t.Helper()
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedForward)
	var w WriteRequest
	if err := DecodeWriteRequestV1(AppendWriteRequestV1(nil, genSeries(50, 5, ts)), &w); err != nil {
		t.Fatal(err)
	}
	b := NewBatch()
	for _, s := range w.Series {
		mp.Map(b, s.Labels, s.Samples)
	}
	var scratch []byte
	b.Digest, b.HasDigest = requestDigest(&w, &scratch), true
	return b
}

// publishUntilOK retries like Prometheus: until the publisher answers nil.
func publishUntilOK(t *testing.T, p *Publisher, b *Batch) (attempts int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		attempts++
		err := p.Publish(context.Background(), b, 500*time.Millisecond)
		if err == nil {
			return attempts
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %d attempts: %v", attempts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countInTopic(t *testing.T, brokers []string, topic string, want map[string]bool) map[string]int {
	t.Helper()
	got := consumeRaw(t, brokers, topic, func(have []schemas.RawSample) bool { return hasAllKeys(have, want) })
	time.Sleep(300 * time.Millisecond)
	n := len(got)
	got = consumeRaw(t, brokers, topic, func(have []schemas.RawSample) bool { return len(have) >= n })
	counts := map[string]int{}
	for _, s := range got {
		counts[rawKey(s)]++
	}
	return counts
}

func batchKeys(b *Batch, into map[string]bool) {
	for _, g := range b.Groups {
		for _, s := range g.Samples {
			into[rawKey(s)] = true
		}
	}
}

// TestLostCommitAnswerResolved: Kafka is cut after the coordinator
// committed and before ingest read the answer. The publisher re-creates
// the producer, finds the transaction committed with a read_committed
// fetch, and acknowledges; a resend of the request is acknowledged
// without being written again. A cut before the EndTxn is sent aborts,
// and the resend is written once.
func TestLostCommitAnswerResolved(t *testing.T) {
	var beforeCommit atomic.Pointer[func()]
	p, m, d, brokers, topic := publisherOnKfake(t, PublishHooks{BeforeCommit: func() {
		if h := beforeCommit.Load(); h != nil {
			(*h)()
		}
	}})
	want := map[string]bool{}

	// Committed, answer lost.
	b1 := requestBatch(t, 1_700_000_000_000)
	batchKeys(b1, want)
	d.ArmEndTxn()
	go func() {
		for !d.Fired() {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Second)
		d.Restore()
	}()
	if err := p.Publish(context.Background(), b1, -1); err == nil {
		t.Fatal("a request whose commit answer was lost was acknowledged before the outcome was known")
	}
	if !d.Fired() {
		t.Fatal("the EndTxn cut did not happen")
	}
	// Prometheus resends it: while the outcome is being resolved it gets
	// 503 (or waits), then 2xx without a second write.
	publishUntilOK(t, p, b1)
	if got := counterValue(t, m.CommitsResolved.WithLabelValues("committed")); got != 1 {
		t.Errorf("commits resolved committed = %v, want 1", got)
	}
	publishUntilOK(t, p, b1) // and again: still not written
	if got := counterValue(t, m.DuplicateRequests); got != 2 {
		t.Errorf("duplicate requests = %v, want 2", got)
	}

	// Cut between the produce acknowledgements and the EndTxn: aborted.
	b2 := requestBatch(t, 1_700_000_015_000)
	batchKeys(b2, want)
	var armed = true
	hook := func() {
		if armed {
			armed = false
			d.Cut()
			go func() { time.Sleep(time.Second); d.Restore() }()
		}
	}
	beforeCommit.Store(&hook)
	defer beforeCommit.Store(nil)
	if err := p.Publish(context.Background(), b2, -1); err == nil {
		t.Fatal("a transaction cut before its EndTxn was acknowledged")
	}
	publishUntilOK(t, p, b2) // the retry is written
	if got := counterValue(t, m.CommitsResolved.WithLabelValues("aborted")); got != 1 {
		t.Errorf("commits resolved aborted = %v, want 1", got)
	}
	if got := counterValue(t, m.DuplicateRequests); got != 2 {
		t.Errorf("duplicate requests = %v, want still 2", got)
	}

	counts := countInTopic(t, brokers, topic, want)
	for k := range want {
		if counts[k] != 1 {
			t.Errorf("in the topic %d times, want once: %s", counts[k], k)
		}
	}
	t.Logf("%d samples of 2 requests, each exactly once", len(want))
}

func hasAllKeys(have []schemas.RawSample, want map[string]bool) bool {
	seen := map[string]bool{}
	for _, s := range have {
		if k := rawKey(s); want[k] {
			seen[k] = true
		}
	}
	return len(seen) == len(want)
}
