package replay

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

var t0 = time.Date(2026, 3, 1, 10, 58, 0, 0, time.UTC)

func writeHistory(t *testing.T) (string, []schemas.Window) {
	t.Helper()
	root := t.TempDir()
	var ws []schemas.Window
	for i := 0; i < 5; i++ { // 10:58 .. 11:02, across an hour partition
		for _, ent := range []string{"svc/c/n/b", "svc/c/n/a"} {
			st := t0.Add(time.Duration(i) * time.Minute).UnixMilli()
			r := float64(i)
			ws = append(ws, schemas.Window{Entity: ent, Signal: "qps", Kind: "counter", SizeS: 60, StartMs: st, EndMs: st + 60_000,
				Count: 4, Sum: 1, Min: 0, Max: 1, Mean: 0.25, Last: 1, P50: 0, P95: 1, P99: 1, Rate: &r})
		}
	}
	// A 15s window that a size filter drops.
	ws = append(ws, schemas.Window{Entity: "svc/c/n/a", Signal: "memory", Kind: "gauge", SizeS: 15, StartMs: t0.UnixMilli(), EndMs: t0.UnixMilli() + 15_000, Count: 1, Sum: 1, Min: 1, Max: 1, Mean: 1, Last: 1, P50: 1, P95: 1, P99: 1})
	if _, err := history.WriteWindows(context.Background(), history.LocalFS{}, root, ws, "part-0.parquet"); err != nil {
		t.Fatal(err)
	}
	return root, ws
}

func TestParseSpeed(t *testing.T) {
	cases := []struct {
		in   string
		want float64
		ok   bool
	}{{"max", 0, true}, {"60x", 60, true}, {"0.5x", 0.5, true}, {"60", 0, false}, {"0x", 0, false}, {"fast", 0, false}, {"-2x", 0, false},
		{"MAX", 0, true}, {" 60x ", 60, true}, {"infx", 0, false}, {"NaNx", 0, false}, {"", 0, false}, {"x", 0, false}}
	for _, c := range cases {
		got, err := ParseSpeed(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSpeed(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestReplayToKafkaInEventTimeOrder(t *testing.T) {
	root, _ := writeHistory(t)
	kc := kafkax.DefaultConfig()
	kc.TopicPrefix = "rtest"
	emb, err := kafkax.StartEmbedded(0, 1, "replayed")
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kc.Brokers = emb.Addrs()

	var slept []time.Duration
	var bar bytes.Buffer
	cfg := Config{From: t0.Add(time.Minute), To: t0.Add(4 * time.Minute), Speed: "60x", SizeS: 60, Topic: "replayed", BatchSize: 3}
	sum, err := Run(context.Background(), cfg, Deps{History: history.LocalFS{}, HistoryRoot: root, Kafka: kc, Progress: &bar,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 6 || sum.Entities != 2 || sum.Signals != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.FirstMs != t0.Add(2*time.Minute).UnixMilli() || sum.LastMs != t0.Add(4*time.Minute).UnixMilli() {
		t.Fatalf("span %d..%d", sum.FirstMs, sum.LastMs)
	}
	if !strings.Contains(sum.String(), "6 windows of 2 entities") {
		t.Fatalf("summary line %q", sum.String())
	}
	// Two later event-time steps of one minute each at 60x: about 1 s and
	// 2 s after the start (less whatever producing took).
	if len(slept) != 2 || slept[0] > time.Second || slept[1] > 2*time.Second || slept[1] <= slept[0] {
		t.Fatalf("pacing sleeps %v", slept)
	}
	if !strings.Contains(bar.String(), "6/6 windows") {
		t.Fatalf("progress bar %q", bar.String())
	}

	sc, _ := kc.Sarama()
	c, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition("replayed", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got []schemas.Window
	for len(got) < 6 {
		select {
		case m := <-pc.Messages():
			w, err := schemas.Decode[schemas.Window](m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Timestamp.Equal(time.UnixMilli(w.EndMs)) {
				t.Fatalf("record timestamp %s is not the window end %d", m.Timestamp, w.EndMs)
			}
			got = append(got, w)
		case <-time.After(2 * time.Minute):
			t.Fatalf("only %d windows arrived", len(got))
		}
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.EndMs > b.EndMs || (a.EndMs == b.EndMs && a.Entity >= b.Entity) {
			t.Fatalf("not in event-time order at %d: %s then %s", i, a.EventID(), b.EventID())
		}
	}
}

func TestReplayValidates(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Speed: "fast"}, "speed"},
		{Config{Speed: "max", From: t0, To: t0}, "to:"},
		{Config{Speed: "max", SizeS: -1}, "size"},
	}
	for _, c := range cases {
		_, err := Run(context.Background(), c.cfg, Deps{History: history.LocalFS{}, HistoryRoot: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: want error about %q, got %v", c.cfg, c.want, err)
		}
	}
	// An empty selection is not an error: it replays nothing.
	sum, err := Run(context.Background(), Config{Speed: "max"}, Deps{History: history.LocalFS{}, HistoryRoot: t.TempDir()})
	if err != nil || sum.Rows != 0 {
		t.Fatalf("empty history: %+v %v", sum, err)
	}
}
