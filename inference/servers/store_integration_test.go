//go:build integration

package servers

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)", name)
	}
	return v
}

func hdfsPut(t *testing.T, fsys history.FS, p string, b []byte) {
	t.Helper()
	w, err := fsys.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestModelStoreOnHDFSToKafka: a spec file put in a model store on a real
// HDFS namenode becomes a launch decision on a real Kafka decisions topic
// (schema-valid, CloudEvents headers, keyed by target), its removal a
// retire; and `inference fetch` copies the model files out of HDFS.
func TestModelStoreOnHDFSToKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fsys, err := history.OpenHDFS(ctx, []string{env(t, "EBBFLOW_TEST_HDFS_NAMENODE")}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer history.Close(fsys)
	run := fmt.Sprintf("servers-it-%d", time.Now().UnixNano())
	store := "/" + run + "/models"
	modelDir := "/" + run + "/files/resnet50/3"
	for _, d := range []string{store, modelDir} {
		if err := fsys.MkdirAll(d); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := os.ReadFile(filepath.Join("testdata", "resnet50-int8.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec = []byte(strings.Replace(string(spec), "model_uri: hdfs://namenode:8020/models/resnet50/3",
		"model_uri: hdfs://"+env(t, "EBBFLOW_TEST_HDFS_NAMENODE")+modelDir, 1))
	hdfsPut(t, fsys, path.Join(store, "resnet50.yaml"), spec)
	hdfsPut(t, fsys, path.Join(modelDir, "model.onnx"), []byte("onnx bytes"))
	hdfsPut(t, fsys, path.Join(modelDir, "calibration.flatbuffers"), []byte("table"))

	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(env(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	kc.TopicPrefix = run
	cfg := DefaultConfig()
	cfg.StoreDir = store
	pub, err := NewKafkaPublisher(kc, cfg.Source, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	l, err := NewLoop(cfg, Deps{Store: fsys, Publisher: pub, Cluster: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(path.Join(store, "resnet50.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}

	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	consumer, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	topic := kc.Topics().Name(schemas.TopicDecisions)
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []schemas.InferenceDecision
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		hw := pc.HighWaterMarkOffset()
		for off := int64(0); off < hw; {
			select {
			case m := <-pc.Messages():
				off = m.Offset + 1
				if ct := kafkax.HeaderValue(m.Headers, schemas.HeaderType); ct != "io.ebbflow.decision.inference.v1" {
					t.Errorf("ce_type %q", ct)
				}
				d, err := schemas.Decode[schemas.InferenceDecision](m.Value)
				if err != nil {
					t.Fatal(err)
				}
				if string(m.Key) != d.Target.Key() {
					t.Errorf("key %q, want %q", m.Key, d.Target.Key())
				}
				got = append(got, d)
			case <-ctx.Done():
				t.Fatal("timed out consuming decisions")
			}
		}
		pc.Close()
	}
	if len(got) != 2 || got[0].Action != schemas.InferenceLaunch || got[1].Action != schemas.InferenceRetire ||
		got[0].Spec != string(spec) || got[0].Reason.StorePath != path.Join(store, "resnet50.yaml") {
		t.Fatalf("decisions on Kafka: %+v", got)
	}

	// The init container's copy, out of HDFS.
	to := filepath.Join(t.TempDir(), "resnet50", "3")
	s, _ := ParseBytes(spec)
	files, err := Fetch(ctx, s.ModelURI, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("fetched %v", files)
	}
	f, err := os.Open(filepath.Join(to, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if string(b) != "onnx bytes" {
		t.Fatalf("model.onnx = %q", b)
	}
}
