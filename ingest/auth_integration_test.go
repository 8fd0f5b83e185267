//go:build integration

package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/tlsx"
	"github.com/ebbflow/ebbflow/schemas"
)

// topicRecords is the number of records in topic (sum of the partitions'
// high watermarks).
func topicRecords(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts, err := cl.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		off, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		n += off
	}
	return n
}

// waitFor polls cond every 200 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPrometheusRemoteWriteAuthTLS: the real Prometheus remote-writes to
// ingest over HTTPS (ingest's certificate from a test CA, Prometheus
// trusting it through tls_config.ca_file) with basic auth, a bearer token,
// or a client certificate: the target's samples arrive in the real Kafka.
// With a wrong password, a wrong token or no client certificate ingest
// refuses every request (401, counted) and nothing reaches the topic;
// when Prometheus does not trust ingest's certificate nothing is sent.
func TestPrometheusRemoteWriteAuthTLS(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsx.WritePKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlsx.WritePKI(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	password := writeSecret(t, dir, "password", "rw-pass-1")
	wrongPassword := writeSecret(t, dir, "wrong-password", "rw-pass-2")
	token := writeSecret(t, dir, "token", "rw-token-1")
	wrongToken := writeSecret(t, dir, "wrong-token", "rw-token-2")

	basic := func(c *Config) {
		c.RemoteWrite.BasicAuthUsername, c.RemoteWrite.BasicAuthPasswordFile = "prometheus", password
	}
	bearer := func(c *Config) { c.RemoteWrite.BearerTokenFile = token }
	mtls := func(c *Config) { c.RemoteWrite.TLSClientCAFile = pki.CAFile }
	trust := fmt.Sprintf("    tls_config:\n      ca_file: %q\n", pki.CAFile)
	for _, tc := range []struct {
		name     string
		ingest   func(*Config)
		rw       string // Prometheus remote_write settings
		accepted bool
		logWant  string // in Prometheus' log when refused
	}{
		{"basic", basic, trust + fmt.Sprintf("    basic_auth:\n      username: prometheus\n      password_file: %q\n", password), true, ""},
		{"bearer", bearer, trust + fmt.Sprintf("    authorization:\n      type: Bearer\n      credentials_file: %q\n", token), true, ""},
		{"client-certificate", mtls, fmt.Sprintf("    tls_config:\n      ca_file: %q\n      cert_file: %q\n      key_file: %q\n", pki.CAFile, pki.ClientCert, pki.ClientKey), true, ""},
		{"basic-wrong-password", basic, trust + fmt.Sprintf("    basic_auth:\n      username: prometheus\n      password_file: %q\n", wrongPassword), false, "401"},
		{"bearer-wrong-token", bearer, trust + fmt.Sprintf("    authorization:\n      type: Bearer\n      credentials_file: %q\n", wrongToken), false, "401"},
		{"no-credentials", basic, trust, false, "401"},
		{"client-certificate-missing", mtls, trust, false, "certificate"},
		{"untrusted-server-certificate", basic, fmt.Sprintf("    tls_config:\n      ca_file: %q\n", other.CAFile) + fmt.Sprintf("    basic_auth:\n      username: prometheus\n      password_file: %q\n", password), false, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &served{}
			target := httptest.NewServer(srv.handler())
			defer target.Close()
			u := startIngest(t, Deps{}, func(c *Config) {
				c.RemoteWrite.TLSCertFile, c.RemoteWrite.TLSKeyFile = pki.ServerCert, pki.ServerKey
				tc.ingest(c)
			})
			url := strings.Replace(u.url, "http://", "https://", 1)
			plog := startPrometheusWith(t, strings.TrimPrefix(target.URL, "http://"), url, tc.rw)
			if tc.accepted {
				got := consumeRaw(t, u.kc.Brokers, u.topic, func(have []schemas.RawSample) bool {
					for _, s := range have {
						if s.Labels != nil && lookup(s.Labels, "job") == "target" && s.Metric == "nv_inference_request_success" {
							return true
						}
					}
					return false
				})
				t.Logf("%s: %d samples arrived over HTTPS", tc.name, len(got))
				return
			}
			// Refused: Prometheus keeps trying (each scrape's batch) and
			// is refused each time; afterwards the topic is still empty.
			waitFor(t, 90*time.Second, "Prometheus' log shows the refusal "+tc.logWant, func() bool {
				b, _ := os.ReadFile(plog)
				return strings.Contains(string(b), tc.logWant) && len(srv.timestamps()) >= 3
			})
			if tc.logWant == "401" {
				waitFor(t, 30*time.Second, "ingest counts 401 answers", func() bool {
					return gatheredCounterLabelOf(t, u, "ebbflow_ingest_remote_write_requests_total", "code", "401") >= 2
				})
			}
			if tc.logWant != "401" {
				waitFor(t, 30*time.Second, "ingest counts failed TLS handshakes", func() bool {
					return gatheredCounterLabelOf(t, u, "ebbflow_ingest_tls_handshake_failures_total", "", "") >= 2
				})
			}
			if n := gatheredCounterLabelOf(t, u, "ebbflow_ingest_remote_write_requests_total", "code", "204"); n != 0 {
				t.Errorf("%v requests answered 204", n)
			}
			if n := topicRecords(t, u.kc.Brokers, u.topic); n != 0 {
				t.Errorf("topic %s holds %d records after refused requests", u.topic, n)
			}
			b, _ := os.ReadFile(plog)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, tc.logWant) {
					t.Logf("prometheus: %.300s", line)
					break
				}
			}
		})
	}
}

