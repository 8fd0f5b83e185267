package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func benchDecision(name string, from, to int32, atMs int64) schemas.ScaleDecision {
	t := schemas.Target{Cluster: "c1", Namespace: "team-0", Kind: "Deployment", Name: name}
	return schemas.ScaleDecision{ID: "scale/" + t.Key() + "/1", Kind: schemas.DecisionScale, Seq: atMs, Target: t,
		Entity: schemas.ServiceEntity("c1", "team-0", name), AtMs: atMs, ExpiresMs: atMs + 60000, From: from, To: to,
		DryRun: true, Reason: schemas.Reason{Summary: "test", Formula: "ceil(x)", Guard: "max_step", HorizonMinutes: 4, Demands: []schemas.SignalDemand{}}, DecidedBy: "test"}
}

// bench decisions counts what a decisions topic holds, and, following the
// topics live, times each decision from the arrival of its window.
func TestBenchDecisions(t *testing.T) {
	emb, err := kafkax.StartEmbedded(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kc := kafkax.DefaultConfig()
	kc.Brokers = emb.Addrs()
	kc.Partitions = 2
	decTopic, winTopic := "dec-test", "win-test"
	if err := kafkax.EnsureTopics(context.Background(), kc, decTopic, winTopic); err != nil {
		t.Fatal(err)
	}
	sc, _ := kc.Sarama()
	sc.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	send := func(topic string, ev schemas.Event) {
		t.Helper()
		m, err := kafkax.NewMessage(topic, "test", ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := prod.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	const atMs = 1_700_000_040_000
	send(decTopic, benchDecision("a", 4, 5, atMs))
	send(decTopic, benchDecision("b", 8, 6, atMs))
	send(decTopic, benchDecision("a", 5, 6, atMs+60000))

	cmd := newBenchCmd(nil)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"decisions", "--brokers", strings.Join(kc.Brokers, ","), "--topic", decTopic, "--idle", "2s"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"topic=dec-test decisions=3 up=2 down=1 targets=2 not_decisions=0", "guards: max_step=3", "decision c1/team-0/Deployment/a 4→5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench decisions output lacks %q:\n%s", want, out.String())
		}
	}

	// Following: a window of entity a closes, the decision on it comes
	// later; the follower times the gap from the records' arrival.
	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ready, windowsSeen := make(chan struct{}), make(chan struct{})
	w := newDecisionWatch(decTopic)
	done := make(chan error, 1)
	go func() {
		done <- followTopics(ctx, client, []string{decTopic, winTopic}, func() { close(ready) }, func(m *sarama.ConsumerMessage, at time.Time) {
			w.observe(m, at)
			if len(w.closed) == 2 && m.Topic == winTopic {
				select {
				case <-windowsSeen:
				default:
					close(windowsSeen)
				}
			}
			if len(w.decs) == 1 && len(w.closed) == 2 {
				cancel()
			}
		})
	}()
	<-ready
	rate := 2.5
	win := schemas.Window{Entity: schemas.ServiceEntity("c1", "team-0", "a"), Signal: "cpu", Kind: schemas.KindCounter, SizeS: 60,
		StartMs: atMs + 60000, EndMs: atMs + 120000, Count: 4, Rate: &rate}
	send(winTopic, win)
	send(winTopic, win) // a second record of the same window: its close is the first
	other := win
	other.Entity = schemas.ServiceEntity("c1", "team-0", "b")
	send(winTopic, other)
	select { // the decision comes after its window closed
	case <-windowsSeen:
	case <-ctx.Done():
		t.Fatalf("follower saw %d windows within 60 s", len(w.closed))
	}
	sent := time.Now()
	send(decTopic, benchDecision("a", 6, 7, atMs+120000))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != context.Canceled {
		t.Fatalf("follower saw %d decisions and %d windows within 60 s", len(w.decs), len(w.closed))
	}
	out.Reset()
	w.print(&out, 0, true)
	for _, want := range []string{"decisions=1 up=1 down=0 targets=1", "window_close_to_decision_s n=1 ", "(decisions matched to their window: 1 of 1)", "window_end_to_decision_s n=1 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("followed output lacks %q:\n%s", want, out.String())
		}
	}
	var d float64
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "window_close_to_decision_s") {
			if _, err := fmt.Sscanf(l, "window_close_to_decision_s n=1 p50=%f", &d); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
		}
	}
	if d < 0 || d > time.Since(sent).Seconds()+1 {
		t.Errorf("window close to decision %.3f s: want from 0 to the time since the window was seen", d)
	}
}
