//go:build integration

package ui

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// TestRunFromRealKafka is TestRunServesTLSFromKafka against the real
// Apache Kafka broker of the test services (topics created by the UI, as
// `ebbflow ui` does with kafka.create_topics on).
func TestRunFromRealKafka(t *testing.T) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		t.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)")
	}
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.TopicPrefix = fmt.Sprintf("ui-it-%d", time.Now().UnixNano())
	kc.Partitions, kc.ReplicationFactor = 2, 1
	runFromKafka(t, kc)
}
