package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// --interval paces each worker to one request per interval: 3 workers at
// 300 ms for 1.4 s send about 3 × 5 requests, not as many as the receiver
// can take.
func TestBenchIngestInterval(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cmd := newBenchCmd(nil)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"ingest", "--url", srv.URL, "--series", "10", "--concurrency", "3", "--interval", "300ms", "--duration", "1400ms"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each worker sends at once, then every 300 ms: 5 per worker in 1.4 s
	// (4 or 6 with a slow start or the last tick racing the deadline).
	if got := n.Load(); got < 6 || got > 18 {
		t.Fatalf("%d requests in 1.4 s from 3 workers paced at 300 ms, want about 15 (6–18)\n%s", got, out.String())
	}
}

// bench lag counts from the committed offset, or from the "next=N" a
// window processor records in its commit metadata.
func TestBenchLag(t *testing.T) {
	emb, err := kafkax.StartEmbedded(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kc := kafkax.DefaultConfig()
	kc.Brokers = emb.Addrs()
	kc.Partitions = 2
	topic := "lag-test"
	if err := kafkax.EnsureTopics(context.Background(), kc, topic); err != nil {
		t.Fatal(err)
	}
	sc, _ := kc.Sarama()
	sc.Producer.Return.Successes = true
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ { // 10 records in each partition
		for p := int32(0); p < 2; p++ {
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	prod.Close()
	commit := func(group string, offsets map[int32]int64, meta string) {
		csc, _ := kc.Sarama()
		csc.Consumer.Offsets.AutoCommit.Enable = false
		cg, err := sarama.NewConsumerGroup(kc.Brokers, group, csc)
		if err != nil {
			t.Fatal(err)
		}
		defer cg.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := commitHandler{topic: topic, offsets: offsets, meta: meta, done: cancel}
		if err := cg.Consume(ctx, []string{topic}, h); err != nil {
			t.Fatal(err)
		}
	}
	commit("plain", map[int32]int64{0: 4, 1: 10}, "")
	commit("window", map[int32]int64{0: 2, 1: 2}, "v1;next=9;wm=5;rev=0")
	cmd := newBenchCmd(nil)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"lag", "--brokers", strings.Join(kc.Brokers, ","), "plain=" + topic, "window=" + topic, "none=" + topic})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("group=plain topic=%s partitions=2 end=20 lag=6", topic),  // 6 + 0
		fmt.Sprintf("group=window topic=%s partitions=2 end=20 lag=2", topic), // next=9 in both: 1 + 1
		fmt.Sprintf("group=none topic=%s partitions=2 end=20 lag=20", topic),  // nothing committed
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench lag output lacks %q:\n%s", want, out.String())
		}
	}
}

// commitHandler commits offsets with metadata as a group member would.
type commitHandler struct {
	topic   string
	offsets map[int32]int64
	meta    string
	done    func()
}

func (h commitHandler) Setup(s sarama.ConsumerGroupSession) error {
	for p, o := range h.offsets {
		s.MarkOffset(h.topic, p, o, h.meta)
	}
	s.Commit()
	h.done()
	return nil
}
func (h commitHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h commitHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	<-s.Context().Done()
	return nil
}

// TestBenchClean: `ebbflow bench clean P` deletes P.* and leaves the other
// topics, including one whose prefix merely starts like P.
func TestBenchClean(t *testing.T) {
	emb, err := kafkax.StartEmbedded(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kc := kafkax.DefaultConfig()
	kc.Brokers = emb.Addrs()
	kc.Partitions = 1
	if err := kafkax.EnsureTopics(context.Background(), kc, "run1.metrics.raw.v1", "run1.decisions.v1", "run10.metrics.raw.v1", "other"); err != nil {
		t.Fatal(err)
	}
	cmd := newBenchCmd(nil)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"clean", "--brokers", strings.Join(kc.Brokers, ","), "run1"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	sc, _ := kc.Sarama()
	admin, err := sarama.NewClusterAdmin(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ts, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"run1.metrics.raw.v1", "run1.decisions.v1"} {
		if _, ok := ts[gone]; ok {
			t.Errorf("%s still exists", gone)
		}
	}
	for _, kept := range []string{"run10.metrics.raw.v1", "other"} {
		if _, ok := ts[kept]; !ok {
			t.Errorf("%s was deleted", kept)
		}
	}
	if !strings.Contains(out.String(), "deleted the topics run1.*") {
		t.Errorf("output %q", out.String())
	}
}
