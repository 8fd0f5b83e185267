package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// rawKey identifies a published sample exactly (value bits included).
func rawKey(s schemas.RawSample) string {
	return fmt.Sprintf("%s|%s|%s|%s|%v|%d|%x", s.Entity, s.Signal, s.Kind, s.Metric, s.Labels, s.TimestampMs, math.Float64bits(s.Value))
}

// consumeRaw reads every partition of topic from the start until stop
// says it has enough or the deadline passes, checking keys on the way.
func consumeRaw(t *testing.T, brokers []string, topic string, stop func([]schemas.RawSample) bool) []schemas.RawSample {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	c, err := sarama.NewConsumer(brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				msgs <- m
			}
		}()
	}
	var out []schemas.RawSample
	deadline := time.After(3 * time.Minute)
	for !stop(out) {
		select {
		case m := <-msgs:
			n := len(out)
			out, err = schemas.DecodeRaw(out, m.Value)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", m.Partition, m.Offset, err)
			}
			// A record keyed by entity holds that entity only; a record
			// without a key holds the entities of its partition.
			for _, s := range out[n:] {
				if m.Key != nil && s.Entity != string(m.Key) {
					t.Fatalf("record key %q holds a sample of entity %q", m.Key, s.Entity)
				}
				if p := entityPartition(s.Entity, int32(len(parts))); p != m.Partition {
					t.Fatalf("partition %d offset %d holds a sample of entity %q, which belongs to partition %d", m.Partition, m.Offset, s.Entity, p)
				}
			}
		case <-deadline:
			t.Fatalf("gave up waiting; have %d samples", len(out))
		}
	}
	return out
}

// TestRunEndToEndKfake runs ingest against the embedded Kafka: a
// remote_write request is acknowledged only once its samples are in the
// topic, and they come back bit-exact; a static target is scraped too.
func TestRunEndToEndKfake(t *testing.T) {
	kc := kafkax.DefaultConfig()
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	emb, err := kafkax.StartEmbedded(0, 4, topic, kc.Topics().Name(DigestsTopicBase))
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kc.Brokers = emb.Addrs()
	kc.CreateTopics = false

	triton := readFixture(t, "triton.txt")
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, triton)
	}))
	defer target.Close()

	cfg := DefaultConfig()
	cfg.RemoteWrite.Listen = "127.0.0.1:0"
	cfg.Scrape.Interval, cfg.Scrape.Timeout = 200*time.Millisecond, 150*time.Millisecond
	cfg.Scrape.Static = []StaticTarget{{URL: target.URL + "/metrics", Labels: map[string]string{"namespace": "prod", "deployment": "resnet"}}}
	reg := prometheus.NewRegistry()
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Deps{Kafka: kc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg,
			Cluster: "c1", OnListen: func(a string) { addr <- a }})
	}()
	url := "http://" + <-addr + cfg.RemoteWrite.Path

	series := genSeries(300, 15, 1_700_000_000_000)
	series[0].Samples = append(series[0].Samples, Sample{TimestampMs: 1_700_000_015_000, Value: math.Float64frombits(schemas.StaleNaN)})
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 { // no Content-Encoding
		t.Errorf("request without Content-Encoding: %d, want 415", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", url, bytes.NewReader(snappyBody(AppendWriteRequestV1(nil, series))))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("remote_write: %d, want 204", resp.StatusCode)
	}

	// What the request should have produced, mapped independently.
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	b := NewBatch()
	for _, s := range series {
		mp.Map(b, s.Labels, s.Samples)
	}
	want := map[string]bool{}
	for _, g := range b.Groups {
		for _, s := range g.Samples {
			want[rawKey(s)] = true
		}
	}
	// Acknowledged means already in Kafka: the published counter covers
	// the request before we read anything.
	if got := gatheredCounter(t, reg, "ebbflow_ingest_samples_published_total"); got < float64(len(want)) {
		t.Errorf("samples_published_total = %v right after the 204, want ≥ %d", got, len(want))
	}
	got := consumeRaw(t, kc.Brokers, topic, func(have []schemas.RawSample) bool {
		n, scraped := 0, false
		for _, s := range have {
			if want[rawKey(s)] {
				n++
			}
			if s.Metric == "nv_inference_request_success" && s.Entity == "svc/c1/prod/resnet" {
				scraped = true
			}
		}
		return n >= len(want) && scraped
	})
	seen := map[string]int{}
	for _, s := range got {
		seen[rawKey(s)]++
	}
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("sample %s in the topic %d times, want once", k, seen[k])
		}
	}
	if !slices.ContainsFunc(got, func(s schemas.RawSample) bool { return schemas.IsStale(s.Value) }) {
		t.Error("stale marker did not survive")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// gatheredCounter returns the value of a registered counter.
func gatheredCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
