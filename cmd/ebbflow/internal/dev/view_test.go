package dev

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/schemas"
)

// consumed turns an event into the record the tap would read.
func consumed(t *testing.T, base string, ev schemas.Event) *sarama.ConsumerMessage {
	t.Helper()
	pm, err := kafkax.NewMessage(schemas.Topics{}.Name(base), "/test", ev)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := pm.Value.Encode()
	m := &sarama.ConsumerMessage{Topic: pm.Topic, Value: v}
	for i := range pm.Headers {
		m.Headers = append(m.Headers, &pm.Headers[i])
	}
	return m
}

func TestTapAndView(t *testing.T) {
	s, err := sim.Start(context.Background(), sim.Config{Cluster: "default", Namespace: "inference", Start: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		Step: 15 * time.Second, Nodes: 1, GPUsPerNode: 4, LatencySLOMs: 100,
		Services: []sim.Service{{Name: "chat", Model: "m", CapacityRPS: 40, BaseLatencyMs: 20, InitialReplicas: 2, Load: func(time.Duration) float64 { return 42 }}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := s.Entity("chat")
	tp := &tap{log: slog.New(slog.NewTextHandler(io.Discard, nil)), windows: map[wkey]schemas.Window{}, latest: map[string]*latest{}}
	tp.add(schemas.TopicMetricsWindows, consumed(t, schemas.TopicMetricsWindows, win(e, schemas.SignalQPS, 1, 41.5)))
	tp.add(schemas.TopicForecasts, consumed(t, schemas.TopicForecasts, schemas.Forecast{ID: "f1", Entity: e, Signal: schemas.SignalQPS, StepS: 60, OriginMs: 120000, Observed: 41.5,
		Horizons: []schemas.HorizonValue{{Minutes: 1, AtMs: 180000, Value: 43}, {Minutes: 2, AtMs: 240000, Value: 47}},
		Model:    schemas.ModelRef{ID: "qps", Version: "1", FeatureSpec: "x"}}))
	tp.add(schemas.TopicDecisions, consumed(t, schemas.TopicDecisions, schemas.ScaleDecision{ID: "d1", Kind: schemas.DecisionScale, Seq: 1, Entity: e,
		Target: schemas.Target{Cluster: "default", Namespace: "inference", Kind: "Deployment", Name: "chat"}, AtMs: 120000, ExpiresMs: 240000, From: 2, To: 3,
		Reason: schemas.Reason{Summary: "scale up 2 → 3", Formula: "ceil(…)", HorizonMinutes: 2, Demands: []schemas.SignalDemand{}}, DecidedBy: "/test"}))
	tp.add(schemas.TopicForecasts, &sarama.ConsumerMessage{Topic: "ebbflow.forecasts.v1", Value: []byte("{not json")})

	ev := tp.snapshot()
	if len(ev.Windows) != 1 || len(ev.Forecasts) != 1 || len(ev.Decisions) != 1 || ev.Bad != 1 {
		t.Fatalf("tap read %d windows, %d forecasts, %d decisions, %d bad; want 1, 1, 1, 1", len(ev.Windows), len(ev.Forecasts), len(ev.Decisions), ev.Bad)
	}
	v := newView(io.Discard, s, tp, Endpoints{KafkaBrokers: []string{"127.0.0.1:1"}, NATSURL: "nats://127.0.0.1:2"}, false, tp.log)
	if v.terminal {
		t.Error("a non-terminal writer got the terminal view")
	}
	out := v.render()
	for _, want := range []string{e, "41.5", "43 47", "2/2→2", "2→3: scale up 2 → 3", "nats://127.0.0.1:2"} {
		if !strings.Contains(out, want) {
			t.Errorf("view lacks %q:\n%s", want, out)
		}
	}
}
