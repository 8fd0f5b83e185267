//go:build integration

package badinput_test

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/ingest/window"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestBadInputWindowProcessor: metrics.raw records that are not Arrow, too
// big, truncated or of another Arrow schema, and samples that are NaN,
// infinite, malformed, far in the past (late) or far in the future, go to
// the dead letter with the reason and a count. The bad samples sit in the
// windows of the good ones: the windows emitted from the good samples
// before and after them hold exactly the good samples (count and sum), so
// nothing bad was aggregated and the far-future sample did not move the
// watermark (which would have made every later good sample late).
func TestBadInputWindowProcessor(t *testing.T) {
	s := newSweep(t, "win")
	cfg := window.DefaultConfig()
	cfg.Group = s.kc.TopicPrefix + "-window"
	cfg.History = false
	cfg.IdleTimeout = 0
	cfg.CommitInterval = 200 * time.Millisecond
	reg := prometheus.NewRegistry()
	out := s.collect(schemas.TopicMetricsWindows)
	done := s.run("window.Run", func(ctx context.Context) error {
		return window.Run(ctx, cfg, window.Deps{Kafka: s.kc, Registerer: reg, Logger: quiet(), Source: "/test/window"})
	})

	const entity = "svc/c/ns/web"
	base := time.Now().Truncate(time.Minute).Add(-10 * time.Minute).UnixMilli()
	sample := func(at int64, v float64) schemas.RawSample {
		return schemas.RawSample{Entity: entity, Signal: schemas.SignalCPU, Kind: schemas.KindGauge, Metric: "cpu", TimestampMs: at, Value: v}
	}
	enc := schemas.NewRawEncoder()
	rec := func(ss ...schemas.RawSample) []byte {
		b, err := enc.Encode(ss)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	in := schemas.TopicMetricsRaw
	msg := func(ss ...schemas.RawSample) *sarama.ProducerMessage { return s.raw(in, entity, "", rec(ss...)) }
	with := func(at int64, f func(*schemas.RawSample)) *sarama.ProducerMessage {
		x := sample(at, 1000)
		f(&x)
		return msg(x)
	}
	valid := rec(sample(base+30_000, 1000))
	cases := []badCase{
		{"garbage", s.raw(in, entity, "", []byte("\x00\xffnot arrow")), "decode", "decode metrics.raw"},
		{"oversize", s.raw(in, entity, "", oversize(900<<10)), "decode", "decode metrics.raw"},
		{"truncated", s.raw(in, entity, "", valid[:len(valid)*2/3]), "decode", "decode metrics.raw"},
		{"another Arrow schema", s.raw(in, entity, "", otherArrow(t)), "decode", "is not"},
		{"NaN", with(base+40_000, func(x *schemas.RawSample) { x.Value = math.NaN() }), "invalid", "NaN"},
		{"infinite", with(base+40_000, func(x *schemas.RawSample) { x.Value = math.Inf(1) }), "invalid", "infinite"},
		{"empty signal", with(base+40_000, func(x *schemas.RawSample) { x.Signal = "" }), "invalid", "empty signal"},
		{"bad entity", with(base+40_000, func(x *schemas.RawSample) { x.Entity = "web" }), "invalid", "entity"},
		{"unknown kind", with(base+40_000, func(x *schemas.RawSample) { x.Kind = "histogram" }), "invalid", "histogram"},
		{"far past", with(farPast, func(*schemas.RawSample) {}), "late", "allowed lateness"},
		{"far future", with(farFuture, func(*schemas.RawSample) {}), "invalid", "max_future"},
	}
	msgs := []*sarama.ProducerMessage{msg(sample(base+5_000, 1), sample(base+20_000, 2)), msg(sample(base+35_000, 3), sample(base+50_000, 4))}
	for _, c := range cases {
		msgs = append(msgs, c.msg)
	}
	msgs = append(msgs,
		msg(sample(base+65_000, 10), sample(base+80_000, 20)), msg(sample(base+95_000, 30), sample(base+110_000, 40)),
		// Closes both windows (watermark = 295 s > 120 s + lateness 60 s).
		msg(sample(base+300_000, 5)))
	offs := s.send(msgs...)
	s.checkDeadLetters(done, cases, offs[2:2+len(cases)])
	s.checkCounter(reg, "ebbflow_window_deadletters_total", float64(len(cases)))
	want := map[int64]float64{base: 1 + 2 + 3 + 4, base + 60_000: 10 + 20 + 30 + 40}
	s.wait(out, "the windows of the good samples before and after the bad ones", done, func(ms []*sarama.ConsumerMessage) bool {
		n := 0
		for _, m := range ms {
			if w, err := schemas.Decode[schemas.Window](m.Value); err == nil && w.Entity == entity {
				if _, ok := want[w.StartMs]; ok {
					n++
				}
			}
		}
		return n >= len(want)
	})
	for _, m := range out.snapshot() {
		w, err := schemas.Decode[schemas.Window](m.Value)
		if err != nil {
			t.Errorf("an emitted window does not decode: %v", err)
			continue
		}
		sum, ok := want[w.StartMs]
		if !ok {
			t.Errorf("a window from bad samples: %s", m.Value)
			continue
		}
		if w.Count != 4 || w.Sum != sum || w.Revision != 0 {
			t.Errorf("window at %d: count %d sum %v revision %d, want 4 good samples summing to %v", w.StartMs, w.Count, w.Sum, w.Revision, sum)
		}
	}
}

// otherArrow is a well-formed Arrow IPC stream of another schema.
func otherArrow(t *testing.T) []byte {
	t.Helper()
	sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	rec := b.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sch))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
