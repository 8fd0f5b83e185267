//go:build integration

package badinput_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// sweep is one consumer's bad-input run on the real broker: its own topic
// prefix, one partition per topic (so the good records after the bad ones
// can only be processed if the consumer got past every bad one), a
// producer, and collectors on the dead-letter topic and the output topic.
type sweep struct {
	t    *testing.T
	ctx  context.Context
	kc   kafkax.Config
	prod sarama.SyncProducer
	dead *collector
}

func newSweep(t *testing.T, name string) *sweep {
	t.Helper()
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		t.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set (source .dev/services.env: deploy/dev/services.sh up starts Kafka and writes it)")
	}
	// Generous: eight engineers' tests share two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.TopicPrefix = fmt.Sprintf("bad%s%d", name, time.Now().UnixNano()%1_000_000_000)
	kc.Partitions = 1
	if err := kafkax.EnsureTopics(ctx, kc, kc.Topics().All()...); err != nil {
		t.Fatal(err)
	}
	sc, err := kc.IdempotentProducer()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	s := &sweep{t: t, ctx: ctx, kc: kc, prod: prod}
	s.dead = s.collect(schemas.TopicDeadLetter)
	return s
}

func (s *sweep) topic(base string) string { return s.kc.Topics().Name(base) }

// send produces msgs in this order and returns their offsets.
func (s *sweep) send(msgs ...*sarama.ProducerMessage) []int64 {
	s.t.Helper()
	if err := s.prod.SendMessages(msgs); err != nil {
		var pe sarama.ProducerErrors
		if errors.As(err, &pe) && len(pe) > 0 {
			s.t.Fatalf("produce: %v; the first: %v", err, pe[0].Err)
		}
		s.t.Fatalf("produce: %v", err)
	}
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Offset
	}
	return out
}

// event is a record of ebbflow's own event ev on topic.
func (s *sweep) event(base string, ev schemas.Event) *sarama.ProducerMessage {
	s.t.Helper()
	m, err := kafkax.NewMessage(s.topic(base), "/test/badinput", ev)
	if err != nil {
		s.t.Fatalf("good %T violates its schema: %v", ev, err)
	}
	return m
}

// eventNow is event with the record timestamp of now: Kafka refuses a
// record stamped more than log.message.timestamp.after.max.ms (1h) ahead,
// so a far-future event time can only arrive inside the body.
func (s *sweep) eventNow(base string, ev schemas.Event) *sarama.ProducerMessage {
	m := s.event(base, ev)
	m.Timestamp = time.Now()
	return m
}

// raw is a record with any bytes as value and ceType (if not empty) in the
// CloudEvents type header: how a foreign or broken producer writes.
func (s *sweep) raw(base, key, ceType string, value []byte) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: s.topic(base), Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}
	if ceType != "" {
		m.Headers = []sarama.RecordHeader{{Key: []byte(schemas.HeaderType), Value: []byte(ceType)}}
	}
	return m
}

// collector reads one topic's only partition from the oldest record.
type collector struct {
	mu   sync.Mutex
	msgs []*sarama.ConsumerMessage
	err  error
}