// TestIngestPublishesOverKafkaSCRAM: ingest's transactional producer
// reaches the real broker's SASL_SSL listener with the kafka section's TLS
// and SCRAM-SHA-512 settings: a remote_write request is answered 204 only
// once its samples are committed, and a read_committed consumer (same
// settings) reads them back.
func TestIngestPublishesOverKafkaSCRAM(t *testing.T) {
	kc := kafkax.DefaultConfig()
	kc.Brokers = []string{requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_BROKERS")}
	kc.TLS.Enabled = true
	kc.TLS.CAFile = requireEnv(t, "EBBFLOW_TEST_KAFKA_CA")
	kc.SASL = kafkax.SASLConfig{Mechanism: sarama.SASLTypeSCRAMSHA512,
		Username: requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_USER"), Password: requireEnv(t, "EBBFLOW_TEST_KAFKA_SASL_PASSWORD")}
	kc.TopicPrefix = fmt.Sprintf("ingestscram%d", time.Now().UnixNano())
	kc.Partitions = 2
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	if err := kafkax.EnsureTopics(context.Background(), kc, topic); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.RemoteWrite.Listen = "127.0.0.1:0"
	cfg.Unmatched = UnmatchedForward
	cfg.Publish.TransactionalID = "ingest-it-" + kc.TopicPrefix
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Deps{Kafka: kc, Registerer: prometheus.NewRegistry(), Cluster: "c1",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnListen: func(a string) { addr <- a }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingest.Run: %v", err)
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + cfg.RemoteWrite.Path
	case err := <-done:
		t.Fatalf("ingest.Run: %v", err)
	}
	series := genSeries(20, 5, time.Now().UnixMilli())
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappyBody(AppendWriteRequestV1(nil, series))))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("remote_write answered %d, want 204 (committed over SASL_SSL)", resp.StatusCode)
	}
	want := 0
	for _, s := range series {
		want += len(s.Samples)
	}
	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	cons, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatalf("consumer over SASL_SSL: %v", err)
	}
	defer cons.Close()
	msgs := make(chan *sarama.ConsumerMessage, 256)
	for _, p := range []int32{0, 1} {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				msgs <- m
			}
		}()
	}
	var got []schemas.RawSample
	deadline := time.After(60 * time.Second)
	for len(got) < want {
		select {
		case m := <-msgs:
			if got, err = schemas.DecodeRaw(got, m.Value); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("read %d of %d samples back over SASL_SSL", len(got), want)
		}
	}
	t.Logf("%d samples written and read back over TLS + SCRAM-SHA-512", len(got))
}
