package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// bigSeries returns n series of one pod (one entity, one record stream)
// whose label zz_big is pad random (incompressible) bytes long, so
// records grow with pad even after the producer's compression.
func bigSeries(n, pad int) []Series {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]Series, n)
	for i := range out {
		b := make([]byte, pad)
		for j := range b {
			b[j] = 'a' + byte(rng.IntN(26))
		}
		big := string(b)
		out[i] = Series{Labels: []schemas.Label{
			{Name: "__name__", Value: "container_cpu_usage_seconds_total"},
			{Name: "container", Value: "triton"},
			{Name: "namespace", Value: "team-1"},
			{Name: "pod", Value: "svc1-7d9f8c6b5d-x2k01"},
			{Name: "zz_big", Value: big},
			{Name: "zz_id", Value: fmt.Sprint(i)},
		}, Samples: []Sample{{TimestampMs: 1_700_000_000_000, Value: float64(i)}}}
	}
	return out
}

// tooLargeReceiver returns a receiver publishing transactionally to a kfake
// broker whose message.max.bytes is brokerMax, with ingest's own
// publish.max_message_bytes ingestMax.
func tooLargeReceiver(t *testing.T, brokerMax, ingestMax int) (*Receiver, *Metrics) {
	t.Helper()
	kc := kafkax.DefaultConfig()
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(brokerMax)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kc.Brokers = c.ListenAddrs()
	cfg := DefaultConfig()
	cfg.Publish.MaxMessageBytes = ingestMax
	cfg.Publish.Retries = 1
	cfg.Publish.TransactionalID = fmt.Sprintf("toolarge-%d", time.Now().UnixNano())
	newProd := func() (sarama.AsyncProducer, error) { return NewProducer(kc, cfg.Publish) }
	prod, err := newProd()
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(nil)
	pub := NewPublisher(prod, topic, cfg.Publish, m, quietLog(), newProd)
	t.Cleanup(func() { _ = pub.Close() })
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	return NewReceiver(mp, pub, cfg.RemoteWrite, m, quietLog(), nil), m
}

func postSeries(t *testing.T, rc *Receiver, ss []Series) *httptest.ResponseRecorder {
	t.Helper()
	body := snappyBody(AppendWriteRequestV1(nil, ss))
	req := httptest.NewRequestWithContext(context.Background(), "POST", "/api/v1/write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	return rec
}

// An entity whose samples exceed publish.max_message_bytes is split into
// records under it: acknowledged, every sample written, nothing refused.
func TestOversizedEntitySplitAcrossRecords(t *testing.T) {
	const max = 64 << 10
	rc, m := tooLargeReceiver(t, max+1024, max)
	ss := bigSeries(400, 2000) // ~800 KB of labels for one entity
	rec := postSeries(t, rc, ss)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(m.SamplesPublished); got != float64(len(ss)) {
		t.Errorf("samples published = %v, want %d", got, len(ss))
	}
	if got := testutil.ToFloat64(m.RecordsPublished); got < 800_000/max {
		t.Errorf("records published = %v, want at least %d (split under %d bytes)", got, 800_000/max, max)
	}
	if got := testutil.CollectAndCount(m.RejectedRequests); got != 0 {
		t.Errorf("rejected request series = %d, want none", got)
	}
}

// A single sample whose record alone exceeds publish.max_message_bytes
// can never be written: 413 naming the limit (not 503, which Prometheus
// retries forever), counted as record_too_large.
func TestSampleOverMaxMessageBytesIs413(t *testing.T) {
	const max = 16 << 10
	rc, m := tooLargeReceiver(t, 1<<20, max)
	rec := postSeries(t, rc, bigSeries(3, 40_000))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "publish.max_message_bytes") || !strings.Contains(rec.Body.String(), fmt.Sprint(max)) {
		t.Errorf("reason %q does not name publish.max_message_bytes %d", rec.Body, max)
	}
	if got := testutil.ToFloat64(m.RejectedRequests.WithLabelValues(RejectRecordTooLarge)); got != 1 {
		t.Errorf("rejected_requests_total{reason=record_too_large} = %v, want 1", got)
	}
	// A normal request after it is still written.
	if rec := postSeries(t, rc, bigSeries(10, 10)); rec.Code != http.StatusNoContent {
		t.Errorf("small request after the refused one: status %d: %s", rec.Code, rec.Body)
	}
}

// When the broker's message.max.bytes is below publish.max_message_bytes
// (misconfiguration), its MESSAGE_TOO_LARGE is answered 413 with the
// setting to change, never 503.
func TestBrokerMessageTooLargeIs413(t *testing.T) {
	rc, m := tooLargeReceiver(t, 32<<10, 1<<20)
	rec := postSeries(t, rc, bigSeries(200, 2000)) // one ~400 KB record
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "message.max.bytes") {
		t.Errorf("reason %q does not name message.max.bytes", rec.Body)
	}
	if got := testutil.ToFloat64(m.RejectedRequests.WithLabelValues(RejectBrokerTooLarge)); got != 1 {
		t.Errorf("rejected_requests_total{reason=broker_too_large} = %v, want 1", got)
	}
}
