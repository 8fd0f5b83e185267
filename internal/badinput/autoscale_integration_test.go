//go:build integration

package badinput_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestBadInputAutoscaleDecider: on both of the decider's inputs, records
// that are not events, of an unknown or wrong type, violate the schema or
// lie out of range (a far-future window or forecast would become the
// service's "now": later forecasts would look stale and decisions would
// never expire) go to the dead letter with the reason and a count; the
// good forecast after them decides.
func TestBadInputAutoscaleDecider(t *testing.T) {
	s := newSweep(t, "as")
	cfg := autoscale.DefaultConfig()
	cfg.InitialOffset = "oldest"
	cfg.ConsumerGroup = s.kc.TopicPrefix + "-decide"
	cfg.Policy.Signals = map[string]autoscale.SignalPolicy{schemas.SignalQPS: {ExpectRate: 0.5, Capacity: 100}}
	reg := prometheus.NewRegistry()
	out := s.collect(schemas.TopicDecisions)
	const cluster = "c1"
	done := s.run("autoscale.Run", func(ctx context.Context) error {
		// No Workloads: the replicas signal gives N.
		return autoscale.Run(ctx, cfg, autoscale.Deps{Kafka: s.kc, Cluster: cluster, Log: quiet(), Registerer: reg})
	})

	entity := schemas.ServiceEntity(cluster, "ns", "web")
	now := time.Now().Truncate(time.Minute).UnixMilli()
	replicas := schemas.Window{Entity: entity, Signal: schemas.SignalReplicas, Kind: schemas.KindGauge, SizeS: 60,
		StartMs: now - 60_000, EndMs: now, Count: 4, Sum: 8, Min: 2, Max: 2, Mean: 2, Last: 2, P50: 2, P95: 2, P99: 2}
	qps := qpsWindow(entity, now, 250)
	f := schemas.Forecast{ID: fmt.Sprintf("fc/%s/qps/%d", entity, now), Entity: entity, Signal: schemas.SignalQPS, OriginMs: now, StepS: 60,
		Observed: 250, Model: schemas.ModelRef{ID: "test", Version: "1", FeatureSpec: "v1"},
		Horizons: []schemas.HorizonValue{{Minutes: 1, AtMs: now + 60_000, Value: 300}, {Minutes: 2, AtMs: now + 120_000, Value: 350},
			{Minutes: 3, AtMs: now + 180_000, Value: 400}, {Minutes: 5, AtMs: now + 300_000, Value: 900}}}
	future := f
	future.ID, future.OriginMs = "fc/future", farFuture
	future.Horizons = []schemas.HorizonValue{{Minutes: 1, AtMs: farFuture + 60_000, Value: 1}}
	backwards := f
	backwards.ID = "fc/backwards"
	backwards.Horizons = []schemas.HorizonValue{{Minutes: 1, AtMs: now - 60_000, Value: 1}}
	bw := qpsWindow(entity, now, 1)
	bw.EndMs = bw.StartMs - 1
	wt, ft := schemas.Window{}.EventType(), schemas.Forecast{}.EventType()
	win, fc := schemas.TopicMetricsWindows, schemas.TopicForecasts
	windowCases := []badCase{
		{"garbage window", s.raw(win, entity, wt, []byte("\x00\xff{not json")), "schema", "not JSON"},
		{"unknown type", s.raw(win, entity, "io.ebbflow.bogus.v1", withJSON(t, qps, nil)), "decode", "unexpected ce_type"},
		{"window count 0", s.raw(win, entity, wt, withJSON(t, qps, map[string]string{"count": "0"})), "schema", "/count"},
		{"far-future window", s.eventNow(win, qpsWindow(entity, farFuture, 1e6)), "out_of_range", "max_future"},
		{"window ending before it starts", s.raw(win, entity, wt, withJSON(t, bw, nil)), "out_of_range", "end_ms"},
	}
	forecastCases := []badCase{
		{"oversize forecast", s.raw(fc, entity, ft, oversize(900<<10)), "schema", "missing propert"},
		{"forecast value 1e999", s.raw(fc, entity, ft, withJSON(t, f, map[string]string{"value": "1e999"})), "decode", "1e999"},
		{"forecast value NaN", s.raw(fc, entity, ft, withJSON(t, f, map[string]string{"value": `"NaN"`})), "schema", "/horizons/0/value"},
		{"a decision on the forecasts topic", s.raw(fc, entity, schemas.ScaleDecision{}.EventType(), []byte(`{}`)), "decode", "unexpected ce_type"},
		{"far-future forecast", s.eventNow(fc, future), "out_of_range", "max_future"},
		{"horizon before origin", s.raw(fc, entity, ft, withJSON(t, backwards, nil)), "out_of_range", "not after origin_ms"},
	}
	// The windows (good, then bad) first: N and the current rate are known
	// before the forecast decides.
	msgs := []*sarama.ProducerMessage{s.event(win, replicas), s.event(win, qps)}
	for _, c := range windowCases {
		msgs = append(msgs, c.msg)
	}
	woffs := s.send(msgs...)
	s.wait(s.dead, "the bad windows dead-lettered", done, func(ms []*sarama.ConsumerMessage) bool { return len(ms) >= len(windowCases) })
	msgs = nil
	for _, c := range forecastCases {
		msgs = append(msgs, c.msg)
	}
	// Far-past inputs are valid, only older than the service's newest:
	// they must not become its "now" (checked on the decisions below).
	past := f
	past.ID, past.OriginMs = "fc/past", farPast
	past.Horizons = []schemas.HorizonValue{{Minutes: 1, AtMs: farPast + 60_000, Value: 1e6}}
	msgs = append(msgs, s.event(win, qpsWindow(entity, farPast, 1e6)), s.event(fc, past), s.event(fc, f))
	foffs := s.send(msgs...)
	cases := append(append([]badCase(nil), windowCases...), forecastCases...)
	offs := append(append([]int64(nil), woffs[2:]...), foffs[:len(forecastCases)]...)
	s.checkDeadLetters(done, cases, offs)
	s.checkCounter(reg, "ebbflow_autoscale_bad_input_total", float64(len(cases)))
	// The good forecast after the bad ones decides: 400 req/s within the
	// horizon over 2 replicas of capacity 100 at 0.5 → 8.
	s.wait(out, "a decision from the good forecast", done, func(ms []*sarama.ConsumerMessage) bool {
		for _, m := range ms {
			if d, err := schemas.Decode[schemas.ScaleDecision](m.Value); err == nil && d.ForecastID == f.ID {
				return true
			}
		}
		return false
	})
	for _, m := range out.snapshot() {
		d, err := schemas.Decode[schemas.ScaleDecision](m.Value)
		if err != nil {
			t.Errorf("a decision does not decode: %v", err)
			continue
		}
		if d.AtMs > now || d.AtMs < now-60_000 || d.ExpiresMs > now+cfg.DecisionTTL.Milliseconds() {
			t.Errorf("decision %s stamped from a bad input: at_ms %d expires_ms %d (now %d)", d.ID, d.AtMs, d.ExpiresMs, now)
		}
		if d.ForecastID == f.ID && d.To != 8 {
			t.Errorf("decision %s from the good forecast: to %d, want 8 (%s)", d.ID, d.To, d.Reason.Summary)
		}
	}
}