func (s *sweep) collect(base string) *collector {
	s.t.Helper()
	sc, err := s.kc.Sarama()
	if err != nil {
		s.t.Fatal(err)
	}
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	cons, err := sarama.NewConsumer(s.kc.Brokers, sc)
	if err != nil {
		s.t.Fatal(err)
	}
	pc, err := cons.ConsumePartition(s.topic(base), 0, sarama.OffsetOldest)
	if err != nil {
		cons.Close()
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { pc.Close(); cons.Close() })
	c := &collector{}
	go func() {
		for m := range pc.Messages() {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	go func() {
		for err := range pc.Errors() {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) snapshot() []*sarama.ConsumerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sarama.ConsumerMessage(nil), c.msgs...)
}

// wait polls until cond holds on what was read, or fails naming what and
// the component's error if it ended.
func (s *sweep) wait(c *collector, what string, done <-chan error, cond func([]*sarama.ConsumerMessage) bool) {
	s.t.Helper()
	for !cond(c.snapshot()) {
		select {
		case err := <-done:
			s.t.Fatalf("the consumer ended (%v) before %s", err, what)
		case <-s.ctx.Done():
			c.mu.Lock()
			cerr := c.err
			c.mu.Unlock()
			s.t.Fatalf("timed out waiting for %s (read %d records, consumer error %v)", what, len(c.snapshot()), cerr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// badCase is one bad record and what its dead letter must say.
type badCase struct {
	name   string
	msg    *sarama.ProducerMessage
	reason string // the dead letter's reason
	errHas string // a substring of its error text (names what is wrong)
}

// checkDeadLetters waits for one dead letter per case, at the case's
// offset and with its reason, and checks what each carries.
func (s *sweep) checkDeadLetters(done <-chan error, cases []badCase, offsets []int64) {
	s.t.Helper()
	// Decoded once each (a dead letter carries up to 256 KiB).
	var decoded []schemas.DeadLetter
	find := func(msgs []*sarama.ConsumerMessage, topic string, off int64, reason string) (schemas.DeadLetter, bool) {
		for _, m := range msgs[len(decoded):] {
			dl, err := schemas.Decode[schemas.DeadLetter](m.Value)
			if err != nil {
				s.t.Errorf("a dead letter does not decode: %v", err)
			}
			decoded = append(decoded, dl)
		}
		for _, dl := range decoded {
			if dl.Topic == topic && dl.Offset == off && dl.Reason == reason {
				return dl, true
			}
		}
		return schemas.DeadLetter{}, false
	}
	s.wait(s.dead, "a dead letter for each bad record", done, func(msgs []*sarama.ConsumerMessage) bool {
		for i, c := range cases {
			if _, ok := find(msgs, c.msg.Topic, offsets[i], c.reason); !ok {
				return false
			}
		}
		return true
	})
	msgs := s.dead.snapshot()
	for i, c := range cases {
		dl, _ := find(msgs, c.msg.Topic, offsets[i], c.reason)
		if !strings.Contains(dl.Error, c.errHas) {
			s.t.Errorf("%s: dead letter error %q does not name %q", c.name, dl.Error, c.errHas)
		}
		if dl.ID != kafkax.DeadLetterID(c.msg.Topic, 0, offsets[i], c.reason) || dl.Source == "" {
			s.t.Errorf("%s: dead letter id %q source %q", c.name, dl.ID, dl.Source)
		}
		orig, _ := c.msg.Value.Encode()
		if c.reason != "invalid" && c.reason != "late" { // the window processor carries only the bad samples
			want := orig[:min(len(orig), kafkax.MaxDeadLetterPayload)]
			if !bytes.Equal(dl.Payload, want) {
				s.t.Errorf("%s: dead letter payload is %d bytes, want the first %d of the record", c.name, len(dl.Payload), len(want))
			}
		} else if len(dl.Payload) == 0 {
			s.t.Errorf("%s: dead letter carries no payload", c.name)
		}
		if k, _ := c.msg.Key.Encode(); c.msg.Key != nil && dl.Key != string(k) {
			s.t.Errorf("%s: dead letter key %q, want %q", c.name, dl.Key, k)
		}
	}
	for _, dl := range decoded {
		matched := false
		for i, c := range cases {
			if dl.Offset == offsets[i] && dl.Reason == c.reason {
				matched = true
			}
		}
		if !matched {
			s.t.Errorf("an unexpected dead letter (a good record rejected?): %s %s", dl.ID, dl.Error)
		}
	}
}

// counterSum is the sum of a counter family over its labels.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, err := telemetry.CounterValue(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkCounter waits (the count may trail the dead letter by a moment) for
// the component's bad-input counter to reach want.
func (s *sweep) checkCounter(reg *prometheus.Registry, name string, want float64) {
	s.t.Helper()
	for counterSum(s.t, reg, name) < want {
		select {
		case <-s.ctx.Done():
			s.t.Fatalf("%s = %v, want %v", name, counterSum(s.t, reg, name), want)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got := counterSum(s.t, reg, name); got != want {
		s.t.Errorf("%s = %v, want %v (one per bad record)", name, got, want)
	}
}

// run starts fn in the background and, at cleanup, stops it and checks it
// returned nil.
func (s *sweep) run(name string, fn func(ctx context.Context) error) <-chan error {
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan error, 1)
	res := make(chan error, 1)
	go func() {
		err := fn(ctx)
		done <- err
		res <- err
	}()
	s.t.Cleanup(func() {
		cancel()
		select {
		case err := <-res:
			// Cancelled while still starting (a test that failed early).
			if err != nil && !errors.Is(err, context.Canceled) {
				s.t.Errorf("%s returned %v", name, err)
			}
		case <-time.After(2 * time.Minute):
			s.t.Errorf("%s did not stop within 2m of its context's end", name)
		}
	})
	return done
}

// oversize is a JSON-looking value of n bytes (Kafka takes up to 1 MiB).
func oversize(n int) []byte {
	b := []byte(`{"id":"`)
	b = append(b, bytes.Repeat([]byte("x"), n-len(b)-2)...)
	return append(b, `"}`...)
}

var (
	nan, inf = math.NaN(), math.Inf(1)
	// farFuture and farPast are timestamps no real clock gives: the year
	// 2500 and 1971.
	farFuture = time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	farPast   = time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
)

// qpsWindow is a good 60 s qps window of entity ending at endMs.
func qpsWindow(entity string, endMs int64, rate float64) schemas.Window {
	return schemas.Window{Entity: entity, Signal: schemas.SignalQPS, Kind: schemas.KindCounter, SizeS: 60,
		StartMs: endMs - 60_000, EndMs: endMs, Count: 4, Sum: rate * 60, Min: rate, Max: rate, Mean: rate, Last: rate,
		P50: rate, P95: rate, P99: rate, Rate: &rate}
}

// withJSON is ev as JSON with the first occurrence of each field replaced
// (raw JSON values), for values json.Marshal of the type cannot produce.
func withJSON(t *testing.T, ev schemas.Event, replace map[string]string) []byte {
	t.Helper()
	b, err := schemas.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for field, v := range replace {
		i := strings.Index(s, `"`+field+`":`)
		if i < 0 {
			t.Fatalf("no field %s in %s", field, s)
		}
		j := i + len(field) + 3
		k := j
		for k < len(s) && s[k] != ',' && s[k] != '}' {
			k++
		}
		s = s[:j] + v + s[k:]
	}
	return []byte(s)
}

// quiet is a logger for components under test: warnings and errors only.
func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func getenv(k string) string { return strings.TrimSpace(os.Getenv(k)) }

// waitGroupJoined waits until the consumer group has a stable membership
// with partitions assigned: for a consumer that starts at the newest
// offset, records produced before that would never be read.
func (s *sweep) waitGroupJoined(group string, done <-chan error) {
	s.t.Helper()
	admin, err := sarama.NewClusterAdmin(s.kc.Brokers, sarama.NewConfig())
	if err != nil {
		s.t.Fatal(err)
	}
	defer admin.Close()
	for {
		gs, err := admin.DescribeConsumerGroups([]string{group})
		if err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) > 0 {
			for _, m := range gs[0].Members {
				if a, err := m.GetMemberAssignment(); err == nil && len(a.Topics) > 0 {
					return
				}
			}
		}
		select {
		case err := <-done:
			s.t.Fatalf("the consumer ended (%v) before group %s joined", err, group)
		case <-s.ctx.Done():
			s.t.Fatalf("group %s never became stable with partitions assigned", group)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkReasons checks a component's bad-input counter, labelled by reason,
// against the cases: one per case under its dead letter's reason, none
// under any other label.
func (s *sweep) checkReasons(reg *prometheus.Registry, name string, cases []badCase) {
	s.t.Helper()
	want := map[string]float64{}
	for _, c := range cases {
		want[c.reason]++
	}
	mfs, err := reg.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && m.GetCounter().GetValue() != 0 {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		s.t.Errorf("%s by reason = %v, want %v", name, got, want)
	}
}
