//go:build integration

package kafkax

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/tlsx"
)

func requireEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the integration tests through `make test`, or `deploy/dev/services.sh up && source .dev/services.env`", name)
	}
	return v
}

// secureConfig is a kafka section for the dev broker's SASL_SSL listener.
func secureConfig(t *testing.T, mechanism, password string) Config {
	t.Helper()
	c := DefaultConfig()
	c.Brokers = []string{requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_BROKERS")}
	c.ClientID = "ebbflow-auth-test"
	c.Partitions = 1
	c.TLS.Enabled = true
	c.TLS.CAFile = requireEnv(t, "EBBFLOW_TEST_KAFKA_CA")
	c.SASL = SASLConfig{Mechanism: mechanism, Username: requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_USER"), Password: password}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func uniqueTopic(t *testing.T) string {
	return fmt.Sprintf("ebbflow.test.auth.%s.%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
}

// produce writes n records to topic through c; it returns the first error.
func produce(c Config, topic string, n int) error {
	sc, err := c.Sarama()
	if err != nil {
		return err
	}
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.DialTimeout = 10 * time.Second
	sc.Metadata.Retry.Max = 1
	p, err := sarama.NewSyncProducer(c.Brokers, sc)
	if err != nil {
		return err
	}
	defer p.Close()
	for i := 0; i < n; i++ {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("record-%d", i))}); err != nil {
			return err
		}
	}
	return nil
}

// consumeAll reads partition 0 of topic from the oldest offset until it has
// n records or the deadline passes.
func consumeAll(t *testing.T, c Config, topic string, n int) []string {
	t.Helper()
	sc, err := c.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sarama.NewConsumer(c.Brokers, sc)
	if err != nil {
		t.Fatalf("consumer over %v: %v", c.Brokers, err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got []string
	deadline := time.After(60 * time.Second)
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, string(m.Value))
		case <-deadline:
			t.Fatalf("read %d of %d records from %s", len(got), n, topic)
		}
	}
	return got
}

// newestOffset is the high watermark of partition 0 of topic, read through c.
func newestOffset(t *testing.T, c Config, topic string) int64 {
	t.Helper()
	sc, err := c.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sarama.NewClient(c.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	off, err := cl.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

func TestSASLOverTLSProduceConsume(t *testing.T) {
	pw := requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_PASSWORD")
	for _, mech := range []string{sarama.SASLTypeSCRAMSHA512, sarama.SASLTypePlaintext} {
		t.Run(mech, func(t *testing.T) {
			c := secureConfig(t, mech, pw)
			topic := uniqueTopic(t)
			if err := EnsureTopics(context.Background(), c, topic); err != nil {
				t.Fatalf("create topic over SASL_SSL (%s): %v", mech, err)
			}
			if err := produce(c, topic, 5); err != nil {
				t.Fatalf("produce over SASL_SSL (%s): %v", mech, err)
			}
			got := consumeAll(t, c, topic, 5)
			for i, v := range got {
				if want := fmt.Sprintf("record-%d", i); v != want {
					t.Errorf("record %d = %q, want %q", i, v, want)
				}
			}
		})
	}
}

func TestTLSListenerProduceConsume(t *testing.T) {
	c := DefaultConfig()
	c.Brokers = []string{requireEnv(t, "EBBFLOW_TEST_KAFKA_TLS_BROKERS")}
	c.Partitions = 1
	c.TLS.Enabled = true
	c.TLS.CAFile = requireEnv(t, "EBBFLOW_TEST_KAFKA_CA")
	topic := uniqueTopic(t)
	if err := EnsureTopics(context.Background(), c, topic); err != nil {
		t.Fatalf("create topic over SSL: %v", err)
	}
	if err := produce(c, topic, 3); err != nil {
		t.Fatalf("produce over SSL: %v", err)
	}
	if got := consumeAll(t, c, topic, 3); got[2] != "record-2" {
		t.Errorf("third record %q", got[2])
	}
}

func TestSCRAMWrongPasswordRefused(t *testing.T) {
	good := secureConfig(t, sarama.SASLTypeSCRAMSHA512, requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_PASSWORD"))
	topic := uniqueTopic(t)
	if err := EnsureTopics(context.Background(), good, topic); err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{sarama.SASLTypeSCRAMSHA512, sarama.SASLTypePlaintext} {
		bad := secureConfig(t, mech, "not-the-password")
		err := produce(bad, topic, 3)
		if err == nil {
			t.Fatalf("%s with a wrong password: produce succeeded", mech)
		}
		if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) || !strings.Contains(err.Error(), "SASL Authentication failed") {
			t.Errorf("%s with a wrong password: error %q does not say the SASL authentication failed", mech, err)
		}
		t.Logf("%s, wrong password: %v", mech, err)
	}
	if off := newestOffset(t, good, topic); off != 0 {
		t.Errorf("topic %s has %d records after producers with a wrong password", topic, off)
	}
}

func TestUntrustedBrokerCertificateRefused(t *testing.T) {
	other, err := tlsx.WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, brokers := range []string{"EBBFLOW_TEST_KAFKA_TLS_BROKERS", "EBBFLOW_TEST_KAFKA_SASL_BROKERS"} {
		c := secureConfig(t, sarama.SASLTypeSCRAMSHA512, requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_PASSWORD"))
		c.Brokers = []string{requireEnv(t, brokers)}
		c.TLS.CAFile = other.CAFile // a CA that did not sign the broker's certificate
		err := produce(c, uniqueTopic(t), 1)
		if err == nil {
			t.Fatalf("%s: a broker certificate from an untrusted CA was accepted", brokers)
		}
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("%s: error %q does not say the certificate is untrusted", brokers, err)
		}
		t.Logf("%s, untrusted CA: %v", brokers, err)
	}
}
