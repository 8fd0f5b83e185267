//go:build integration

package replay

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestReplayFromHDFSToKafka writes windows to the real HDFS, replays them
// at max speed to the real Kafka, and reads them back in event-time order.
func TestReplayFromHDFSToKafka(t *testing.T) {
	brokers, nn := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS"), os.Getenv("EBBFLOW_TEST_HDFS_NAMENODE")
	if brokers == "" || nn == "" {
		t.Fatal("EBBFLOW_TEST_KAFKA_BROKERS and EBBFLOW_TEST_HDFS_NAMENODE must be set: run `make test` (.dev/services.env)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := history.OpenHDFS(ctx, []string{nn}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	id := time.Now().UnixNano()
	root := fmt.Sprintf("/ebbflow-test/replay-%d", id)
	defer h.Client().RemoveAll(root)
	_, ws := writeHistory(t)
	if _, err := history.WriteWindows(ctx, h, root, ws, "part-0.parquet"); err != nil {
		t.Fatal(err)
	}
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.Partitions = 1
	topic := fmt.Sprintf("replay%d.metrics.windows.v1", id)
	sum, err := Run(ctx, Config{Speed: "max", SizeS: 60, Topic: topic}, Deps{History: h, HistoryRoot: root, Kafka: kc})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 10 || sum.Entities != 2 {
		t.Fatalf("summary %+v", sum)
	}
	sc, _ := kc.Sarama()
	c, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var prev schemas.Window
	for i := 0; i < 10; i++ {
		select {
		case m := <-pc.Messages():
			w, err := schemas.Decode[schemas.Window](m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && (w.EndMs < prev.EndMs || (w.EndMs == prev.EndMs && w.Entity <= prev.Entity)) {
				t.Fatalf("out of event-time order: %s after %s", w.EventID(), prev.EventID())
			}
			if !m.Timestamp.Equal(time.UnixMilli(w.EndMs)) {
				t.Fatalf("timestamp %s, want the window end", m.Timestamp)
			}
			prev = w
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of 10 windows arrived", i)
		}
	}
}
