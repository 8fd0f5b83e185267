package window

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// benchStream is what ingest publishes: one record per entity per scrape,
// each with 4 pods × (qps counter, memory gauge).
func benchStream(entities, steps int) [][]schemas.RawSample {
	var recs [][]schemas.RawSample
	for i := 0; i < steps; i++ {
		for e := 0; e < entities; e++ {
			ent := fmt.Sprintf("svc/c1/ns/app%d", e)
			ts := t0 + int64(i)*15_000
			rec := make([]schemas.RawSample, 0, 8)
			for p := 0; p < 4; p++ {
				pod := fmt.Sprintf("app%d-%d", e, p)
				rec = append(rec, counter(ent, pod, ts, float64(i*10+p)), gauge(ent, pod, ts, float64(1000+p)))
			}
			recs = append(recs, rec)
		}
	}
	return recs
}

// benchStreamPerPartition is what ingest publishes since it batches a
// transaction's requests: one record per partition per scrape, holding the
// rows of every entity that hashes to that partition (sarama's hash
// partitioner on the entity, as ingest computes it).
func benchStreamPerPartition(entities, steps int, partitions int32) [][]schemas.RawSample {
	part := sarama.NewHashPartitioner("")
	var recs [][]schemas.RawSample
	byStep := benchStream(entities, steps)
	for i := 0; i < steps; i++ {
		groups := make([][]schemas.RawSample, partitions)
		for _, rec := range byStep[i*entities : (i+1)*entities] {
			p, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(rec[0].Entity)}, partitions)
			if err != nil {
				panic(err)
			}
			groups[p] = append(groups[p], rec...)
		}
		for _, g := range groups {
			if len(g) > 0 {
				recs = append(recs, g)
			}
		}
	}
	return recs
}

// BenchmarkProcessorVsDecodeCeiling measures, in one run on the embedded
// kfake cluster (in-process, so it shares the CPU with both), the window
// processor with transactions and local history on against the ceiling: a
// plain sarama consumer (read_committed, consumer group) that only decodes
// the same metrics.raw records. It reports both rates per CPU-second and
// their ratio, ratio-vs-plain-consumer (target ≥ 0.70), for the record
// layout ingest writes (layout=partition: one record per partition per
// transaction, many entities) and for the older one record per entity per
// scrape (layout=entity).
func BenchmarkProcessorVsDecodeCeiling(b *testing.B) {
	b.Run("layout=partition", func(b *testing.B) {
		const entities, steps, partitions = 2000, 40, 4
		benchProcessorVsCeiling(b, embeddedBench(b, partitions), benchStreamPerPartition(entities, steps, partitions))
	})
	b.Run("layout=entity", func(b *testing.B) {
		const entities, steps, partitions = 200, 160, 4
		benchProcessorVsCeiling(b, embeddedBench(b, partitions), benchStream(entities, steps))
	})
}

// BenchmarkProcessorVsDecodeBroker is layout=partition against the real
// broker of EBBFLOW_TEST_KAFKA_BROKERS (make bench sources
// .dev/services.env), topics of its own with 4 partitions. The broker is
// another process, so the CPU compared is the plain consumer's and the
// processor's alone, as in a deployment (on kfake the broker's work for
// the processor's windows and transactions counts against it). It fails,
// naming the variable, without a broker.
func BenchmarkProcessorVsDecodeBroker(b *testing.B) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		b.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set (source .dev/services.env)")
	}
	const entities, steps, partitions = 2000, 40, 4
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.Partitions = partitions
	kc.TopicPrefix = fmt.Sprintf("bench-window-%d", time.Now().UnixNano())
	b.Cleanup(func() {
		if err := kafkax.DeletePrefixed(kc); err != nil {
			b.Log(err)
		}
	})
	if err := kafkax.EnsureTopics(context.Background(), kc, kc.Topics().All()...); err != nil {
		b.Fatal(err)
	}
	benchProcessorVsCeiling(b, kc, benchStreamPerPartition(entities, steps, partitions))
}

// embeddedBench starts a kfake cluster for one benchmark (closed with it).
func embeddedBench(b *testing.B, partitions int32) kafkax.Config {
	kc := kafkax.DefaultConfig()
	kc.TopicPrefix = "bench"
	emb, err := kafkax.StartEmbedded(0, partitions, kc.Topics().All()...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emb.Close)
	kc.Brokers = emb.Addrs()
	kc.Partitions = partitions
	return kc
}

