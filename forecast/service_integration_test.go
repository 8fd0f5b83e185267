//go:build integration

package forecast_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/sim/synth"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestServeOnKafkaWithRebalance: windows in → forecasts out on the real
// Kafka; a second instance joins, takes partitions, rebuilds their history
// by reading back, and its first forecasts already use the model (no gap).
func TestServeOnKafkaWithRebalance(t *testing.T) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		t.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set (make test starts Kafka and sets it)")
	}
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.TopicPrefix = fmt.Sprintf("fctest%d", time.Now().UnixNano())
	kc.Partitions = 4
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topics := kc.Topics()
	if err := kafkax.EnsureTopics(ctx, kc, topics.All()...); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyModels(t, dir, "qps")
	cfg := forecast.DefaultConfig()
	cfg.ModelDir, cfg.Signals, cfg.Group = dir, []string{"qps"}, kc.TopicPrefix+"-g"
	sc, _ := kc.Sarama()
	sc.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	svcs := synth.Services(24, 5)
	start := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	series := make([][]schemas.Window, len(svcs))
	for i, s := range svcs {
		series[i] = synth.Generate(s, start, 200, 60, 5)
	}
	send := func(from, to int) {
		var msgs []*sarama.ProducerMessage
		for st := from; st < to; st++ {
			for i := range svcs {
				for _, w := range series[i][3*st : 3*st+3] {
					m, err := kafkax.NewMessage(topics.Name(schemas.TopicMetricsWindows), "/test", w)
					if err != nil {
						t.Fatal(err)
					}
					msgs = append(msgs, m)
				}
			}
		}
		if err := prod.SendMessages(msgs); err != nil {
			t.Fatal(err)
		}
	}
	// Collect forecasts.
	cons, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var mu sync.Mutex
	got := map[string][]schemas.Forecast{} // by source instance
	for p := int32(0); p < kc.Partitions; p++ {
		pc, err := cons.ConsumePartition(topics.Name(schemas.TopicForecasts), p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				f, err := schemas.Decode[schemas.Forecast](m.Value)
				if err != nil {
					t.Errorf("forecast does not decode: %v", err)
					continue
				}
				mu.Lock()
				src := kafkax.HeaderValue(m.Headers, schemas.HeaderSource)
				got[src] = append(got[src], f)
				mu.Unlock()
			}
		}()
	}
	regs := map[string]*prometheus.Registry{}
	run := func(ctx context.Context, name string) (<-chan error, chan struct{}) {
		regs[name] = prometheus.NewRegistry()
		reg := regs[name]
		ready := make(chan struct{})
		done := make(chan error, 1)
		var once sync.Once
		go func() {
			done <- forecast.Run(ctx, cfg, forecast.Deps{Kafka: kc, Registerer: reg, Instance: name, Ready: func() { once.Do(func() { close(ready) }) }})
		}()
		return done, ready
	}
	count := func(src string, pred func(schemas.Forecast) bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, f := range got["/ebbflow/forecast/"+src] {
			if pred(f) {
				n++
			}
		}
		return n
	}
	send(0, 100)
	ctxA, stopA := context.WithCancel(ctx)
	defer stopA()
	doneA, _ := run(ctxA, "a")
	waitFor(t, ctx, func() bool { return count("a", func(schemas.Forecast) bool { return true }) >= 100*len(svcs) }, "instance a forecasts every window")
	if n := count("a", func(f schemas.Forecast) bool { return f.Fallback == "" }); n == 0 {
		t.Fatal("instance a never scored with the model")
	}
	// Each forecast is judged when its target window arrives: the error
	// counters the dashboard and alerts read are served.
	scored := map[string]float64{}
	mfs, err := regs["a"].Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			scored[mf.GetName()] += m.GetCounter().GetValue()
		}
	}
	if scored["ebbflow_forecast_scored_total"] < float64(90*len(svcs)) || scored["ebbflow_forecast_abs_error_total"] <= 0 || scored["ebbflow_forecast_last_value_abs_error_total"] <= 0 {
		t.Fatalf("forecast error counters after 100 steps of %d services: %v", len(svcs), scored)
	}
	ctxB, stopB := context.WithCancel(ctx)
	defer stopB()
	doneB, readyB := run(ctxB, "b")
	select {
	case <-readyB:
	case <-ctx.Done():
		t.Fatal("instance b never got partitions")
	}
	send(100, 110)
	waitFor(t, ctx, func() bool {
		return count("a", func(f schemas.Forecast) bool { return f.OriginMs > start+100*60000 })+count("b", func(f schemas.Forecast) bool { return true }) >= 10*len(svcs) && count("b", func(schemas.Forecast) bool { return true }) > 0
	}, "both instances forecast the new windows")
	nb := count("b", func(schemas.Forecast) bool { return true })
	if nb == 0 {
		t.Fatal("instance b forecast nothing after the rebalance")
	}
	if fb := count("b", func(f schemas.Forecast) bool { return f.Fallback != "" }); fb != 0 {
		t.Fatalf("instance b fell back on %d of %d forecasts: its history was not rebuilt", fb, nb)
	}
	stopA()
	stopB()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, ctx context.Context, cond func() bool, what string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting: %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
