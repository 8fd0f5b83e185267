package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// pipeline runs windows → (forecast events produced directly: there is no
// forecast.Run yet) → autoscale.Run → decisions → actuators.Run → Deployment
// scaled → actions, and checks the same decision on a JetStream consumer.
// The Deployment ns/web must exist with 2 replicas; replicasOf reads it.
type pipeline struct {
	brokers    []string
	cluster    string
	namespace  string
	kube       kubernetes.Interface // the actuator's identity
	leader     bool                 // leader election on (real apiserver)
	replicasOf func() int32
	// forecaster runs the real forecast.Run (no models: its last-value
	// baseline) instead of producing forecast events directly.
	forecaster bool
	// nats is the real nats-server to publish decisions to; empty URL: an
	// in-process server.
	nats natsbus.Config
}

func (p pipeline) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ncfg := p.nats
	if ncfg.URL == "" {
		ns, err := natsbus.StartEmbedded(-1, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		ncfg = natsbus.Config{URL: ns.URL()}
	}
	nc, js, err := natsbus.ConnectJetStream(ncfg, "pipeline-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := natsbus.EnsureStreams(ctx, js, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Only this run's subject: the real server is shared with other tests.
	sub, err := js.OrderedConsumer(ctx, schemas.StreamDecisions, jetstream.OrderedConsumerConfig{FilterSubjects: []string{schemas.DecisionSubject("scale", p.cluster, p.namespace)}})
	if err != nil {
		t.Fatal(err)
	}

	kc := kafkax.DefaultConfig()
	kc.Brokers = p.brokers
	kc.TopicPrefix = fmt.Sprintf("e2e%d", time.Now().UnixNano()%1_000_000_000)
	kc.Partitions = 2
	topics := kc.Topics()
	if err := kafkax.EnsureTopics(ctx, kc, topics.All()...); err != nil {
		t.Fatal(err)
	}

	dcfg := autoscale.DefaultConfig()
	dcfg.InitialOffset = "oldest"
	dcfg.ConsumerGroup = kc.TopicPrefix + "-decide"
	dcfg.Policy.Signals = map[string]autoscale.SignalPolicy{schemas.SignalQPS: {ExpectRate: 0.5, Capacity: 100}}
	wl, err := autoscale.NewWorkloadInformer(ctx, p.kube, 0)
	if err != nil {
		t.Fatal(err)
	}
	acfg := actuators.DefaultConfig()
	acfg.InitialOffset = "oldest"
	acfg.ConsumerGroup = kc.TopicPrefix + "-actuate"
	acfg.Identity = "e2e-actuator"
	acfg.LeaderElection.Enabled = p.leader
	acfg.LeaderElection.LeaseName = kc.TopicPrefix
	acfg.LeaderElection.LeaseDuration, acfg.LeaderElection.RenewDeadline, acfg.LeaderElection.RetryPeriod = 15*time.Second, 10*time.Second, time.Second

	decReg := prometheus.NewRegistry()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	if p.forecaster {
		fcfg := forecast.DefaultConfig()
		fcfg.Group = kc.TopicPrefix + "-forecast"
		fcfg.ModelDir = t.TempDir()
		fcfg.Signals = []string{schemas.SignalQPS}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- forecast.Run(ctx, fcfg, forecast.Deps{Kafka: kc, Logger: quiet, Instance: "e2e"})
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs <- autoscale.Run(ctx, dcfg, autoscale.Deps{Kafka: kc, Cluster: p.cluster, Workloads: wl, JetStream: js, Log: quiet, Registerer: decReg})
	}()
	go func() {
		defer wg.Done()
		errs <- actuators.Run(ctx, acfg, actuators.Deps{Kafka: kc, Cluster: p.cluster, Kube: p.kube, Handlers: registry(p.kube, acfg), JetStream: js, Log: quiet})
	}()
	defer func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("component: %v", err)
			}
		}
	}()

	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	entity := schemas.ServiceEntity(p.cluster, p.namespace, "web")
	now := time.Now().Truncate(time.Minute).UnixMilli()
	window := func(endMs int64, rate float64) *sarama.ProducerMessage {
		w := schemas.Window{Entity: entity, Signal: schemas.SignalQPS, Kind: schemas.KindCounter, SizeS: 60,
			StartMs: endMs - 60_000, EndMs: endMs, Count: 4, Sum: rate * 60, Min: 1, Max: rate, Mean: rate, Last: rate, P50: rate, P95: rate, P99: rate, Rate: &rate}
		m, err := kafkax.NewMessage(topics.Name(schemas.TopicMetricsWindows), "/test", w)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	bad := &sarama.ProducerMessage{Topic: topics.Name(schemas.TopicForecasts), Key: sarama.StringEncoder(entity), Value: sarama.StringEncoder(`{"id":"broken"}`),
		Headers: []sarama.RecordHeader{{Key: []byte(schemas.HeaderType), Value: []byte(schemas.Forecast{}.EventType())}}}
	wantTo := int32(8)
	var f schemas.Forecast
	if p.forecaster {
		// Step 1: 100 req/s (r = 2 = N, hold); once its forecast is out,
		// forecasts flow and the next window waits for its own forecast.
		// Step 2: 250 req/s; the last-value baseline predicts 250 → r = 5.
		wantTo = 5
		if _, _, err := prod.SendMessage(window(now-60_000, 100)); err != nil {
			t.Fatal(err)
		}
		waitForRecord(t, ctx, kc, topics.Name(schemas.TopicForecasts), func([]byte) bool { return true })
		// The decider has consumed that first forecast.
		waitUntil(t, ctx, "the decider consumed the first forecast", func() bool {
			v, err := telemetry.CounterValue(decReg, "ebbflow_autoscale_inputs_total", "topic", topics.Name(schemas.TopicForecasts))
			return err == nil && v >= 1
		})
		if err := prod.SendMessages([]*sarama.ProducerMessage{bad, window(now, 250)}); err != nil {
			t.Fatal(err)
		}
	} else {
		// A qps window (250 req/s) and its forecast (up to 400 req/s within
		// the 4-minute horizon — 150 s start-up plus one step — and 900
		// beyond it) → r = 400/50 = 8.
		f = schemas.Forecast{ID: "fc/" + entity + "/qps/" + fmt.Sprint(now), Entity: entity, Signal: schemas.SignalQPS, OriginMs: now, StepS: 60,
			Observed: 250, Model: schemas.ModelRef{ID: "test", Version: "1", FeatureSpec: "v1"},
			Horizons: []schemas.HorizonValue{{Minutes: 1, AtMs: now + 60_000, Value: 300}, {Minutes: 2, AtMs: now + 120_000, Value: 350},
				{Minutes: 3, AtMs: now + 180_000, Value: 400}, {Minutes: 5, AtMs: now + 300_000, Value: 900}}}
		fm, err := kafkax.NewMessage(topics.Name(schemas.TopicForecasts), "/test", f)
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.SendMessages([]*sarama.ProducerMessage{window(now, 250), bad, fm}); err != nil {
			t.Fatal(err)
		}
	}

	// The action on the actions topic.
	act := waitForRecord(t, ctx, kc, topics.Name(schemas.TopicActions), func(b []byte) bool {
		a, err := schemas.Decode[schemas.Action](b)
		return err == nil && a.Outcome == schemas.OutcomeApplied && a.After != nil && *a.After == wantTo
	})
	a, _ := schemas.Decode[schemas.Action](act)
	if a.Before == nil || (*a.Before != 2 && *a.Before != 5) {
		t.Fatalf("action %+v: want from 2 (or 5 after the reactive decision on the window) to %d", a, wantTo)
	}
	if got := p.replicasOf(); got != wantTo {
		t.Fatalf("Deployment has %d replicas, want %d", got, wantTo)
	}
	// The decision on Kafka, with its reason, and the same decision on NATS.
	decRec := waitForRecord(t, ctx, kc, topics.Name(schemas.TopicDecisions), func(b []byte) bool {
		d, err := schemas.Decode[schemas.ScaleDecision](b)
		return err == nil && d.ID == a.DecisionID
	})
	d, err := schemas.Decode[schemas.ScaleDecision](decRec)
	if err != nil {
		t.Fatal(err)
	}
	if d.To != wantTo || d.Reason.HorizonMinutes != 4 || len(d.Reason.Demands) != 1 {
		t.Fatalf("decision %+v", d)
	}
	if p.forecaster {
		// Decided on the forecaster's forecast: its id and the baseline it used.
		if d.ForecastID == "" || d.Reason.Demands[0].Source != autoscale.SourceFallback || d.Reason.Demands[0].Predicted != 1.25 {
			t.Fatalf("decision not from forecast.Run's forecast: forecast_id %q, demands %+v", d.ForecastID, d.Reason.Demands)
		}
	} else if d.ForecastID != f.ID || d.Reason.Demands[0].Predicted != 2 {
		t.Fatalf("decision %+v: want forecast %s, predicted per-replica utilisation 400/(2×100) = 2", d, f.ID)
	}
	msg, err := sub.Next(jetstream.FetchMaxWait(time.Minute))
	if err != nil {
		t.Fatalf("no decision on NATS: %v", err)
	}
	if want := schemas.DecisionSubject("scale", p.cluster, p.namespace); msg.Subject() != want {
		t.Fatalf("NATS subject %s, want %s", msg.Subject(), want)
	}
	var nd schemas.ScaleDecision
	if err := json.Unmarshal(msg.Data(), &nd); err != nil || nd.Target != d.Target {
		t.Fatalf("NATS decision %s (%v), want target %v", msg.Data(), err, d.Target)
	}
	// Every decision on Kafka reaches NATS, the one that scaled to 8 included.
	for nd.ID != d.ID {
		msg, err = sub.Next(jetstream.FetchMaxWait(time.Minute))
		if err != nil {
			t.Fatalf("decision %s not on NATS: %v", d.ID, err)
		}
		if err := json.Unmarshal(msg.Data(), &nd); err != nil {
			t.Fatal(err)
		}
	}
	// The bad forecast went to the dead-letter topic, and did not stop anything.
	waitForRecord(t, ctx, kc, topics.Name(schemas.TopicDeadLetter), func(b []byte) bool {
		dl, err := schemas.Decode[schemas.DeadLetter](b)
		return err == nil && dl.Reason == "schema"
	})
}

// waitForRecord reads a topic from the start until match accepts a value.
func waitForRecord(t *testing.T, ctx context.Context, kc kafkax.Config, topic string, match func([]byte) bool) []byte {
	t.Helper()
	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	c, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	found := make(chan []byte, len(parts))
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				if match(m.Value) {
					found <- m.Value
					return
				}
			}
		}()
	}
	select {
	case b := <-found:
		return b
	case <-ctx.Done():
		t.Fatalf("no matching record on %s: %v", topic, ctx.Err())
		return nil
	}
}

// waitUntil polls cond until it holds or ctx ends (the test's generous
// deadline).
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting: %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
