package ingest

import (
	"fmt"
	"hash/fnv"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// entityPartition is the partition sarama's hash partitioner gives a record
// keyed by entity (FNV-1a 32 of the key, modulo n, made non-negative), so
// an entity lands in the same partition whether its samples travel in a
// record of their own (keyed by entity) or in a partition's shared record.
func entityPartition(entity string, n int32) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(entity))
	p := int32(h.Sum32()) % n
	if p < 0 {
		p = -p
	}
	return p
}

// partitioner honours the partition ingest chose for a record holding the
// samples of many entities (msgMeta.preset) and hashes the key of any
// other record as sarama's hash partitioner does. It also tells the
// publisher how many partitions the metrics topic has (msgMeta.learn), so
// that the publisher can group entities by partition.
type partitioner struct{ hash sarama.Partitioner }

func newPartitioner(topic string) sarama.Partitioner {
	return &partitioner{hash: sarama.NewHashPartitioner(topic)}
}

func (p *partitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	meta, ok := msg.Metadata.(*msgMeta)
	if !ok {
		return p.hash.Partition(msg, n)
	}
	if meta.learn != nil {
		meta.learn.Store(n)
	}
	if !meta.preset {
		return p.hash.Partition(msg, n)
	}
	if meta.nparts > 0 && meta.nparts != n {
		// The topic's partition count changed since the record was built:
		// its entities may now belong elsewhere. The request is answered
		// 503 and its retry is grouped with the new count.
		return -1, fmt.Errorf("ingest: %s has %d partitions, the record was grouped for %d", msg.Topic, n, meta.nparts)
	}
	if meta.part < 0 || meta.part >= n {
		return -1, fmt.Errorf("ingest: partition %d of %s does not exist (%d partitions)", meta.part, msg.Topic, n)
	}
	return meta.part, nil
}

func (p *partitioner) RequiresConsistency() bool { return true }

// partitionCount is what the partitioner learned of the metrics topic's
// partition count; 0 until the first record was partitioned.
type partitionCount = atomic.Int32
