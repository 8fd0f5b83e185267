package ingest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// cpuSeconds is the CPU time (user + system) this process used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkIngestRealKafka is remote_write → ingest → the real Kafka
// broker (EBBFLOW_TEST_KAFKA_BROKERS; make bench sources
// .dev/services.env), transactions and persisted digests on, at 4 and 16
// concurrent senders, every request distinct (none counted as a resend).
// The requests are built before the timer and handed to the receiver in
// process, so this process's CPU time is the receiver's. It reports, per
// receiver CPU-second:
//
//   - delivered-samples/cpu-s: samples committed to the topic (rows
//     after mapping, ebbflow_ingest_samples_published_total);
//   - ratio-vs-decode: that ÷ the decode-only rate of the same requests
//     (snappy + protobuf, one core), measured in the same run;
//   - ratio-vs-sarama: that ÷ a bare sarama transactional producer
//     writing the same number of pre-encoded records of the same bytes
//     (the ceiling of any sarama-based receiver), same run, same broker;
//   - acked-samples/s: samples in requests answered 204, per second.
//
// prometheus-kafka-adapter is compared by deploy/dev/bench.sh when its
// module can be built here (it cannot be in this environment: the Go
// module proxy does not serve github.com/Telefonica/prometheus-kafka-adapter).
func BenchmarkIngestRealKafka(b *testing.B) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		b.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set: start deploy/dev/services.sh up and source .dev/services.env (make bench does)")
	}
	lanes := []int{DefaultConfig().Publish.TransactionLanes}
	if v := os.Getenv("EBBFLOW_BENCH_LANES"); v != "" { // e.g. "1,2": compare lane counts in one run
		lanes = lanes[:0]
		for _, f := range strings.Split(v, ",") {
			var n int
			if _, err := fmt.Sscan(f, &n); err != nil || n < 1 {
				b.Fatalf("EBBFLOW_BENCH_LANES: %q is not a list of lane counts", v)
			}
			lanes = append(lanes, n)
		}
	}
	for _, senders := range []int{4, 16} {
		for _, l := range lanes {
			b.Run(fmt.Sprintf("senders=%d/lanes=%d", senders, l), func(b *testing.B) { benchRealKafka(b, strings.Split(brokers, ","), senders, l) })
		}
	}
}

func benchRealKafka(b *testing.B, brokers []string, senders, lanes int) {
	const requests = 200
	kc := kafkax.DefaultConfig()
	kc.Brokers = brokers
	kc.TopicPrefix = fmt.Sprintf("ingestbench%d", time.Now().UnixNano())
	kc.Partitions = 8
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	dtopic := kc.Topics().Name(DigestsTopicBase)
	if err := kafkax.EnsureTopics(b.Context(), kc, topic); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := EnsureDigestsTopic(b.Context(), kc, dtopic, cfg.Publish.DedupMaxAge); err != nil {
		b.Fatal(err)
	}
	cfg.Publish.TransactionalID = "bench-" + kc.TopicPrefix
	cfg.Publish.TransactionLanes = lanes
	newProd := func() (sarama.AsyncProducer, error) { return NewProducer(kc, cfg.Publish) }
	prod, err := newProd()
	if err != nil {
		b.Fatal(err)
	}
	extra, err := ExtraLanes(kc, cfg.Publish)
	if err != nil {
		b.Fatal(err)
	}
	m := NewMetrics(nil)
	pub := NewPublisher(prod, topic, cfg.Publish, m, quietLog(), newProd, append(extra, WithDigestsTopic(dtopic))...)
	defer pub.Close()
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	rc := NewReceiver(mp, pub, cfg.RemoteWrite, m, quietLog(), nil)

	all, n := benchBodies(10 + requests*b.N)
	sendRequests(b, rc, all[:10], senders) // warm: connections, coordinator, partition count
	all = all[10:]
	// The records ingest writes for these requests, for the sarama ceiling.
	ceilRecs := encodeLikeIngest(b, mp, all[:requests], 8)

	var ingCPU, ingWall, decCPU, ceilCPU, ingAlloc float64
	var ms runtime.MemStats
	var ceilSamples int
	published0 := testutil.ToFloat64(m.SamplesPublished)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bodies := all[i*requests : (i+1)*requests]
		runtime.ReadMemStats(&ms)
		a0 := ms.TotalAlloc
		c0, t0 := cpuSeconds(), time.Now()
		sendRequests(b, rc, bodies, senders)
		ingCPU += cpuSeconds() - c0
		ingWall += time.Since(t0).Seconds()
		runtime.ReadMemStats(&ms)
		ingAlloc += float64(ms.TotalAlloc - a0)

		c0 = cpuSeconds()
		var w WriteRequest
		var buf []byte
		for _, body := range bodies {
			if buf, err = snappy.Decode(buf[:cap(buf)], body); err != nil {
				b.Fatal(err)
			}
			if err := DecodeWriteRequestV1(buf, &w); err != nil {
				b.Fatal(err)
			}
		}
		decCPU += cpuSeconds() - c0

		c0 = cpuSeconds()
		ceilSamples += produceCeiling(b, kc, topic, ceilRecs)
		ceilCPU += cpuSeconds() - c0
	}
	b.StopTimer()
	assertNoDuplicates(b, m)
	delivered := testutil.ToFloat64(m.SamplesPublished) - published0
	sent := float64(n * requests * b.N)
	ingRate := delivered / ingCPU
	b.ReportMetric(ingRate, "delivered-samples/cpu-s")
	b.ReportMetric(ingRate/(sent/decCPU), "ratio-vs-decode")
	b.ReportMetric(ingRate/(float64(ceilSamples)/ceilCPU), "ratio-vs-sarama")
	b.ReportMetric(sent/ingWall, "acked-samples/s")
	b.ReportMetric(delivered/sent, "delivered/sent")
	b.ReportMetric(ingAlloc/float64(requests*b.N), "ingest-B/request")
}

