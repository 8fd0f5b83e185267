//go:build integration

package badinput_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestBadInputForecaster: windows that are not windows, too big, violate
// the schema or lie out of range (a far-future window would make every
// later window of its entity "not newest" and stop its forecasts) go to
// the dead letter with the reason and a count; the good windows before
// and after them are forecast.
func TestBadInputForecaster(t *testing.T) {
	s := newSweep(t, "fc")
	cfg := forecast.DefaultConfig()
	cfg.Group = s.kc.TopicPrefix + "-forecast"
	cfg.ModelDir = t.TempDir() // no models: the last-value baseline
	cfg.Signals = []string{schemas.SignalQPS}
	reg := prometheus.NewRegistry()
	out := s.collect(schemas.TopicForecasts)
	done := s.run("forecast.Run", func(ctx context.Context) error {
		return forecast.Run(ctx, cfg, forecast.Deps{Kafka: s.kc, Registerer: reg, Instance: "badinput", Logger: quiet()})
	})

	const entity = "svc/c/ns/web"
	end := time.Now().Truncate(time.Minute).Add(-10 * time.Minute).UnixMilli()
	good := func(i int) *sarama.ProducerMessage {
		return s.event(schemas.TopicMetricsWindows, qpsWindow(entity, end+int64(i)*60_000, 100+float64(i)))
	}
	wt := schemas.Window{}.EventType()
	in := schemas.TopicMetricsWindows
	w := qpsWindow(entity, end+3*60_000, 1)
	future := qpsWindow(entity, farFuture, 1)
	backwards := qpsWindow(entity, end+3*60_000, 1)
	backwards.EndMs = backwards.StartMs - 60_000
	cases := []badCase{
		{"garbage", s.raw(in, entity, wt, []byte("\x00\xffnot a window{")), "schema", "not JSON"},
		{"oversize", s.raw(in, entity, wt, oversize(900<<10)), "schema", "propert"},
		{"no CloudEvents type, empty", s.raw(in, entity, "", nil), "schema", "not JSON"},
		{"count 0", s.raw(in, entity, wt, withJSON(t, w, map[string]string{"count": "0"})), "schema", "/count"},
		{"bad entity", s.raw(in, entity, wt, withJSON(t, w, map[string]string{"entity": `"web"`})), "schema", "/entity"},
		{"negative revision", s.raw(in, entity, wt, withJSON(t, w, map[string]string{"revision": "-1"})), "schema", "/revision"},
		{"NaN as a string", s.raw(in, entity, wt, withJSON(t, w, map[string]string{"sum": `"NaN"`})), "schema", "/sum"},
		{"infinite number", s.raw(in, entity, wt, withJSON(t, w, map[string]string{"sum": "1e999"})), "schema", "sum"},
		{"far future", s.eventNow(in, future), "out_of_range", "end_ms"},
		{"end before start", s.raw(in, entity, wt, withJSON(t, backwards, nil)), "out_of_range", "end_ms"},
	}
	msgs := []*sarama.ProducerMessage{good(0), good(1)}
	for _, c := range cases {
		msgs = append(msgs, c.msg)
	}
	// A far-past window is a valid window, only older than the entity's
	// newest: skipped (counted), not forecast, not a dead letter.
	msgs = append(msgs, s.event(in, qpsWindow(entity, farPast, 1)), good(2), good(3))
	offs := s.send(msgs...)
	s.checkDeadLetters(done, cases, offs[2:2+len(cases)])
	s.checkCounter(reg, "ebbflow_forecast_bad_input_total", float64(len(cases)))
	// The good windows after the bad ones are forecast: the consumer did
	// not stall, and the far-future window did not poison the entity.
	s.wait(out, "forecasts of the good windows after the bad ones", done, func(ms []*sarama.ConsumerMessage) bool {
		seen := map[int64]bool{}
		for _, m := range ms {
			if f, err := schemas.Decode[schemas.Forecast](m.Value); err == nil && f.Entity == entity {
				seen[f.OriginMs] = true
			}
		}
		return seen[end+2*60_000] && seen[end+3*60_000]
	})
	for _, m := range out.snapshot() {
		if f, err := schemas.Decode[schemas.Forecast](m.Value); err != nil || f.OriginMs > end+3*60_000 || f.OriginMs < end {
			t.Errorf("a forecast from a bad window: %s (%v)", m.Value, err)
		}
	}
}
