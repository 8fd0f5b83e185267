//go:build integration

package actuators

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

const signedType = "io.ebbflow.test.signed.v1"

// recorder is a stand-in handler (the framework knows no kind): the body
// is the decision id; Apply records it.
type recorder struct {
	mu      sync.Mutex
	applied []string
}

func (r *recorder) Decode(b []byte) (Decision, error) {
	id := string(b)
	return Decision{Kind: schemas.DecisionScale, ID: id, Seq: 1,
		Target: schemas.Target{Cluster: "c1", Namespace: "prod", Kind: "Deployment", Name: id}}, nil
}

func (r *recorder) Apply(_ context.Context, d Decision) (schemas.Action, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, d.ID)
	return schemas.Action{Outcome: schemas.OutcomeApplied, Reason: "recorded"}, nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.applied...)
}

func decisionMsg(topic, id string) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(id), Value: sarama.ByteEncoder(id),
		Headers: []sarama.RecordHeader{{Key: []byte(schemas.HeaderType), Value: []byte(signedType)}, {Key: []byte(schemas.HeaderID), Value: []byte(id)}}}
}

// TestForgedDecisionsDeadLetteredOnRealKafka writes, on the real broker,
// genuine decisions signed by the deciders' path (the producer
// interceptor) around forged ones: unsigned, signed by an untrusted key,
// a genuine signature over a changed body, a signature an hour old, and a
// byte-for-byte copy of a genuine record. The actuator acts on the genuine
// ones only; each other lands in the dead letter with its reason, and
// ebbflow_actuate_rejected_decisions_total counts it.
func TestForgedDecisionsDeadLetteredOnRealKafka(t *testing.T) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		t.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)")
	}
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.TopicPrefix = fmt.Sprintf("sig-it-%d", time.Now().UnixNano())
	kc.Partitions = 1
	topics := kc.Topics()
	in, out, dead := topics.Name(schemas.TopicDecisions), topics.Name(schemas.TopicActions), topics.Name(schemas.TopicDeadLetter)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kafkax.EnsureTopics(ctx, kc, in, out, dead); err != nil {
		t.Fatal(err)
	}

	pub, priv, _ := decisionsig.GenerateKey()
	_, rogue, _ := decisionsig.GenerateKey()
	signer := decisionsig.NewSigner(priv, nil)
	verifier := decisionsig.NewVerifier(map[string]ed25519.PublicKey{decisionsig.KeyID(pub): pub}, true, 15*time.Minute, time.Minute, nil)

	// The deciders' producer: kafkax.Config with the signer installed.
	dk := kc
	dk.Interceptors = []sarama.ProducerInterceptor{signer.Interceptor(in)}
	sc, err := dk.IdempotentProducer()
	if err != nil {
		t.Fatal(err)
	}
	decider, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer decider.Close()
	// The attacker's producer: plain, no interceptor.
	asc, _ := kc.IdempotentProducer()
	attacker, err := sarama.NewSyncProducer(kc.Brokers, asc)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	send := func(p sarama.SyncProducer, m *sarama.ProducerMessage) {
		t.Helper()
		if _, _, err := p.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}

	// genuine-1, then the forgeries, then genuine-2.
	g1 := decisionMsg(in, "genuine-1")
	send(decider, g1) // the interceptor added the signature headers to g1
	send(attacker, decisionMsg(in, "unsigned"))
	forged := decisionMsg(in, "forged")
	decisionsig.NewSigner(rogue, nil).SignMessage(forged)
	send(attacker, forged)
	tampered := decisionMsg(in, "tampered")
	signer.SignMessage(tampered)
	tampered.Value = sarama.ByteEncoder("tampered-to-100")
	send(attacker, tampered)
	stale := decisionMsg(in, "stale")
	decisionsig.NewSigner(priv, func() time.Time { return time.Now().Add(-time.Hour) }).SignMessage(stale)
	send(attacker, stale)
	replay := decisionMsg(in, "genuine-1")
	replay.Headers = append([]sarama.RecordHeader(nil), g1.Headers...)
	send(attacker, replay)
	send(decider, decisionMsg(in, "genuine-2"))

	rec := &recorder{}
	reg := NewRegistry()
	reg.Register(signedType, rec)
	cfg := DefaultConfig()
	cfg.InitialOffset = "oldest"
	cfg.Events = false
	cfg.LeaderElection.Enabled = false
	cfg.ConsumerGroup = kc.TopicPrefix + "-actuate"
	promReg := prometheus.NewRegistry()
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() {
		runErr <- Run(runCtx, cfg, Deps{Kafka: kc, Cluster: "c1", Kube: fake.NewClientset(), Handlers: reg,
			Verifier: verifier, Log: quiet, Registerer: promReg})
	}()
	defer func() {
		stop()
		if err := <-runErr; err != nil {
			t.Errorf("actuator: %v", err)
		}
	}()

	// Read both output topics until the two actions and five dead letters are there.
	csc, _ := kc.Sarama()
	cons, err := sarama.NewConsumer(kc.Brokers, csc)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	read := func(topic string, n int) []*sarama.ConsumerMessage {
		t.Helper()
		pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var got []*sarama.ConsumerMessage
		for len(got) < n {
			select {
			case m := <-pc.Messages():
				got = append(got, m)
			case <-ctx.Done():
				t.Fatalf("%s: read %d of %d records before the deadline (applied so far: %v)", topic, len(got), n, rec.ids())
			}
		}
		return got
	}
	dls := read(dead, 5)
	want := map[string]decisionsig.Reason{"unsigned": decisionsig.ReasonUnsigned, "forged": decisionsig.ReasonUnknownKey,
		"tampered": decisionsig.ReasonBadSignature, "stale": decisionsig.ReasonOutsideWindow, "genuine-1": decisionsig.ReasonReplayed}
	for _, m := range dls {
		dl, err := schemas.Decode[schemas.DeadLetter](m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := want[dl.Key]; !ok || string(r) != dl.Reason || !strings.Contains(dl.Error, string(r)) {
			t.Errorf("dead letter for %q: reason %q (%s); want %q", dl.Key, dl.Reason, dl.Error, r)
		}
		delete(want, dl.Key)
		t.Logf("dead letter %s: %s: %s", dl.Key, dl.Reason, dl.Error)
	}
	if len(want) > 0 {
		t.Errorf("not dead-lettered: %v", want)
	}
	acts := read(out, 2)
	for i, id := range []string{"genuine-1", "genuine-2"} {
		a, err := schemas.Decode[schemas.Action](acts[i].Value)
		if err != nil {
			t.Fatal(err)
		}
		if a.DecisionID != id || a.Outcome != schemas.OutcomeApplied {
			t.Errorf("action %d: decision %s %s, want %s applied", i, a.DecisionID, a.Outcome, id)
		}
	}
	if got := rec.ids(); strings.Join(got, ",") != "genuine-1,genuine-2" {
		t.Errorf("handler applied %v, want exactly genuine-1, genuine-2", got)
	}
	if n, err := testutil.GatherAndCount(promReg, "ebbflow_actuate_rejected_decisions_total"); err != nil || n != len(decisionsig.Reasons) {
		t.Fatalf("rejected-decisions series: %d, %v; want one per reason", n, err)
	}
	for _, r := range decisionsig.Reasons {
		wantN := 1.0
		if r == decisionsig.ReasonMalformed {
			wantN = 0
		}
		got := counterValue(t, promReg, "ebbflow_actuate_rejected_decisions_total", "reason", string(r))
		if got != wantN {
			t.Errorf("ebbflow_actuate_rejected_decisions_total{reason=%q} = %v, want %v", r, got, wantN)
		}
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
