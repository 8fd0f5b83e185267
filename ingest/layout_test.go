package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestEntityPartitionMatchesHashPartitioner: an entity's samples land in
// the partition sarama's hash partitioner gives a record keyed by the
// entity, so records of many entities per partition keep every entity
// where records of one entity each put it.
func TestEntityPartitionMatchesHashPartitioner(t *testing.T) {
	hp := sarama.NewHashPartitioner("t")
	for _, n := range []int32{1, 3, 4, 8, 17} {
		for i := 0; i < 2000; i++ {
			e := fmt.Sprintf("svc/c%d/ns-%d/workload-%d", i%3, i%17, i)
			want, err := hp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(e)}, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := entityPartition(e, n); got != want {
				t.Fatalf("entity %q, %d partitions: %d, sarama's hash partitioner %d", e, n, got, want)
			}
		}
	}
}

// readTopic reads every partition of topic (read_committed) up to its
// high-water mark at the time of the call.
func readTopic(t *testing.T, brokers []string, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	client, err := sarama.NewClient(brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
	read:
		for {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				if m.Offset >= hwm-2 { // the last offset is the commit marker
					break read
				}
			case <-time.After(3 * time.Second):
				break read
			}
		}
		pc.Close()
	}
	return out
}

// TestRecordPerPartition: once the publisher knows the topic's partition
// count, a request becomes one record per partition it touches (no key),
// each holding only entities of that partition, instead of one record per
// entity; every sample arrives once and bit-exact.
func TestRecordPerPartition(t *testing.T) {
	p, m, _, brokers, topic := publisherOnKfake(t, PublishHooks{})
	ctx := context.Background()
	first := requestBatch(t, 1_700_000_000_000)
	entities := len(first.Groups)
	if err := p.Publish(ctx, first, time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.nparts.Load(); n != 4 {
		t.Fatalf("publisher learned %d partitions, want 4", n)
	}
	recsBefore := counterValue(t, m.RecordsPublished)
	second := requestBatch(t, 1_700_000_015_000)
	want := map[string]bool{}
	touched := map[int32]bool{}
	for _, g := range second.Groups {
		touched[entityPartition(g.Entity, 4)] = true
		for _, s := range g.Samples {
			want[rawKey(s)] = true
		}
	}
	if err := p.Publish(ctx, second, time.Second); err != nil {
		t.Fatal(err)
	}
	if recs := counterValue(t, m.RecordsPublished) - recsBefore; int(recs) != len(touched) {
		t.Errorf("second request of %d entities: %v records, want one per partition touched (%d)", entities, recs, len(touched))
	}
	keyed, shared := 0, 0
	got := map[string]int{}
	for _, msg := range readTopic(t, brokers, topic) {
		ss, err := schemas.DecodeRaw(nil, msg.Value)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Key == nil {
			shared++
		} else {
			keyed++
		}
		for _, s := range ss {
			if msg.Key != nil && string(msg.Key) != s.Entity {
				t.Errorf("record keyed %q holds entity %q", msg.Key, s.Entity)
			}
			if p := entityPartition(s.Entity, 4); p != msg.Partition {
				t.Errorf("entity %q in partition %d, belongs to %d", s.Entity, msg.Partition, p)
			}
			got[rawKey(s)]++
		}
	}
	if keyed != entities || shared != len(touched) {
		t.Errorf("records: %d keyed (first request, want %d), %d shared (second, want %d)", keyed, entities, shared, len(touched))
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("sample in the topic %d times, want once: %s", got[k], k)
		}
	}
}

// TestDigestsPersistedAndReloaded: the digests of committed requests are
// written with them and LoadDigests returns exactly those; a digests
// record of an aborted transaction is skipped, as is a malformed value
// (an error naming the offset).
func TestDigestsPersistedAndReloaded(t *testing.T) {
	kc := kafkax.DefaultConfig()
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	dtopic := kc.Topics().Name(DigestsTopicBase)
	emb, err := kafkax.StartEmbedded(0, 4, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kc.Brokers = emb.Addrs()
	if err := EnsureDigestsTopic(context.Background(), kc, dtopic, time.Minute); err != nil {
		t.Fatal(err)
	}
	pc := DefaultConfig().Publish
	pc.TransactionalID = fmt.Sprintf("digests-test-%d", time.Now().UnixNano())
	newProd := func() (sarama.AsyncProducer, error) { return NewProducer(kc, pc) }
	prod, err := newProd()
	if err != nil {
		t.Fatal(err)
	}
	pub := NewPublisher(prod, topic, pc, NewMetrics(nil), quietLog(), newProd, WithDigestsTopic(dtopic))
	var committed []Digest
	for i := 0; i < 3; i++ {
		b := requestBatch(t, 1_700_000_000_000+int64(i)*15_000)
		if err := pub.Publish(context.Background(), b, time.Second); err != nil {
			t.Fatal(err)
		}
		committed = append(committed, b.Digest)
	}
	pub.Close()

	// An aborted transaction's digests record must not count.
	sc, err := ProducerConfig(kc, pc)
	if err != nil {
		t.Fatal(err)
	}
	sc.Producer.Transaction.ID = pc.TransactionalID + "-abort"
	ap, err := sarama.NewAsyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	aborted := Digest{1, 2, 3}
	ap.Input() <- &sarama.ProducerMessage{Topic: dtopic, Partition: 0, Value: sarama.ByteEncoder(encodeDigests(nil, time.Now(), []Digest{aborted})),
		Metadata: &msgMeta{preset: true, aux: true}}
	select {
	case <-ap.Successes():
	case e := <-ap.Errors():
		t.Fatal(e)
	}
	if err := ap.AbortTxn(); err != nil {
		t.Fatal(err)
	}
	ap.Close()

	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loaded := map[Digest]bool{}
	records, err := LoadDigests(ctx, client, dtopic, func(at int64, d Digest) {
		if time.Since(time.UnixMilli(at)) > time.Minute {
			t.Errorf("digest loaded with commit time %v", time.UnixMilli(at))
		}
		loaded[d] = true
	})
	if err != nil {
		t.Fatal(err)
	}
	if records != 3 || len(loaded) != 3 {
		t.Errorf("loaded %d records, %d digests; want 3 each (one per committed transaction)", records, len(loaded))
	}
	for _, d := range committed {
		if !loaded[d] {
			t.Errorf("digest %x of a committed request not loaded", d[:4])
		}
	}
	if loaded[aborted] {
		t.Error("the aborted transaction's digest was loaded")
	}
	// A restarted publisher that remembers them acknowledges a resend
	// without writing it.
	prod2, err := newProd()
	if err != nil {
		t.Fatal(err)
	}
	m2 := NewMetrics(nil)
	pub2 := NewPublisher(prod2, topic, pc, m2, quietLog(), newProd, WithDigestsTopic(dtopic))
	defer pub2.Close()
	for d := range loaded {
		pub2.RememberDigest(time.Now().UnixMilli(), d)
	}
	if err := pub2.Publish(context.Background(), requestBatch(t, 1_700_000_015_000), time.Second); err != nil {
		t.Fatal(err)
	}
	if d := counterValue(t, m2.DuplicateRequests); d != 1 {
		t.Errorf("resend after restart: %v duplicates counted, want 1", d)
	}
	if err := decodeDigests([]byte{9, 0}, func(int64, Digest) {}); err == nil {
		t.Error("a malformed digests value was accepted")
	}
}
