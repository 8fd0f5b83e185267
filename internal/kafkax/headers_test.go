package kafkax

import (
	"github.com/IBM/sarama"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

func TestHeadersAreCloudEventsBinaryMode(t *testing.T) {
	target := schemas.Target{Cluster: "c1", Namespace: "shop", Kind: "Deployment", Name: "web"}
	ev := schemas.ScaleDecision{ID: "d1", Kind: schemas.DecisionScale, Seq: 7, Target: target, Entity: "svc/c1/shop/web", AtMs: 10, ExpiresMs: 70, From: 3, To: 5, DecidedBy: "decide/0",
		Reason: schemas.Reason{Summary: "qps forecast 180/s at 3 min needs 5 replicas", Formula: "ceil(0.9/0.6×3)=5", HorizonMinutes: 3,
			Demands: []schemas.SignalDemand{{Signal: schemas.SignalQPS, Current: 0.7, Predicted: 0.9, Used: 0.9, ExpectRate: 0.6, Desired: 5, Source: "forecast"}}}}
	msg, err := NewMessage("ebbflow.decisions.v1", "/ebbflow/decide/0", ev)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range msg.Headers {
		got[string(h.Key)] = string(h.Value)
	}
	want := map[string]string{
		schemas.HeaderSpecVersion: "1.0",
		schemas.HeaderID:          "d1",
		schemas.HeaderSource:      "/ebbflow/decide/0",
		schemas.HeaderType:        "io.ebbflow.decision.scale.v1",
		schemas.HeaderTime:        time.UnixMilli(10).UTC().Format(time.RFC3339Nano),
		schemas.HeaderContentType: "application/json",
		schemas.HeaderSubject:     "c1/shop/Deployment/web",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	if k, _ := msg.Key.Encode(); string(k) != "c1/shop/Deployment/web" {
		t.Errorf("key = %q", k)
	}
}

func TestDeadLetterOneFormat(t *testing.T) {
	big := make([]byte, MaxDeadLetterPayload+10)
	msg := &sarama.ConsumerMessage{Topic: "ebbflow.forecasts.v1", Partition: 2, Offset: 41, Key: []byte("svc/c1/shop/web"), Value: big}
	pm, err := DeadLetter("ebbflow.deadletter.v1", "/ebbflow/test", msg, "schema", "bad", msg.Value)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pm.Value.Encode()
	dl, err := schemas.Decode[schemas.DeadLetter](b)
	if err != nil {
		t.Fatalf("dead letter does not decode: %v", err)
	}
	if dl.ID != "ebbflow.forecasts.v1/2/41/schema" || len(dl.Payload) != MaxDeadLetterPayload || dl.AtMs <= 0 || dl.Key != "svc/c1/shop/web" {
		t.Errorf("dead letter %s: %d payload bytes, at %d, key %q", dl.ID, len(dl.Payload), dl.AtMs, dl.Key)
	}
	if k, _ := pm.Key.Encode(); string(k) != "svc/c1/shop/web" {
		t.Errorf("key %q", k)
	}
}
