package wire

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func TestSigningConfigured(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	pub, priv, _ := decisionsig.GenerateKey()
	kb, _ := decisionsig.MarshalPrivateKey(priv)
	pb, _ := decisionsig.MarshalPublicKey(pub)
	keyFile, pubDir := filepath.Join(dir, "d.key"), filepath.Join(dir, "pub")
	_ = os.Mkdir(pubDir, 0o755)
	if err := os.WriteFile(keyFile, kb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pubDir, "d.pub"), pb, 0o644); err != nil {
		t.Fatal(err)
	}

	// The defaults require keys: a decider and an actuator without them refuse to start.
	e := &Env{Cfg: Default(), Log: quiet}
	if _, err := e.deciderKafka("autoscale"); err == nil || !strings.Contains(err.Error(), "signing.private_key_file") {
		t.Fatalf("decider without a key: %v", err)
	}
	if _, err := e.verifier(); err == nil || !strings.Contains(err.Error(), "signing.public_keys") {
		t.Fatalf("actuator without public keys: %v", err)
	}
	// Required off and no keys: unsigned, unverified, no error.
	e.Cfg.Signing.Required = false
	if kc, err := e.deciderKafka("autoscale"); err != nil || len(kc.Interceptors) != 0 {
		t.Fatalf("required off: %v, %d interceptors", err, len(kc.Interceptors))
	}
	if v, err := e.verifier(); err != nil || v != nil {
		t.Fatalf("required off: verifier %v, %v", v, err)
	}

	// From files: what the decider's producer sends, the actuator accepts.
	e.Cfg.Signing = decisionsig.DefaultConfig()
	e.Cfg.Signing.PrivateKeyFile, e.Cfg.Signing.PublicKeys = keyFile, pubDir
	if err := e.Cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	kc, err := e.deciderKafka("autoscale")
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.verifier()
	if err != nil {
		t.Fatal(err)
	}
	if got := v.KeyIDs(); len(got) != 1 || got[0] != decisionsig.KeyID(pub) {
		t.Fatalf("trusted keys %v", got)
	}
	if err := v.Verify(sent(t, kc)); err != nil {
		t.Fatalf("a decision from the decider's producer: %v", err)
	}

	// dev's in-process key overrides the files on both sides.
	_, devKey, _ := decisionsig.GenerateKey()
	e.SigningKey = devKey
	dkc, err := e.deciderKafka("mixing")
	if err != nil {
		t.Fatal(err)
	}
	dv, err := e.verifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := dv.Verify(sent(t, dkc)); err != nil {
		t.Fatalf("dev key: %v", err)
	}
	if err := dv.Verify(sent(t, kc)); err == nil {
		t.Fatal("dev's actuator trusted the file key too")
	}
}

// sent runs a decision message through the producer configuration's
// interceptors, as sarama does, and returns it as the actuator reads it.
func sent(t *testing.T, kc kafkax.Config) decisionsig.Record {
	t.Helper()
	sc, err := kc.IdempotentProducer()
	if err != nil {
		t.Fatal(err)
	}
	d := schemas.ScaleDecision{ID: "d1"}
	m := &sarama.ProducerMessage{Topic: kc.Topics().Name(schemas.TopicDecisions), Value: sarama.ByteEncoder(`{"id":"d1"}`),
		Headers: kafkax.Headers("/test", d)}
	for _, ic := range sc.Producer.Interceptors {
		ic.OnSend(m)
	}
	cm := &sarama.ConsumerMessage{Topic: m.Topic, Value: []byte(`{"id":"d1"}`)}
	for i := range m.Headers {
		cm.Headers = append(cm.Headers, &m.Headers[i])
	}
	return decisionsig.RecordOf(cm)
}