// encodeLikeIngest maps and encodes bodies as ingest does (one record per
// partition per request) and returns the records with their sample counts.
func encodeLikeIngest(b *testing.B, mp *Mapper, bodies [][]byte, parts int32) []ceilRecord {
	var out []ceilRecord
	enc := schemas.NewRawEncoder()
	var w WriteRequest
	for _, body := range bodies {
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			b.Fatal(err)
		}
		if err := DecodeWriteRequestV1(raw, &w); err != nil {
			b.Fatal(err)
		}
		bt := NewBatch()
		for _, s := range w.Series {
			mp.Map(bt, s.Labels, s.Samples)
		}
		byPart := make([][]schemas.RawSample, parts)
		for _, g := range bt.Groups {
			p := entityPartition(g.Entity, parts)
			byPart[p] = append(byPart[p], g.Samples...)
		}
		for p, ss := range byPart {
			if len(ss) == 0 {
				continue
			}
			v, err := enc.Encode(ss)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, ceilRecord{part: int32(p), value: v, samples: len(ss)})
		}
	}
	return out
}

type ceilRecord struct {
	part    int32
	value   []byte
	samples int
}

// produceCeiling writes recs with a bare transactional sarama producer
// (same settings as ingest's), 8 transactions, and returns the samples.
func produceCeiling(b *testing.B, kc kafkax.Config, topic string, recs []ceilRecord) int {
	pc := DefaultConfig().Publish
	pc.TransactionalID = fmt.Sprintf("bench-ceiling-%d", time.Now().UnixNano())
	sc, err := ProducerConfig(kc, pc)
	if err != nil {
		b.Fatal(err)
	}
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	prod, err := sarama.NewAsyncProducer(kc.Brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	samples := 0
	per := (len(recs) + 7) / 8
	for i := 0; i < len(recs); i += per {
		chunk := recs[i:min(i+per, len(recs))]
		if err := prod.BeginTxn(); err != nil {
			b.Fatal(err)
		}
		for _, r := range chunk {
			prod.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: r.part, Value: sarama.ByteEncoder(r.value)}
		}
		for range chunk {
			select {
			case <-prod.Successes():
			case e := <-prod.Errors():
				b.Fatal(e)
			}
		}
		if err := prod.CommitTxn(); err != nil {
			b.Fatal(err)
		}
		for _, r := range chunk {
			samples += r.samples
		}
	}
	return samples
}
