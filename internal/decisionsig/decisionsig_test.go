package decisionsig

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/schemas"
)

const scaleType = "io.ebbflow.decision.scale.v1"

type fixture struct {
	signer *Signer
	pub    ed25519.PublicKey
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{pub: pub, now: time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)}
	f.signer = NewSigner(priv, func() time.Time { return f.now })
	return f
}

func (f *fixture) verifier(required bool) *Verifier {
	return NewVerifier(map[string]ed25519.PublicKey{KeyID(f.pub): f.pub}, required, 15*time.Minute, time.Minute, func() time.Time { return f.now })
}

func (f *fixture) record(id string, body []byte, offset int64) Record {
	return Record{Type: scaleType, ID: id, Body: body, Sig: f.signer.Sign(scaleType, id, body), Offset: offset}
}

func reasonOf(err error) Reason {
	var se *Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return ""
}

func TestVerifyAcceptsGenuineAndRefusesTampering(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"id":"d1","to":3}`)
	other := newFixture(t)
	cases := []struct {
		name   string
		rec    func() Record
		verify func(*Verifier)
		want   Reason
	}{
		{"genuine", func() Record { return f.record("d1", body, 1) }, nil, ""},
		{"unsigned", func() Record { return Record{Type: scaleType, ID: "d1", Body: body} }, nil, ReasonUnsigned},
		{"body changed", func() Record {
			r := f.record("d1", body, 1)
			r.Body = []byte(`{"id":"d1","to":300}`)
			return r
		}, nil, ReasonBadSignature},
		{"id changed", func() Record { r := f.record("d1", body, 1); r.ID = "d2"; return r }, nil, ReasonBadSignature},
		{"type changed", func() Record {
			r := f.record("d1", body, 1)
			r.Type = "io.ebbflow.decision.nodes.v1"
			return r
		}, nil, ReasonBadSignature},
		{"time changed", func() Record { r := f.record("d1", body, 1); r.Sig.SignedAt += "1"; return r }, nil, ReasonBadSignature},
		{"signed by an untrusted key", func() Record { return other.record("d1", body, 1) }, nil, ReasonUnknownKey},
		{"untrusted key claiming a trusted id", func() Record {
			r := other.record("d1", body, 1)
			r.Sig.KeyID = f.signer.KeyID()
			return r
		}, nil, ReasonBadSignature},
		{"signature not base64", func() Record { r := f.record("d1", body, 1); r.Sig.Value = "%%%"; return r }, nil, ReasonMalformed},
		{"key id missing", func() Record { r := f.record("d1", body, 1); r.Sig.KeyID = ""; return r }, nil, ReasonMalformed},
		{"time not a number", func() Record { r := f.record("d1", body, 1); r.Sig.SignedAt = "yesterday"; return r }, nil, ReasonMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.verifier(true).Verify(c.rec())
			if got := reasonOf(err); got != c.want {
				t.Fatalf("reason %q, want %q (err %v)", got, c.want, err)
			}
			if c.want != "" && !strings.Contains(err.Error(), string(c.want)) {
				t.Fatalf("error %q does not name its reason", err)
			}
		})
	}
}

func TestUnsignedAcceptedOnlyWhenNotRequired(t *testing.T) {
	f := newFixture(t)
	rec := Record{Type: scaleType, ID: "d1", Body: []byte(`{}`)}
	if err := f.verifier(false).Verify(rec); err != nil {
		t.Fatalf("required off: unsigned refused: %v", err)
	}
	// A bad signature is refused whatever required says.
	bad := f.record("d2", []byte(`{}`), 2)
	bad.Body = []byte(`{"x":1}`)
	if r := reasonOf(f.verifier(false).Verify(bad)); r != ReasonBadSignature {
		t.Fatalf("required off: tampered record: reason %q, want bad_signature", r)
	}
}

func TestReplayAndWindow(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(true)
	rec := f.record("d1", []byte(`{"id":"d1"}`), 10)
	if err := v.Verify(rec); err != nil {
		t.Fatal(err)
	}
	// The same record redelivered (same offset, e.g. after a rebalance) is
	// not a replay: the handlers' idempotency skips it.
	if err := v.Verify(rec); err != nil {
		t.Fatalf("redelivery refused: %v", err)
	}
	// A copy written again to the topic is.
	cp := rec
	cp.Offset = 11
	if r := reasonOf(v.Verify(cp)); r != ReasonReplayed {
		t.Fatalf("copy at another offset: reason %q, want replayed", r)
	}
	// Too old, and from the future.
	old := f.record("d2", []byte(`{}`), 12)
	f.now = f.now.Add(16 * time.Minute)
	if r := reasonOf(v.Verify(old)); r != ReasonOutsideWindow {
		t.Fatalf("16 min old: reason %q, want outside_window", r)
	}
	future := f.record("d3", []byte(`{}`), 13)
	f.now = f.now.Add(-2 * time.Minute)
	if r := reasonOf(v.Verify(future)); r != ReasonOutsideWindow {
		t.Fatalf("2 min ahead: reason %q, want outside_window", r)
	}
	// The replay memory forgets what the window refuses anyway.
	f.now = f.now.Add(time.Hour)
	fresh := f.record("d4", []byte(`{}`), 14)
	if err := v.Verify(fresh); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	_, kept := v.seen["d1"]
	v.mu.Unlock()
	if kept {
		t.Fatal("d1 is still remembered an hour after its window")
	}
}

func TestKeyFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := MarshalPrivateKey(priv)
	pb, _ := MarshalPublicKey(pub)
	pub2, _, _ := GenerateKey()
	pb2, _ := MarshalPublicKey(pub2)
	keys := filepath.Join(dir, "pub")
	if err := os.MkdirAll(filepath.Join(keys, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{filepath.Join(dir, "d.key"): kb, filepath.Join(keys, "a.pub"): pb,
		filepath.Join(keys, "b.pub"): pb2, filepath.Join(keys, ".hidden"): []byte("not a key")} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadPrivateKey(filepath.Join(dir, "d.key"))
	if err != nil || !got.Equal(priv) {
		t.Fatalf("private key round trip: %v", err)
	}
	ks, err := LoadPublicKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || !ks[KeyID(pub)].Equal(pub) || !ks[KeyID(pub2)].Equal(pub2) {
		t.Fatalf("loaded %d keys from the directory, want both", len(ks))
	}
	if _, err := LoadPublicKeys(filepath.Join(dir, "d.key")); err == nil || !strings.Contains(err.Error(), "PUBLIC KEY") {
		t.Fatalf("a private key file as public keys: %v", err)
	}
	if _, err := LoadPrivateKey(filepath.Join(keys, "a.pub")); err == nil || !strings.Contains(err.Error(), "ebbflow keys generate") {
		t.Fatalf("a public key as private key: %v", err)
	}
}

func TestInterceptorSignsOnlyTheDecisionsTopicOnce(t *testing.T) {
	f := newFixture(t)
	ic := f.signer.Interceptor("ebbflow.decisions.v1")
	ev := schemas.ScaleDecision{ID: "d1"}
	mk := func(topic string) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(`{"id":"d1"}`), Headers: []sarama.RecordHeader{
			{Key: []byte(schemas.HeaderType), Value: []byte(ev.EventType())}, {Key: []byte(schemas.HeaderID), Value: []byte("d1")}}}
	}
	other := mk("ebbflow.actions.v1")
	ic.OnSend(other)
	if len(other.Headers) != 2 {
		t.Fatalf("a record to another topic got signed: %d headers", len(other.Headers))
	}
	m := mk("ebbflow.decisions.v1")
	ic.OnSend(m)
	ic.OnSend(m) // a producer retry
	if len(m.Headers) != 5 {
		t.Fatalf("want 2 + 3 signature headers once, got %d", len(m.Headers))
	}
	cm := &sarama.ConsumerMessage{Topic: m.Topic, Value: []byte(`{"id":"d1"}`), Offset: 7}
	for i := range m.Headers {
		cm.Headers = append(cm.Headers, &m.Headers[i])
	}
	rec := RecordOf(cm)
	if rec.Type != ev.EventType() || rec.ID != "d1" || rec.Sig.KeyID != f.signer.KeyID() {
		t.Fatalf("record read back: %+v", rec)
	}
	if err := f.verifier(true).Verify(rec); err != nil {
		t.Fatalf("the interceptor's signature does not verify: %v", err)
	}
}
