package autoscale

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// BenchmarkRunOnKfake: Run on the embedded Kafka with 10,000 services.
// Each iteration closes one window per service at once (a minute
// boundary: the window processor emits them in a burst) and waits for the
// 10,000 decisions on the decisions topic. Latency is from the start of
// the burst to each decision's arrival at a consumer; the baselines in the
// same run are producing the burst alone (burst_produce_ms) and HPA's 15 s
// reaction loop (DESIGN.md target: p99 ≤ 250 ms). The real-broker variant
// is BenchmarkRunOnBroker.
func BenchmarkRunOnKfake(b *testing.B) {
	k, err := kafkax.StartEmbedded(0, 8)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	kc := kafkax.DefaultConfig()
	kc.Brokers = k.Addrs()
	kc.TopicPrefix = "bench"
	benchBurst(b, kc)
}

// benchBurst drives Run on the cluster kc names through b.N bursts of
// benchServices windows and reports the latency to their decisions.
func benchBurst(b *testing.B, kc kafkax.Config) {
	topics := kc.Topics()
	if err := kafkax.EnsureTopics(context.Background(), kc, topics.All()...); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.InitialOffset = "oldest"
	cfg.ConsumerGroup = kc.TopicPrefix + "-autoscale"
	cfg.RepeatSuppress = 0
	cfg.StaleAfter = 24 * time.Hour
	cfg.Policy.ScaleDownStabilization = 0
	cfg.Policy.ScaleDownCooldown = 0
	cfg.Policy.Signals = map[string]SignalPolicy{schemas.SignalQPS: {ExpectRate: 0.5, Capacity: 100}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	reg := prometheus.NewRegistry()
	go func() {
		done <- Run(ctx, cfg, Deps{Kafka: kc, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Ready: func() { close(ready) }})
	}()
	// Time bursts only once the decider has joined its group (on a real
	// broker the first join takes seconds).
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("Run ended before joining: %v", err)
	case <-time.After(time.Minute):
		b.Fatal("the decider did not join its consumer group within a minute")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()

	sc, _ := kc.Sarama()
	sc.Producer.Return.Successes = true
	sc.Producer.Flush.Frequency = time.Millisecond
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	entities := make([]string, benchServices)
	msgs := make([]*sarama.ProducerMessage, benchServices)
	for i := range entities {
		entities[i] = schemas.ServiceEntity("bench", fmt.Sprintf("ns%d", i%50), fmt.Sprintf("svc-%d", i))
		msgs[i], err = kafkax.NewMessage(topics.Name(schemas.TopicMetricsWindows), "/bench", schemas.Window{Entity: entities[i],
			Signal: schemas.SignalReplicas, Kind: schemas.KindGauge, SizeS: 60, StartMs: nowMs - 60_000, EndMs: nowMs, Count: 1, Mean: 7, Last: 7})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := prod.SendMessages(msgs); err != nil {
		b.Fatal(err)
	}
	// The set-up windows (each service's N) must be consumed before the
	// first timed burst, or that burst would queue behind them.
	windowsTopic := topics.Name(schemas.TopicMetricsWindows)
	for deadline := time.Now().Add(2 * time.Minute); inputsOf(b, reg, windowsTopic) < benchServices; {
		if time.Now().After(deadline) {
			b.Fatalf("the decider read %v of the %d set-up windows in 2 minutes", inputsOf(b, reg, windowsTopic), benchServices)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Decisions consumer: arrival times per round.
	cons, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	parts, _ := cons.Partitions(topics.Name(schemas.TopicDecisions))
	arrivals := make(chan time.Time, benchServices)
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := cons.ConsumePartition(topics.Name(schemas.TopicDecisions), p, sarama.OffsetNewest)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range pc.Messages() {
				arrivals <- time.Now()
			}
		}()
		defer pc.Close()
	}

	var lat []time.Duration
	var total, produce, cpu time.Duration
	b.ResetTimer()
	for round := 0; round < b.N; round++ {
		for i, e := range entities {
			msgs[i], err = kafkax.NewMessage(topics.Name(schemas.TopicMetricsWindows), "/bench", benchWindow(e, round))
			if err != nil {
				b.Fatal(err)
			}
		}
		c0 := processCPU()
		start := time.Now()
		if err := prod.SendMessages(msgs); err != nil {
			b.Fatal(err)
		}
		produce += time.Since(start)
		timeout := time.After(2 * time.Minute)
		for got := 0; got < benchServices; got++ {
			select {
			case t := <-arrivals:
				lat = append(lat, t.Sub(start))
			case <-timeout:
				b.Fatalf("round %d: %d of %d decisions after 2 minutes", round, got, benchServices)
			}
		}
		total += time.Since(start)
		cpu += processCPU() - c0
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/total.Seconds(), "decisions/s")
	b.ReportMetric(q(0.99)/15000, "p99/hpa_15s")
	// Baseline in the same run: producing the burst of windows alone.
	b.ReportMetric(float64(produce.Microseconds())/1000/float64(b.N), "burst_produce_ms")
	// CPU of the whole process per burst (decider, load producer, decisions
	// consumer and, on kfake, the broker): less sensitive to the other
	// load on a shared machine than the latencies.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/burst")
}

// inputsOf is ebbflow_autoscale_inputs_total of one input topic.
func inputsOf(b *testing.B, reg *prometheus.Registry, topic string) float64 {
	v, err := telemetry.CounterValue(reg, "ebbflow_autoscale_inputs_total", "topic", topic)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunOnBroker is BenchmarkRunOnKfake against the real broker of
// EBBFLOW_TEST_KAFKA_BROKERS (make bench sources .dev/services.env), with
// 8 partitions and topics of its own: a burst of 10,000 windows to 10,000
// decisions on the decisions topic, p99-ms next to burst_produce_ms from
// the same run. It fails, naming the variable, without a broker.
func BenchmarkRunOnBroker(b *testing.B) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		b.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set (source .dev/services.env)")
	}
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.Partitions = 8
	kc.TopicPrefix = fmt.Sprintf("bench-burst-%d", time.Now().UnixNano())
	b.Cleanup(func() {
		if err := kafkax.DeletePrefixed(kc); err != nil {
			b.Log(err)
		}
	})
	benchBurst(b, kc)
}
