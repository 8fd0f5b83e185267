package kafkax

import (
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/schemas"
)

// The producer and consumer recipes every component uses. Each starts from
// c.Sarama() (brokers' version, client id, TLS, SASL) and sets what its
// guarantee needs; a component then adds only its own tuning (compression,
// batching, retries).

// IdempotentProducer is a producer whose retries cannot duplicate or
// reorder: idempotence, acks=all, one in-flight request per broker,
// successes and errors returned, 10 retries.
func (c Config) IdempotentProducer() (*sarama.Config, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	Idempotent(sc)
	return sc, nil
}

// TransactionalProducer is IdempotentProducer with a transactional id
// (EOS as in KIP-98: a new owner of the id fences the previous one) and a
// 10 s transaction timeout.
func (c Config) TransactionalProducer(id string) (*sarama.Config, error) {
	sc, err := c.IdempotentProducer()
	if err != nil {
		return nil, err
	}
	sc.Producer.Transaction.ID = id
	sc.Producer.Transaction.Timeout = 10 * time.Second
	return sc, nil
}

// GroupConsumer is a consumer-group member that reads only committed
// records (read_committed), with the range assignor (a service's windows
// and forecasts, keyed alike, land on the same member) and initial offset
// "oldest" or anything else for newest.
func (c Config) GroupConsumer(initial string) (*sarama.Config, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	ReadCommittedGroup(sc, initial)
	return sc, nil
}

// Idempotent sets the idempotent-producer recipe on sc (for a client that
// both consumes and produces).
func Idempotent(sc *sarama.Config) {
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Retry.Max = 10
	sc.Net.MaxOpenRequests = 1
}

// ReadCommittedGroup sets the group-consumer recipe on sc.
func ReadCommittedGroup(sc *sarama.Config, initial string) {
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	if initial == "oldest" {
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
}

// MaxDeadLetterPayload caps the original bytes a dead letter carries.
const MaxDeadLetterPayload = 256 << 10

// DeadLetterID is the one id format of dead letters:
// <topic>/<partition>/<offset>/<reason> (a record may fail for several
// reasons, each its own dead letter).
func DeadLetterID(topic string, partition int32, offset int64, reason string) string {
	return fmt.Sprintf("%s/%d/%d/%s", topic, partition, offset, reason)
}

// DeadLetter builds the dead-letter message (to topic dlTopic, from
// source) for a consumed record that failed with reason and err: the
// original key, at most MaxDeadLetterPayload bytes of payload, the
// record's timestamp (now when it has none).
func DeadLetter(dlTopic, source string, msg *sarama.ConsumerMessage, reason, errText string, payload []byte) (*sarama.ProducerMessage, error) {
	if len(payload) > MaxDeadLetterPayload {
		payload = payload[:MaxDeadLetterPayload]
	}
	dl := schemas.DeadLetter{
		ID:     DeadLetterID(msg.Topic, msg.Partition, msg.Offset, reason),
		Source: source, Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
		Key: string(msg.Key), Reason: reason, Error: errText, AtMs: msg.Timestamp.UnixMilli(), Payload: payload,
	}
	if msg.Timestamp.IsZero() || dl.AtMs <= 0 {
		dl.AtMs = time.Now().UnixMilli()
	}
	pm, err := NewMessage(dlTopic, source, dl)
	if err != nil {
		return nil, fmt.Errorf("dead letter for %s/%d@%d: %w", msg.Topic, msg.Partition, msg.Offset, err)
	}
	return pm, nil
}
