//go:build integration

package kafkax

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestDeletePrefixedDeletesOnlyItsOwnTopics: on the real broker,
// DeletePrefixed removes the topics of its prefix and leaves a topic whose
// name merely starts with the same characters; an empty prefix is refused.
func TestDeletePrefixedDeletesOnlyItsOwnTopics(t *testing.T) {
	c := DefaultConfig()
	c.Brokers = []string{requireEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS")}
	c.Partitions = 1
	c.TopicPrefix = fmt.Sprintf("deltest-%d", time.Now().UnixNano())
	other := c
	other.TopicPrefix = c.TopicPrefix + "x" // same leading characters, another prefix
	mine := []string{c.Topics().Name("a"), c.Topics().Name("b")}
	theirs := other.Topics().Name("a")
	if err := EnsureTopics(context.Background(), c, append(mine, theirs)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeletePrefixed(other) })
	if err := DeletePrefixed(c); err != nil {
		t.Fatal(err)
	}
	sc, _ := c.Sarama()
	admin, err := sarama.NewClusterAdmin(c.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ts, err := admin.ListTopics()
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for name := range ts {
			if strings.HasPrefix(name, c.TopicPrefix+".") {
				left++
			}
		}
		if _, ok := ts[theirs]; !ok {
			t.Fatalf("%s (another prefix) was deleted", theirs)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d topics of prefix %s still listed after a minute", left, c.TopicPrefix)
		}
		time.Sleep(200 * time.Millisecond)
	}
	empty := c
	empty.TopicPrefix = ""
	if err := DeletePrefixed(empty); err == nil || !strings.Contains(err.Error(), "topic_prefix") {
		t.Fatalf("empty prefix: %v, want a refusal naming topic_prefix", err)
	}
}
