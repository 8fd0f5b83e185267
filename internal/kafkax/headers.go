package kafkax

import (
	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/schemas"
)

// Headers returns the CloudEvents binary-mode headers of an event
// (schemas.Headers) as Kafka record headers.
func Headers(source string, ev schemas.Event) []sarama.RecordHeader {
	var buf [8]schemas.Header
	hs := schemas.AppendHeaders(buf[:0], source, ev)
	n := 0
	for _, h := range hs {
		n += len(h.Value)
	}
	// Every value in one buffer (sarama only reads them): two allocations
	// per record instead of one per header.
	vals := make([]byte, 0, n)
	out := make([]sarama.RecordHeader, len(hs))
	for i, h := range hs {
		at := len(vals)
		vals = append(vals, h.Value...)
		out[i] = sarama.RecordHeader{Key: headerKey(h.Key), Value: vals[at:len(vals):len(vals)]}
	}
	return out
}

// NewMessage builds a validated Kafka message for an event: JSON value,
// CloudEvents headers, key from the event.
func NewMessage(topic, source string, ev schemas.Event) (*sarama.ProducerMessage, error) {
	b, err := schemas.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return &sarama.ProducerMessage{
		Topic:     topic,
		Key:       sarama.StringEncoder(ev.EventKey()),
		Value:     sarama.ByteEncoder(b),
		Headers:   Headers(source, ev),
		Timestamp: ev.EventTime(),
	}, nil
}

// HeaderValue returns the value of a header by name from a consumed record.
func HeaderValue(headers []*sarama.RecordHeader, name string) string {
	for _, h := range headers {
		if h != nil && string(h.Key) == name {
			return string(h.Value)
		}
	}
	return ""
}

// HeaderBytes is HeaderValue without the copy (nil when absent): the
// record's own bytes, valid while the record is.
func HeaderBytes(headers []*sarama.RecordHeader, name string) []byte {
	for _, h := range headers {
		if h != nil && string(h.Key) == name {
			return h.Value
		}
	}
	return nil
}

// headerKeys are the CloudEvents header names as bytes, shared by every
// record (sarama only reads them).
var headerKeys = func() map[string][]byte {
	m := map[string][]byte{}
	for _, k := range []string{schemas.HeaderSpecVersion, schemas.HeaderID, schemas.HeaderSource, schemas.HeaderType,
		schemas.HeaderTime, schemas.HeaderSubject, schemas.HeaderDataSchema, schemas.HeaderContentType} {
		m[k] = []byte(k)
	}
	return m
}()

func headerKey(k string) []byte {
	if b, ok := headerKeys[k]; ok {
		return b
	}
	return []byte(k)
}
