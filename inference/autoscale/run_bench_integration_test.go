//go:build integration

package autoscale

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// BenchmarkRunOnBroker is BenchmarkRunOnKfake against the real broker of
// EBBFLOW_TEST_KAFKA_BROKERS (8 partitions, topics of their own): a burst
// of 10,000 windows to 10,000 decisions on the decisions topic, p99-ms
// next to burst_produce_ms from the same run.
func BenchmarkRunOnBroker(b *testing.B) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		b.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set (source .dev/services.env)")
	}
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.Partitions = 8
	kc.TopicPrefix = fmt.Sprintf("bench-burst-%d", time.Now().UnixNano())
	benchBurst(b, kc)
}
