//go:build integration

package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// TestTrainingDecisionsOnRealKafka publishes a submission's decisions to the
// real Kafka broker and reads them back through the schema.
func TestTrainingDecisionsOnRealKafka(t *testing.T) {
	brokers := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if brokers == "" {
		t.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)")
	}
	c := wire.Default()
	c.Kafka.Brokers = strings.Split(brokers, ",")
	c.Kafka.TopicPrefix = fmt.Sprintf("training-it-%d", time.Now().UnixNano())
	c.Kafka.Partitions = 1
	// Published decisions are signed with the configured key (signing.required is on by default).
	pub, priv, err := decisionsig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := decisionsig.MarshalPrivateKey(priv)
	c.Signing.PrivateKeyFile = filepath.Join(t.TempDir(), "decision.key")
	if err := os.WriteFile(c.Signing.PrivateKeyFile, kb, 0o600); err != nil {
		t.Fatal(err)
	}
	verifier := decisionsig.NewVerifier(map[string]ed25519.PublicKey{decisionsig.KeyID(pub): pub}, true, time.Hour, time.Minute, nil)
	spec := scheduler.JobSpec{Department: "research", User: "alice", Family: "bert", Image: "img", Command: []string{"train"},
		GPUs: scheduler.GPUSpec{Count: 8, Model: "a100", Fallbacks: []string{"v100"}}, CPU: "8", Memory: "32Gi", ExpectedDuration: time.Hour}
	runs := []scheduler.RunStats{{Run: "bert-1", EndMs: 1, GPUs: 8, GPUUtilMean: 0.25, GPUMemPeakMiB: 10_000}}
	p, err := scheduler.PlanSubmission(c.Training, "c1", spec, scheduler.PlanInput{Now: time.Now(), Runs: runs, DeptUtil: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Decisions) != 2 {
		t.Fatalf("want launch and resize, got %d decisions", len(p.Decisions))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := publishDecisions(ctx, c, p.Decisions, false); err != nil {
		t.Fatal(err)
	}
	sc, err := c.Kafka.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sarama.NewConsumer(c.Kafka.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(c.Kafka.Topics().Name(schemas.TopicDecisions), 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got []schemas.TrainingDecision
	for len(got) < 2 {
		select {
		case m := <-pc.Messages():
			if ty := kafkax.HeaderValue(m.Headers, schemas.HeaderType); ty != "io.ebbflow.decision.training.v1" {
				t.Errorf("ce_type %q", ty)
			}
			if err := verifier.Verify(decisionsig.RecordOf(m)); err != nil {
				t.Errorf("decision at offset %d: %v", m.Offset, err)
			}
			d, err := schemas.Decode[schemas.TrainingDecision](m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Key) != d.Target.Key() {
				t.Errorf("key %q, want %q", m.Key, d.Target.Key())
			}
			got = append(got, d)
		case <-ctx.Done():
			t.Fatalf("read %d of 2 decisions: %v", len(got), ctx.Err())
		}
	}
	if got[0].Action != schemas.TrainingLaunch || got[1].Action != schemas.TrainingResize || got[1].Job.GPUs != 2 || got[1].Sizing == nil || got[1].Sizing.BusyGPUs != 2 {
		t.Errorf("decisions %+v", got)
	}
}
