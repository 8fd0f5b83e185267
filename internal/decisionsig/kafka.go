package decisionsig

import (
	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/schemas"
)

// Interceptor returns a sarama producer interceptor that signs every
// record sent to topic (the decisions topic) and leaves the others alone.
// A record already signed (a retry through the producer) keeps its
// signature. Installed through kafkax.Config.Interceptors, it signs in one
// place for every decider.
func (s *Signer) Interceptor(topic string) sarama.ProducerInterceptor {
	return interceptor{s: s, topic: topic}
}

type interceptor struct {
	s     *Signer
	topic string
}

// OnSend implements sarama.ProducerInterceptor.
func (i interceptor) OnSend(m *sarama.ProducerMessage) {
	if m.Topic != i.topic || m.Value == nil {
		return
	}
	var ceType, id string
	for _, h := range m.Headers {
		switch string(h.Key) {
		case HeaderSignature:
			return
		case schemas.HeaderType:
			ceType = string(h.Value)
		case schemas.HeaderID:
			id = string(h.Value)
		}
	}
	body, err := m.Value.Encode()
	if err != nil {
		// Left unsigned: the actuator dead-letters it as unsigned.
		return
	}
	sig := i.s.Sign(ceType, id, body)
	m.Headers = append(m.Headers,
		sarama.RecordHeader{Key: []byte(HeaderKeyID), Value: []byte(sig.KeyID)},
		sarama.RecordHeader{Key: []byte(HeaderSignedAt), Value: []byte(sig.SignedAt)},
		sarama.RecordHeader{Key: []byte(HeaderSignature), Value: []byte(sig.Value)})
}

// SignMessage signs one producer message in place (for tools that build
// their own producer; deciders get the Interceptor).
func (s *Signer) SignMessage(m *sarama.ProducerMessage) {
	interceptor{s: s, topic: m.Topic}.OnSend(m)
}

// RecordOf is what Verify reads of a consumed record.
func RecordOf(m *sarama.ConsumerMessage) Record {
	r := Record{Body: m.Value, Partition: m.Partition, Offset: m.Offset}
	for _, h := range m.Headers {
		if h == nil {
			continue
		}
		// The first of repeated headers counts, as for the actuator's
		// routing (kafkax.HeaderValue): what is verified is what is routed.
		first := func(dst *string) {
			if *dst == "" {
				*dst = string(h.Value)
			}
		}
		switch string(h.Key) {
		case schemas.HeaderType:
			first(&r.Type)
		case schemas.HeaderID:
			first(&r.ID)
		case HeaderKeyID:
			first(&r.Sig.KeyID)
		case HeaderSignedAt:
			first(&r.Sig.SignedAt)
		case HeaderSignature:
			first(&r.Sig.Value)
		}
	}
	return r
}
