package window

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// produceRaw publishes records to metrics.raw keyed by entity, in order.
func produceRaw(t testing.TB, kc kafkax.Config, recs [][]schemas.RawSample, extra ...[]byte) {
	t.Helper()
	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	enc := schemas.NewRawEncoder()
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	var msgs []*sarama.ProducerMessage
	for _, r := range recs {
		b, err := enc.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r[0].Entity), Value: sarama.ByteEncoder(b)})
	}
	for _, b := range extra {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("svc/c/n/a"), Value: sarama.ByteEncoder(b)})
	}
	for i := 0; i < len(msgs); i += 500 {
		if err := p.SendMessages(msgs[i:min(i+500, len(msgs))]); err != nil {
			t.Fatal(err)
		}
	}
}

// readTopic reads a topic read_committed from the start until want records
// arrived or the deadline passed.
func readTopic(t testing.TB, kc kafkax.Config, base string, want int, timeout time.Duration) []*sarama.ConsumerMessage {
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
	topic := kc.Topics().Name(base)
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *sarama.ConsumerMessage, 1024)
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				out <- m
			}
		}()
	}
	var got []*sarama.ConsumerMessage
	deadline := time.After(timeout)
	for len(got) < want {
		select {
		case m := <-out:
			got = append(got, m)
		case <-deadline:
			return got
		}
	}
	// Anything more (a duplicate) shows up within a short grace period.
	grace := time.After(500 * time.Millisecond)
	for {
		select {
		case m := <-out:
			got = append(got, m)
		case <-grace:
			return got
		}
	}
}

func decodeWindows(t testing.TB, msgs []*sarama.ConsumerMessage) []schemas.Window {
	t.Helper()
	var ws []schemas.Window
	for _, m := range msgs {
		w, err := schemas.Decode[schemas.Window](m.Value)
		if err != nil {
			t.Fatalf("metrics.windows record at %d/%d: %v", m.Partition, m.Offset, err)
		}
		if kafkax.HeaderValue(m.Headers, schemas.HeaderID) != w.EventID() {
			t.Fatalf("ce_id %q is not the window id %q", kafkax.HeaderValue(m.Headers, schemas.HeaderID), w.EventID())
		}
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool {
		return lessWindow(&ws[i], &ws[j]) || (!lessWindow(&ws[j], &ws[i]) && ws[i].Revision < ws[j].Revision)
	})
	return ws
}

// expected runs the engine over each entity's records in order (what one
// partition sees of them) and returns the final revision of every window.
func expected(t testing.TB, set Settings, recs [][]schemas.RawSample) map[wkey]schemas.Window {
	t.Helper()
	byEntity := map[string][][]schemas.RawSample{}
	var order []string
	for _, r := range recs {
		if _, ok := byEntity[r[0].Entity]; !ok {
			order = append(order, r[0].Entity)
		}
		byEntity[r[0].Entity] = append(byEntity[r[0].Entity], r)
	}
	out := map[wkey]schemas.Window{}
	for _, ent := range order {
		e := mustEngine(t, set)
		for i, r := range byEntity[ent] {
			e.record(int64(i), r)
		}
		e.st.idleAdvance(1 << 40) // close everything
		ws, _, _, _ := e.flush()
		for _, w := range ws {
			out[wkey{w.Entity, w.Signal, w.SizeS * 1000, w.StartMs}] = w
		}
	}
	return out
}

// simpleStream is in order within each series (so per-entity processing
// order does not depend on how entities share partitions) with jitter
// across pods below the delay, and counter resets.
func simpleStream(entities, steps int) [][]schemas.RawSample {
	var recs [][]schemas.RawSample
	for i := 0; i < steps; i++ {
		for e := 0; e < entities; e++ {
			ent := fmt.Sprintf("svc/c1/ns/app%d", e)
			ts := t0 + int64(i)*15_000
			var rec []schemas.RawSample
			for p := 0; p < 2; p++ {
				pod := fmt.Sprintf("app%d-%d", e, p)
				v := float64((i*(7+e+p))%1000) + float64(i*3)
				if (i+p)%37 == 36 {
					v = 1 // counter reset
				}
				rec = append(rec, counter(ent, pod, ts+int64(p)*700, v), gauge(ent, pod, ts+int64(p)*700, float64((i*13+e*7+p)%97)))
			}
			recs = append(recs, rec)
		}
	}
	return recs
}

func TestRunOnEmbeddedKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Kafka")
	}
	kc := kafkax.DefaultConfig()
	kc.TopicPrefix = "wtest"
	emb, err := kafkax.StartEmbedded(0, 2, kc.Topics().All()...)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kc.Brokers = emb.Addrs()
	kc.Partitions = 2

	recs := simpleStream(4, 40) // 10 minutes, 4 services
	produceRaw(t, kc, recs, []byte("not arrow"))

	cfg := DefaultConfig()
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.IdleTimeout = time.Hour // the stream's end closes windows only via the idle advance below
	cfg.MaxBatchRecords = 16
	root := t.TempDir()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Deps{Kafka: kc, History: history.LocalFS{}, HistoryRoot: root, Registerer: reg,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	}()
	want := expected(t, cfg.Settings(), recs)
	// The last window of each series stays open (no later data); count only closed ones.
	closed := 0
	lastStart := t0 + 39*15_000 - (t0+39*15_000)%60_000
	for k := range want {
		if k.start+k.size+cfg.Delay.Milliseconds() <= lastStart+60_000 && k.start < lastStart {
			closed++
		}
	}
	msgs := readTopic(t, kc, schemas.TopicMetricsWindows, closed, 60*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := decodeWindows(t, msgs)
	if len(got) != closed {
		t.Fatalf("got %d windows on metrics.windows, want %d", len(got), closed)
	}
	seen := map[string]bool{}
	for _, w := range got {
		if seen[w.EventID()] {
			t.Fatalf("window %s twice", w.EventID())
		}
		seen[w.EventID()] = true
		x, ok := want[wkey{w.Entity, w.Signal, w.SizeS * 1000, w.StartMs}]
		if !ok {
			t.Fatalf("unexpected window %s", w.EventID())
		}
		if fmt.Sprint(x) != fmt.Sprint(w) && !sameValues(x, w) {
			t.Fatalf("window %s:\n got %+v\nwant %+v", w.EventID(), w, x)
		}
	}
	// History holds the same windows.
	hist, err := history.ReadWindows(context.Background(), history.LocalFS{}, root, history.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(got) {
		t.Fatalf("history has %d windows, topic %d", len(hist), len(got))
	}
	for i := range hist {
		if !sameValues(hist[i], got[i]) {
			t.Fatalf("history window %d differs:\n got %+v\nwant %+v", i, hist[i], got[i])
		}
	}
	dl := readTopic(t, kc, schemas.TopicDeadLetter, 1, 10*time.Second)
	if len(dl) != 1 {
		t.Fatalf("want one dead letter for the undecodable record, got %d", len(dl))
	}
	d, err := schemas.Decode[schemas.DeadLetter](dl[0].Value)
	if err != nil || d.Reason != "decode" || string(d.Payload) != "not arrow" {
		t.Fatalf("dead letter %+v, %v", d, err)
	}
	if v := counterValue(reg, "ebbflow_window_decode_errors_total"); v != 1 {
		t.Fatalf("decode errors metric %v, want 1", v)
	}
}

func sameValues(a, b schemas.Window) bool {
	ra, rb := -1.0, -1.0
	if a.Rate != nil {
		ra = *a.Rate
	}
	if b.Rate != nil {
		rb = *b.Rate
	}
	a.Rate, b.Rate = nil, nil
	return a == b && ra == rb
}

// counterValue sums the samples of a counter family in reg.
func counterValue(reg *prometheus.Registry, name string) float64 {
	v, _ := telemetry.CounterValue(reg, name)
	return v
}

// lessWindow orders windows as the processor emits them (cmpKey).
func lessWindow(a, b *schemas.Window) bool { return schemas.CompareWindows(a, b) < 0 }
