package autoscale

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/IBM/sarama/mocks"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// pipeSession records the offsets ConsumeClaim marks.
type pipeSession struct {
	ctx    context.Context
	mu     sync.Mutex
	marked []int64
}

func (s *pipeSession) Claims() map[string][]int32 { return nil }
func (s *pipeSession) MemberID() string           { return "m" }
func (s *pipeSession) GenerationID() int32        { return 1 }
func (s *pipeSession) MarkOffset(string, int32, int64, string) {
}
func (s *pipeSession) Commit()                                  {}
func (s *pipeSession) ResetOffset(string, int32, int64, string) {}
func (s *pipeSession) Context() context.Context                 { return s.ctx }
func (s *pipeSession) MarkMessage(m *sarama.ConsumerMessage, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marked = append(s.marked, m.Offset)
}
func (s *pipeSession) marks() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.marked...)
}

type pipeClaim struct{ ch chan *sarama.ConsumerMessage }

func (c pipeClaim) Topic() string                            { return "windows" }
func (c pipeClaim) Partition() int32                         { return 0 }
func (c pipeClaim) InitialOffset() int64                     { return 0 }
func (c pipeClaim) HighWaterMarkOffset() int64               { return 0 }
func (c pipeClaim) Messages() <-chan *sarama.ConsumerMessage { return c.ch }

// TestConsumeClaimPipelineMarksAfterAcks: with the produce pipelined, an
// input's offset is marked only after its decision is acknowledged, in
// order, and a failed produce ends the claim with an error without
// marking the failed input (so it is redelivered).
func TestConsumeClaimPipelineMarksAfterAcks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RepeatSuppress = 0
	cfg.StaleAfter = 24 * time.Hour
	cfg.Policy.ScaleDownStabilization = 0
	cfg.Policy.ScaleDownCooldown = 0
	cfg.Policy.Signals = map[string]SignalPolicy{schemas.SignalQPS: {ExpectRate: 0.5, Capacity: 100}}
	dec := NewDecider(cfg, "", nil)
	m, err := newMetrics(prometheus.NewRegistry(), dec)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*sarama.ConsumerMessage
	for i, svc := range []string{"a", "b", "c"} {
		e := schemas.ServiceEntity("bench", "ns", svc)
		if _, err := dec.ObserveWindow(schemas.Window{Entity: e, Signal: schemas.SignalReplicas, Kind: schemas.KindGauge,
			SizeS: 60, StartMs: nowMs - 60_000, EndMs: nowMs, Count: 1, Mean: 7, Last: 7}); err != nil {
			t.Fatal(err)
		}
		pm, err := kafkax.NewMessage("windows", "/test", benchWindow(e, 0))
		if err != nil {
			t.Fatal(err)
		}
		val, _ := pm.Value.Encode()
		var hs []*sarama.RecordHeader
		for _, h := range pm.Headers {
			hs = append(hs, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
		msgs = append(msgs, &sarama.ConsumerMessage{Topic: "windows", Offset: int64(10 + i), Value: val, Headers: hs})
	}

	sc := sarama.NewConfig()
	sc.Producer.Return.Successes = true
	prod := mocks.NewAsyncProducer(t, sc)
	prod.ExpectInputAndSucceed().ExpectInputAndSucceed().ExpectInputAndFail(errors.New("broker said no"))
	acksDone := make(chan struct{})
	go func() { defer close(acksDone); routeAcks(prod) }()
	h := &handler{cfg: cfg, dec: dec, m: m, log: slog.New(slog.NewTextHandler(io.Discard, nil)), prod: prod,
		decisions: "decisions", deadletter: "dead"}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := &pipeSession{ctx: ctx}
	claim := pipeClaim{ch: make(chan *sarama.ConsumerMessage, 4)}
	done := make(chan error, 1)
	go func() { done <- h.ConsumeClaim(sess, claim) }()

	claim.ch <- msgs[0]
	deadline := time.Now().Add(30 * time.Second)
	for len(sess.marks()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first input was not marked after its decision was acknowledged")
		}
		time.Sleep(time.Millisecond)
	}
	claim.ch <- msgs[1]
	claim.ch <- msgs[2]
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "broker said no") {
			t.Fatalf("ConsumeClaim returned %v, want the produce error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ConsumeClaim did not end after a failed produce")
	}
	marks := sess.marks()
	if marks[0] != 10 {
		t.Fatalf("marked %v, want offset 10 first", marks)
	}
	for i, o := range marks {
		if o >= 12 {
			t.Fatalf("marked %v: offset 12's decision failed and must not be marked", marks)
		}
		if i > 0 && o <= marks[i-1] {
			t.Fatalf("marked %v: not in order", marks)
		}
	}
	if err := prod.Close(); err != nil {
		t.Fatal(err)
	}
	<-acksDone
}
