package dev

import (
	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

func ptr[T any](v T) *T { return &v }

func win(entity, signal string, startMin int64, v float64) schemas.Window {
	w := schemas.Window{Entity: entity, Signal: signal, Kind: schemas.KindGauge, SizeS: 60, StartMs: startMin * 60000, EndMs: (startMin + 1) * 60000, Count: 1, Mean: v}
	if signal == schemas.SignalQPS {
		w.Kind, w.Rate = schemas.KindCounter, ptr(v)
	}
	return w
}

func TestSummarise(t *testing.T) {
	const e = "svc/dev/inference/chat"
	target := schemas.Target{Cluster: "dev", Namespace: "inference", Kind: "Deployment", Name: "chat"}
	ev := events{
		Windows: []schemas.Window{
			win(e, schemas.SignalReplicas, 0, 2), win(e, schemas.SignalReplicas, 1, 3), win(e, schemas.SignalReplicas, 2, 3),
			win(e, schemas.SignalLatencyP99, 0, 50), win(e, schemas.SignalLatencyP99, 1, 150), win(e, schemas.SignalLatencyP99, 2, 90),
			win(e, schemas.SignalQPS, 0, 100), win(e, schemas.SignalQPS, 1, 110), win(e, schemas.SignalQPS, 2, 130),
			win("node/dev/n1", schemas.SignalReplicas, 0, 99), // not a service: ignored
		},
		Forecasts: []schemas.Forecast{
			// Origin = end of window 0 (value 100): +1 min is window 1 (110), +2 min window 2 (130).
			{Entity: e, Signal: schemas.SignalQPS, StepS: 60, OriginMs: 60000, Observed: 100,
				Horizons: []schemas.HorizonValue{{Minutes: 1, AtMs: 120000, Value: 100}, {Minutes: 2, AtMs: 180000, Value: 120}}},
			// Origin = start of window 1 (value 110): +1 min is window 2 (130).
			{Entity: e, Signal: schemas.SignalQPS, StepS: 60, OriginMs: 60000, Observed: 110,
				Horizons: []schemas.HorizonValue{{Minutes: 1, AtMs: 120000, Value: 125}}},
			{Entity: e, Signal: schemas.SignalCPU, StepS: 60, OriginMs: 60000, Observed: 1}, // other signals are not judged
		},
		Decisions: []schemas.ScaleDecision{{ID: "d1", Entity: e, Target: target, From: 2, To: 3, AtMs: 60000}, {ID: "d2", Entity: e, Target: target, From: 3, To: 1, AtMs: 170000}},
		Actions: []schemas.Action{
			{DecisionID: "d1", Target: target, Outcome: schemas.OutcomeApplied, Before: ptr[int32](2), After: ptr[int32](3), AtMs: 60000},
			{DecisionID: "d2", Target: target, Outcome: schemas.OutcomeApplied, Before: ptr[int32](3), After: ptr[int32](1), AtMs: 170000},
			{DecisionID: "d2", Target: target, Outcome: schemas.OutcomeSkipped, Reason: "duplicate", AtMs: 171000},
			{DecisionID: "dx", Target: target, Outcome: schemas.OutcomeApplied, DryRun: true, Before: ptr[int32](3), After: ptr[int32](9), AtMs: 172000},
		},
	}
	got := summarise(ev, 60, 100)
	if len(got) != 1 {
		t.Fatalf("services = %+v, want only %s", got, e)
	}
	s := got[0]
	checks := []struct {
		name      string
		got, want float64
	}{
		{"replica-minutes", s.ReplicaMinutes, 8},
		{"minutes over SLO", float64(s.MinutesOverSLO), 1},
		{"minutes judged", float64(s.MinutesJudged), 3},
		{"decisions", float64(s.Decisions), 2},
		{"scale-ups", float64(s.ScaleUps), 1},
		{"scale-downs", float64(s.ScaleDowns), 1},
		{"min replicas", float64(s.MinReplicas), 1},
		{"max replicas", float64(s.MaxReplicas), 3},
		{"qps forecasts", float64(s.Forecasts), 2},
		{"MAE +1 min", s.ForecastMAE[1], (10 + 5) / 2.0},
		{"MAE +2 min", s.ForecastMAE[2], 10},
		{"pairs +1 min", float64(s.ForecastN[1]), 2},
		{"last-value MAE +1 min", s.LastValueMAE[1], (10 + 20) / 2.0},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(s.Ups) != 1 || !s.Ups[0].Equal(time.UnixMilli(60000)) || len(s.Downs) != 1 {
		t.Errorf("ups %v downs %v", s.Ups, s.Downs)
	}
}

func TestDevConfigValidateNamesField(t *testing.T) {
	cases := []struct {
		field string
		set   func(*wire.DevConfig)
	}{
		{"services", func(c *wire.DevConfig) { c.Services = 0 }},
		{"max_replicas", func(c *wire.DevConfig) { c.MaxReplicas = 0 }},
		{"initial_replicas", func(c *wire.DevConfig) { c.InitialReplicas = 99 }},
		{"step", func(c *wire.DevConfig) { c.Step = time.Millisecond }},
		{"max_lag", func(c *wire.DevConfig) { c.MaxLag = time.Second }},
		{"start_hour", func(c *wire.DevConfig) { c.StartHour = 24 }},
		{"capacity_rps", func(c *wire.DevConfig) { c.CapacityRPS = 0 }},
	}
	if err := wire.DefaultDevConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range cases {
		cfg := wire.DefaultDevConfig()
		c.set(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("%s: error %v does not name the field", c.field, err)
		}
	}
}

func TestSimConfigShapesAndTrace(t *testing.T) {
	cfg := testConfig(t)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	sc, err := simConfig(cfg, Options{}, start, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Services) != cfg.Dev.Services {
		t.Fatalf("%d services", len(sc.Services))
	}
	// Different shapes: the services' loads do not move in lockstep.
	a, b := sc.Services[0].Load, sc.Services[1].Load
	if a(time.Hour)/a(0) == b(time.Hour)/b(0) {
		t.Error("two services have the same shape")
	}
	for _, s := range sc.Services {
		if s.InitialReplicas < cfg.Dev.MinReplicas || s.InitialReplicas > cfg.Dev.MaxReplicas {
			t.Errorf("%s starts with %d replicas", s.Name, s.InitialReplicas)
		}
	}
	if _, err := simConfig(cfg, Options{Trace: sharedTrace(t, "philly_node_sequence.csv")}, start, time.Second); err != nil {
		t.Errorf("philly trace: %v", err)
	}
	if _, err := simConfig(cfg, Options{Trace: sharedTrace(t, "philly_node_sequence.csv"), TraceColumn: "nope"}, start, time.Second); err == nil || !strings.Contains(err.Error(), "--trace") {
		t.Errorf("a missing column: %v", err)
	}
}
