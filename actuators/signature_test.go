package actuators

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/IBM/sarama/mocks"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestUnverifiedDecisionNeverReachesAHandler: with a verifier, a record
// that fails it is dead-lettered with the signature reason and counted,
// and the handler is not called; a signed one is handled.
func TestUnverifiedDecisionNeverReachesAHandler(t *testing.T) {
	pub, priv, _ := decisionsig.GenerateKey()
	signer := decisionsig.NewSigner(priv, nil)
	reg := NewRegistry()
	rec := &handled{}
	reg.Register(missingType, rec)
	promReg := prometheus.NewRegistry()
	a, err := NewActuator(DefaultConfig(), "c1", "test-actuator", fake.NewClientset(), reg, nil, quiet, promReg)
	if err != nil {
		t.Fatal(err)
	}
	a.cfg.Events = false
	a.verifier = decisionsig.NewVerifier(map[string]ed25519.PublicKey{decisionsig.KeyID(pub): pub}, true, time.Hour, time.Minute, nil)
	var produced []*sarama.ProducerMessage
	prod := mocks.NewSyncProducer(t, nil)
	keep := func(m *sarama.ProducerMessage) error { produced = append(produced, m); return nil }
	prod.ExpectSendMessageWithMessageCheckerFunctionAndSucceed(keep)
	prod.ExpectSendMessageWithMessageCheckerFunctionAndSucceed(keep)
	h := &claimHandler{act: a, prod: prod, log: quiet, actions: "ebbflow.actions.v1", deadletter: "ebbflow.deadletter.v1", source: "/test"}

	msg := func(id string, sign bool, offset int64) *sarama.ConsumerMessage {
		hs := []*sarama.RecordHeader{{Key: []byte(schemas.HeaderType), Value: []byte(missingType)}, {Key: []byte(schemas.HeaderID), Value: []byte(id)}}
		if sign {
			s := signer.Sign(missingType, id, []byte(id))
			hs = append(hs, &sarama.RecordHeader{Key: []byte(decisionsig.HeaderKeyID), Value: []byte(s.KeyID)},
				&sarama.RecordHeader{Key: []byte(decisionsig.HeaderSignedAt), Value: []byte(s.SignedAt)},
				&sarama.RecordHeader{Key: []byte(decisionsig.HeaderSignature), Value: []byte(s.Value)})
		}
		return &sarama.ConsumerMessage{Topic: "ebbflow.decisions.v1", Offset: offset, Value: []byte(id), Headers: hs}
	}
	ctx := context.Background()
	if err := h.handle(ctx, msg("forged", false, 1)); err != nil {
		t.Fatal(err)
	}
	if err := h.handle(ctx, msg("genuine", true, 2)); err != nil {
		t.Fatal(err)
	}
	if len(produced) != 2 || produced[0].Topic != "ebbflow.deadletter.v1" || produced[1].Topic != "ebbflow.actions.v1" {
		t.Fatalf("produced %d records: want a dead letter then an action", len(produced))
	}
	v, _ := produced[0].Value.Encode()
	dl, err := schemas.Decode[schemas.DeadLetter](v)
	if err != nil || dl.Reason != string(decisionsig.ReasonUnsigned) || string(dl.Payload) != "forged" {
		t.Fatalf("dead letter %+v %v", dl, err)
	}
	if got := rec.ids; len(got) != 1 || got[0] != "genuine" {
		t.Fatalf("handler saw %v, want only genuine", got)
	}
	if n := testutil.ToFloat64(a.m.rejected.WithLabelValues(string(decisionsig.ReasonUnsigned))); n != 1 {
		t.Fatalf("rejected{unsigned} = %v", n)
	}
	if err := prod.Close(); err != nil {
		t.Fatal(err)
	}
}

// handled is a stand-in handler recording what it applied.
type handled struct{ ids []string }

func (h *handled) Decode(b []byte) (Decision, error) { return missingTarget{}.Decode(b) }

func (h *handled) Apply(_ context.Context, d Decision) (schemas.Action, error) {
	h.ids = append(h.ids, d.ID)
	return schemas.Action{Outcome: schemas.OutcomeApplied, Reason: "recorded"}, nil
}
