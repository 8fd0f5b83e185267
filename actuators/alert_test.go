package actuators

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/IBM/sarama/mocks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestFailedActionIsActionAndAlert: a decision that fails (its target does
// not exist) is published as a failed action and as a critical alert on
// ebbflow.alerts.critical.action_failed.
func TestFailedActionIsActionAndAlert(t *testing.T) {
	srv, err := natsbus.StartEmbedded(-1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, js, time.Hour); err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync(schemas.AlertSubject(schemas.SeverityCritical, schemas.AlertActionFailed))
	if err != nil {
		t.Fatal(err)
	}

	reg := NewRegistry()
	reg.Register(missingType, missingTarget{})
	a, err := NewActuator(DefaultConfig(), "c1", "test-actuator", fake.NewClientset(), reg, nil, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	var produced *sarama.ProducerMessage
	prod := mocks.NewSyncProducer(t, nil)
	prod.ExpectSendMessageWithMessageCheckerFunctionAndSucceed(func(m *sarama.ProducerMessage) error { produced = m; return nil })
	h := &claimHandler{act: a, prod: prod, js: js, log: quiet, actions: "ebbflow.actions.v1", deadletter: "ebbflow.deadletter.v1", source: "/test"}
	d := struct{ ID string }{ID: "web"}
	err = h.handle(ctx, &sarama.ConsumerMessage{Topic: "ebbflow.decisions.v1", Value: []byte(d.ID),
		Headers: []*sarama.RecordHeader{{Key: []byte(schemas.HeaderType), Value: []byte(missingType)}}})
	if err != nil {
		t.Fatal(err)
	}
	if produced == nil || produced.Topic != "ebbflow.actions.v1" {
		t.Fatalf("no action produced: %+v", produced)
	}
	v, _ := produced.Value.Encode()
	act, err := schemas.Decode[schemas.Action](v)
	if err != nil || act.Outcome != schemas.OutcomeFailed || act.DecisionID != d.ID {
		t.Fatalf("action %+v %v", act, err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no alert: %v", err)
	}
	var al schemas.Alert
	if err := json.Unmarshal(msg.Data, &al); err != nil || al.DecisionID != d.ID || al.Severity != schemas.SeverityCritical || al.Target == nil {
		t.Fatalf("alert %s (%v)", msg.Data, err)
	}
	if err := prod.Close(); err != nil {
		t.Fatal(err)
	}
}
