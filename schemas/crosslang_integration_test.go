//go:build integration

package schemas_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run `make test` (or deploy/dev/services.sh up && source .dev/services.env)", name)
	}
	return v
}

// TestPythonReadsOurEvents produces events to the real Kafka with sarama and
// has a stock Python client (confluent-kafka) read them back, validate the
// JSON ones with jsonschema against schemas/json, and decode the Arrow batch
// with pyarrow.
func TestPythonReadsOurEvents(t *testing.T) {
	brokers := strings.Split(mustEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	python := mustEnv(t, "EBBFLOW_TEST_PYTHON")
	topics := schemas.Topics{Prefix: fmt.Sprintf("xl%d", time.Now().UnixNano())}
	rawTopic, decTopic, winTopic := topics.Name(schemas.TopicMetricsRaw), topics.Name(schemas.TopicDecisions), topics.Name(schemas.TopicMetricsWindows)

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Compression = sarama.CompressionZSTD
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatalf("producer to %v: %v", brokers, err)
	}
	defer p.Close()

	rate := 12.5
	events := []schemas.Event{
		schemas.Window{Entity: "svc/c1/shop/web", Signal: "qps", Kind: "counter", SizeS: 60, StartMs: 0, EndMs: 60000, Count: 3, Sum: 6, Min: 1, Max: 3, Mean: 2, Last: 3, P50: 2, P95: 3, P99: 3, Rate: &rate},
		schemas.ScaleDecision{ID: "d-1", Kind: schemas.DecisionScale, Seq: 1, Target: schemas.Target{Cluster: "c1", Namespace: "shop", Kind: "Deployment", Name: "web"},
			Entity: "svc/c1/shop/web", AtMs: 60000, ExpiresMs: 120000, From: 2, To: 4, DecidedBy: "test",
			Reason: schemas.Reason{Summary: "qps rising", Formula: "ceil(1.2/0.6×2)=4", HorizonMinutes: 3,
				Demands: []schemas.SignalDemand{{Signal: "qps", Current: 1, Predicted: 1.2, Used: 1.2, ExpectRate: 0.6, Desired: 4, Source: "forecast"}}}},
	}
	for _, ev := range events {
		topic := winTopic
		if _, ok := ev.(schemas.ScaleDecision); ok {
			topic = decTopic
		}
		msg, err := kafkax.NewMessage(topic, "/ebbflow/test", ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.SendMessage(msg); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	raw, err := schemas.NewRawEncoder().Encode([]schemas.RawSample{
		{Entity: "svc/c1/shop/web", Signal: "qps", Kind: "counter", Metric: "nv_inference_request_success", Labels: []schemas.Label{{Name: "pod", Value: "web-1"}}, TimestampMs: 1000, Value: 41},
		{Entity: "svc/c1/shop/web", Signal: "qps", Kind: "counter", Metric: "nv_inference_request_success", Labels: []schemas.Label{{Name: "pod", Value: "web-2"}}, TimestampMs: 1000, Value: 0.25},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: rawTopic, Key: sarama.StringEncoder("svc/c1/shop/web"), Value: sarama.ByteEncoder(raw)}); err != nil {
		t.Fatalf("produce to %s: %v", rawTopic, err)
	}

	cmd := exec.Command(python, "testdata/consume_validate.py", strings.Join(brokers, ","), "json", rawTopic, winTopic, decTopic)
	cmd.Env = append(os.Environ(), "WANT_RECORDS=3")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python consumer: %v\n%s", err, out)
	}
	var res struct {
		Valid      []map[string]string `json:"valid"`
		Invalid    []map[string]string `json:"invalid"`
		RawRows    int                 `json:"raw_rows"`
		RawColumns []string            `json:"raw_columns"`
		RawValues  []float64           `json:"raw_values"`
		Seen       int                 `json:"seen"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if res.Seen != 3 || len(res.Valid) != 2 || len(res.Invalid) != 0 {
		t.Fatalf("python saw %d records, %d valid, invalid: %v", res.Seen, len(res.Valid), res.Invalid)
	}
	types := map[string]string{}
	for _, v := range res.Valid {
		types[v["ce_type"]] = v["key"]
	}
	if types["io.ebbflow.decision.scale.v1"] != "c1/shop/Deployment/web" || types["io.ebbflow.window.v1"] != "svc/c1/shop/web" {
		t.Errorf("python routed by ce_type and key: %v", types)
	}
	if res.RawRows != 2 || len(res.RawValues) != 2 || res.RawValues[0] != 41 || res.RawValues[1] != 0.25 {
		t.Errorf("pyarrow decoded %d rows, values %v", res.RawRows, res.RawValues)
	}
	if strings.Join(res.RawColumns, ",") != "entity,signal,kind,metric,labels,ts,value" {
		t.Errorf("pyarrow columns %v", res.RawColumns)
	}
}
