package kafkax

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol cluster (franz-go's kfake) for
// `ebbflow dev` and unit tests. It speaks enough of the protocol for
// sarama's idempotent producer, transactions and consumer groups; it is
// not Apache Kafka and integration tests do not use it.
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts a single-broker cluster on 127.0.0.1:port (0 picks a
// free port) with the given topics created with partitions partitions.
func StartEmbedded(port int, partitions int32, topics ...string) (*Embedded, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.AllowAutoTopicCreation(),
	}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkax: start embedded kafka: %w", err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs returns the bootstrap addresses.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the cluster.
func (e *Embedded) Close() { e.cluster.Close() }
