package ingest

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
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
//   - delivered-samples/cpu-s: samples sent that reached the topic,
//     read back read_committed after the run and counted once each
//     (SampleSet: the mapping writes some samples as two rows and drops
//     the series no rule maps, 1/6 of these requests);
//   - ratio-vs-decode: samples sent per receiver CPU-second ÷ the
//     decode-only rate of the same requests (snappy + protobuf, one core),
//     measured in the same run (decode CPU ÷ receiver CPU per request);
//   - ratio-vs-sarama: rows written per receiver CPU-second ÷ those of a
//     bare sarama transactional producer writing the same pre-encoded
//     records (the ceiling of any sarama-based receiver), same run, same
//     broker, another topic;
//   - acked-samples/s: samples in requests answered 204, per second;
//   - delivered/sent: delivered samples ÷ samples sent (0.834 here),
//     rows/sent: rows written ÷ samples sent (1.167 here).
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
	b.Cleanup(func() {
		if err := kafkax.DeletePrefixed(kc); err != nil {
			b.Log(err)
		}
	})
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	dtopic := kc.Topics().Name(DigestsTopicBase)
	ceilTopic := topic + "-ceiling" // not read back: its samples repeat ingest's
	if err := kafkax.EnsureTopics(b.Context(), kc, topic, ceilTopic); err != nil {
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
	from := topicEnds(b, kc, topic)
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
		stopProf := profileIngest(b, senders, lanes, i)
		c0, t0 := cpuSeconds(), time.Now()
		sendRequests(b, rc, bodies, senders)
		ingCPU += cpuSeconds() - c0
		stopProf()
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
		ceilSamples += produceCeiling(b, kc, ceilTopic, ceilRecs)
		ceilCPU += cpuSeconds() - c0
	}
	b.StopTimer()
	assertNoDuplicates(b, m)
	rows := testutil.ToFloat64(m.SamplesPublished) - published0
	readRows, samples := readBack(b, kc, topic, from)
	if float64(readRows) != rows {
		b.Fatalf("read back %d rows, ingest counted %.0f published", readRows, rows)
	}
	delivered := float64(samples)
	sent := float64(n * requests * b.N)
	ingRate := delivered / ingCPU
	b.ReportMetric(ingRate, "delivered-samples/cpu-s")
	// Both ratios compare the same work: the same requests decoded (every
	// sample sent), the same rows written.
	b.ReportMetric((sent/ingCPU)/(sent/decCPU), "ratio-vs-decode")
	b.ReportMetric((rows/ingCPU)/(float64(ceilSamples)/ceilCPU), "ratio-vs-sarama")
	b.ReportMetric(sent/ingWall, "acked-samples/s")
	b.ReportMetric(delivered/sent, "delivered/sent")
	b.ReportMetric(rows/sent, "rows/sent")
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
// (same settings as ingest's), 8 transactions, and returns their rows.
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

// topicEnds is the next offset of every partition of topic.
func topicEnds(b *testing.B, kc kafkax.Config, topic string) map[int32]int64 {
	sc, err := kc.Sarama()
	if err != nil {
		b.Fatal(err)
	}
	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil || len(parts) == 0 {
		b.Fatalf("partitions of %s: %v (%d)", topic, err, len(parts))
	}
	ends := map[int32]int64{}
	for _, p := range parts {
		if ends[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			b.Fatal(err)
		}
	}
	return ends
}

// readBack reads, read_committed, every record of topic from the offsets
// given to the partitions' ends and returns the rows and the distinct
// samples of genNames they hold.
func readBack(b *testing.B, kc kafkax.Config, topic string, from map[int32]int64) (rows, samples int64) {
	sc, err := kc.Sarama()
	if err != nil {
		b.Fatal(err)
	}
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	cons, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	ends := topicEnds(b, kc, topic)
	set := NewSampleSet(genNames)
	var buf []schemas.RawSample
	for p, start := range from {
		if ends[p] <= start {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, start)
		if err != nil {
			b.Fatal(err)
		}
		// Transaction markers are not delivered: the last record may sit
		// before end-1, so stop when idle.
	read:
		for {
			select {
			case msg := <-pc.Messages():
				if buf, err = schemas.DecodeRaw(buf[:0], msg.Value); err != nil {
					b.Fatalf("%s/%d@%d: %v", topic, p, msg.Offset, err)
				}
				rows += int64(len(buf))
				set.Add(buf)
				if msg.Offset >= ends[p]-1 {
					break read
				}
			case <-time.After(3 * time.Second):
				break read
			}
		}
		pc.Close()
	}
	return rows, set.Len()
}

// profileIngest writes a CPU profile of the receiver's part of the run
// alone (not the request building, decode-only, ceiling or read-back) to
// $EBBFLOW_BENCH_CPUPROFILE-senders=N-lanes=L-I (iteration I) when that
// is set; go tool pprof merges the iterations' files.
func profileIngest(b *testing.B, senders, lanes, iter int) (stop func()) {
	path := os.Getenv("EBBFLOW_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s-senders=%d-lanes=%d-%d", path, senders, lanes, iter))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
