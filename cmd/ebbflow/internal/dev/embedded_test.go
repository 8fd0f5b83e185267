package dev

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// leakOpts ignore goroutines that outlive any run by design: sarama's
// metrics library starts one process-wide meter ticker that never stops.
var leakOpts = []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick")}

func testConfig(t *testing.T) wire.Config {
	t.Helper()
	cfg := wire.Default()
	cfg.Telemetry.Listen = "127.0.0.1:0"
	cfg.Telemetry.LogLevel = "warn"
	// The loop tests judge the configured services; the launched model
	// server has its own test (TestDevLaunchesAndScalesAModelServer).
	cfg.Dev.LaunchAfter = 0
	return cfg
}

// TestEmbeddedKafkaSarama proves what the embedded cluster must accept from
// the components: a sarama idempotent, zstd-compressed producer and a
// sarama consumer group reading every message back.
func TestEmbeddedKafkaSarama(t *testing.T) {
	const topic, n = "ebbflow.check.v1", 500
	k, err := kafkax.StartEmbedded(0, 3, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	kc := kafkax.DefaultConfig()
	kc.Brokers = k.Addrs()

	pc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	pc.Producer.Idempotent = true
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Compression = sarama.CompressionZSTD
	pc.Producer.Return.Successes = true
	pc.Net.MaxOpenRequests = 1
	prod, err := sarama.NewSyncProducer(kc.Brokers, pc)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i%7)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))}
	}
	if err := prod.SendMessages(msgs); err != nil {
		t.Fatalf("idempotent zstd produce to %s: %v", topic, err)
	}
	if err := prod.Close(); err != nil {
		t.Fatal(err)
	}

	cc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cc.Consumer.Offsets.Initial = sarama.OffsetOldest
	cc.Consumer.IsolationLevel = sarama.ReadCommitted
	group, err := sarama.NewConsumerGroup(kc.Brokers, "check", cc)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	h := &collect{want: n, done: make(chan struct{}), seen: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{topic}, h); err != nil {
				return
			}
		}
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		t.Fatalf("consumer group read %d of %d messages from %s", h.count(), n, topic)
	}
	cancel()
	for i := range n {
		if !h.seen[fmt.Sprintf("v%d", i)] {
			t.Fatalf("message v%d never arrived", i)
		}
	}
}

type collect struct {
	mu   sync.Mutex
	want int
	seen map[string]bool
	done chan struct{}
}

func (c *collect) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.seen) }

func (c *collect) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (c *collect) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (c *collect) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		c.mu.Lock()
		before := len(c.seen)
		c.seen[string(m.Value)] = true
		if before < c.want && len(c.seen) == c.want {
			close(c.done)
		}
		c.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

// TestStartPartsAndStop starts the embedded parts, checks each answers
// where it says it listens, and checks nothing is left running after close.
func TestStartPartsAndStop(t *testing.T) {
	defer goleak.VerifyNone(t, leakOpts...)
	cfg := testConfig(t)
	ctx := context.Background()
	reg := telemetry.NewRegistry()
	p, got, err := startParts(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kafka.Brokers) == 0 || got.Kafka.Brokers[0] != p.ep.KafkaBrokers[0] {
		t.Fatalf("kafka config not pointed at the embedded cluster: %v vs %v", got.Kafka.Brokers, p.ep.KafkaBrokers)
	}
	if got.History.Root != p.ep.HistoryDir || got.NATS.URL != p.ep.NATSURL {
		t.Fatalf("config not pointed at the embedded parts: %+v", got)
	}
	// Every topic exists.
	sc, _ := got.Kafka.Sarama()
	admin, err := sarama.NewClusterAdmin(got.Kafka.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	have, err := admin.ListTopics()
	admin.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range got.Kafka.Topics().All() {
		if _, ok := have[name]; !ok {
			t.Errorf("topic %s missing", name)
		}
	}
	// JetStream captures decisions.
	nc, err := nats.Connect(p.ep.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(schemas.DecisionSubject("scale", "default", "inference"), []byte("{}")); err != nil {
		t.Fatalf("publish to the decisions stream: %v", err)
	}
	nc.Close()
	// The telemetry listener is open at MetricsURL; wire.Run serves it (as
	// here) with the components.
	telCtx, stopTel := context.WithCancel(ctx)
	telDone := make(chan error, 1)
	go func() {
		telDone <- telemetry.ServeListener(telCtx, p.telemetry, telemetry.Handler(reg, &telemetry.Readiness{}), telemetry.NewLogger(cfg.Telemetry, io.Discard))
	}()
	resp, err := http.Get(p.ep.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("go_goroutines")) {
		t.Fatalf("/metrics: %d %.200s", resp.StatusCode, body)
	}
	stopTel()
	if err := <-telDone; err != nil {
		t.Fatal(err)
	}
	p.close()
}

// TestRunPrintsEndpointsAndStops runs everything until forecasts flow,
// then cancels the context (Ctrl-C): Run must return nil, having printed
// where everything listens, and leave no goroutine behind.
func TestRunPrintsEndpointsAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, leakOpts...)
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, cfg, Options{Headless: true, Speed: "max", Logger: telemetry.NewLogger(cfg.Telemetry, io.Discard)}, &out)
		done <- err
	}()
	// Each component and the tap consume at their own pace: wait until
	// every wanted series is exported (the tap may count its first
	// metrics.windows record after the forecaster's first forecast on a
	// loaded machine), with a generous deadline.
	wants := []string{"ebbflow_forecast_forecasts_total{", "ebbflow_dev_sim_steps_total", "ebbflow_dev_tap_events_total{topic=\"metrics.windows\"}", "ebbflow_ingest_", "ebbflow_autoscale_", "ebbflow_ui_event_streams"}
	missing := func(body string) []string {
		var m []string
		for _, w := range wants {
			if !strings.Contains(body, w) {
				m = append(m, w)
			}
		}
		return m
	}
	metricsURL, body := "", ""
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		if metricsURL == "" {
			for _, l := range strings.Split(out.String(), "\n") {
				if f := strings.Fields(l); len(f) == 2 && f[0] == "metrics" {
					metricsURL = f[1]
				}
			}
		} else if body = get(metricsURL); len(missing(body)) == 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before the pipeline flowed: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if metricsURL == "" {
		t.Errorf("no metrics endpoint printed within 4m:\n%s", out.String())
	} else if m := missing(body); len(m) > 0 {
		t.Errorf("/metrics at %s still lacks %v after 4m", metricsURL, m)
	}
	// The web UI's address is printed and it serves the overview.
	if m := regexp.MustCompile(`web UI\s+(http://\S+)`).FindStringSubmatch(out.String()); m == nil {
		t.Errorf("no web UI address printed:\n%s", out.String())
	} else if page := get(m[1]); !strings.Contains(page, "<h1>Overview</h1>") {
		t.Errorf("the web UI at %s does not serve the overview: %.300s", m[1], page)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	s := out.String()
	for _, want := range []string{"kcat -C -b 127.0.0.1:", "ebbflow.decisions.v1", "nats://127.0.0.1:", "sub 'ebbflow.decisions.>'", "/metrics", "simulated pods"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