func benchProcessorVsCeiling(b *testing.B, kc kafkax.Config, recs [][]schemas.RawSample) {
	n := len(recs)
	samples := 0
	for _, r := range recs {
		samples += len(r)
	}
	produceRaw(b, kc, recs)
	b.ResetTimer()
	var ceil, proc, ceilCPU, procCPU time.Duration
	for i := 0; i < b.N; i++ {
		c0 := cpuTime()
		ceil += decodeOnly(b, kc, n, fmt.Sprintf("%s-ceil-%d", kc.TopicPrefix, i))
		c1 := cpuTime()
		proc += processorRun(b, kc, n, fmt.Sprintf("%s-proc-%d", kc.TopicPrefix, i))
		c2 := cpuTime()
		ceilCPU += c1 - c0
		procCPU += c2 - c1
	}
	b.StopTimer()
	total := float64(n * b.N)
	// Per core: records per CPU-second of the whole process (on kfake the
	// in-process broker is included in both), immune to how busy the
	// shared machine is; wall-clock rates as well.
	b.ReportMetric(total/ceilCPU.Seconds(), "ceiling-records/cpu-s")
	b.ReportMetric(total/procCPU.Seconds(), "processor-records/cpu-s")
	b.ReportMetric(float64(samples*b.N)/procCPU.Seconds(), "processor-samples/cpu-s")
	b.ReportMetric(ceilCPU.Seconds()/procCPU.Seconds(), "ratio-vs-plain-consumer")
	b.ReportMetric(total/ceil.Seconds(), "ceiling-records/s")
	b.ReportMetric(total/proc.Seconds(), "processor-records/s")
	b.ReportMetric(float64(samples)/float64(n), "samples/record")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// decodeOnly consumes the topic in a consumer group and decodes each record.
func decodeOnly(b *testing.B, kc kafkax.Config, n int, group string) time.Duration {
	sc, _ := kc.Sarama()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	cg, err := sarama.NewConsumerGroup(kc.Brokers, group, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer cg.Close()
	var count atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &decodeHandler{count: &count, n: int64(n), done: cancel}
	start := time.Now()
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{kc.Topics().Name(schemas.TopicMetricsRaw)}, h); err != nil && ctx.Err() == nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

type decodeHandler struct {
	count *atomic.Int64
	n     int64
	done  func()
}

func (h *decodeHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *decodeHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *decodeHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	var buf []schemas.RawSample
	for m := range c.Messages() {
		var err error
		if buf, err = schemas.DecodeRaw(buf[:0], m.Value); err != nil {
			return err
		}
		if h.count.Add(1) == h.n {
			h.done()
		}
	}
	return nil
}

func processorRun(b *testing.B, kc kafkax.Config, n int, group string) time.Duration {
	cfg := DefaultConfig()
	cfg.Group = group
	cfg.IdleTimeout = 0
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- Run(ctx, cfg, Deps{Kafka: kc, History: history.LocalFS{}, HistoryRoot: b.TempDir(), Registerer: reg,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	for counterValue(reg, "ebbflow_window_records_total") < float64(n) {
		select {
		case err := <-done:
			b.Fatalf("Run ended: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Count the time to the commit covering the last record.
	for counterValue(reg, "ebbflow_window_transactions_total") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return el
}

// TestMemoryPerOpenSeries measures the heap held per open series while a
// window is open: 2,000 services × 4 pods × (a counter and a gauge), four
// scrapes each into the open 60 s window. The target is ≤ 1 KiB.
func TestMemoryPerOpenSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few MiB")
	}
	const entities = 2000
	recs := benchStream(entities, 4)
	for _, r := range recs { // align the four scrapes to one window
		for i := range r {
			r[i].TimestampMs -= 20_000
		}
	}
	set := testSettings
	set.SizesMs = []int64{60_000}
	// Decode as the processor does: decoded strings are views into Arrow
	// buffers, so this also catches a window pinning its input record.
	enc := schemas.NewRawEncoder()
	raw := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := enc.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		raw[i] = b
	}
	recs = nil
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	e := mustEngine(t, set)
	var buf []schemas.RawSample
	for i, b := range raw {
		var err error
		if buf, err = schemas.DecodeRaw(buf[:0], b); err != nil {
			t.Fatal(err)
		}
		e.record(int64(i), buf)
	}
	buf = nil
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(raw)
	series := entities * 4 * 2
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	perSeries := float64(held) / float64(series)
	t.Logf("open windows %d, counter series %d, heap %.0f KiB, %.0f bytes per open series", len(e.st.windows), len(e.st.series), float64(held)/1024, perSeries)
	if len(e.st.windows) != entities*2 {
		t.Fatalf("want %d open windows, got %d", entities*2, len(e.st.windows))
	}
	if perSeries > 1024 {
		t.Fatalf("%.0f bytes per open series, target ≤ 1024", perSeries)
	}
	runtime.KeepAlive(e)
}
