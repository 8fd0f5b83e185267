//go:build integration

package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func requireEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the integration tests through `make test`, or `deploy/dev/services.sh up && source .dev/services.env`", name)
	}
	return v
}

// exposedSeries is what the test target exposes: fixed label sets whose
// values change every scrape, each with an explicit timestamp, so that
// every sample Prometheus forwards can be compared exactly.
var exposedSeries = []struct{ name, labels string }{
	{"nv_inference_request_success", `model="resnet50",version="1",namespace="prod",pod="resnet-7d9f8c6b5d-x2k4q"`},
	{"nv_inference_request_failure", `model="resnet50",version="1",namespace="prod",pod="resnet-7d9f8c6b5d-x2k4q"`},
	{"nv_inference_request_duration_us", `model="resnet50",version="1",namespace="prod",pod="resnet-7d9f8c6b5d-x2k4q"`},
	{"container_memory_working_set_bytes", `container="triton",namespace="prod",pod="resnet-7d9f8c6b5d-x2k4q"`},
	{"DCGM_FI_DEV_GPU_UTIL", `gpu="0",Hostname="gpu-node-1",UUID="GPU-1",container="triton",namespace="prod",pod="resnet-7d9f8c6b5d-x2k4q"`},
	{"kube_deployment_status_replicas_available", `namespace="prod",deployment="resnet"`},
	{"app_unmapped_total", `path="/x y",quote="a\"b"`},
}

// served records every (timestamp, value) the target exposed.
type served struct {
	mu   sync.Mutex
	last int64
	ts   []int64
}

func (s *served) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		ts := time.Now().UnixMilli()
		if ts <= s.last {
			ts = s.last + 1
		}
		s.last = ts
		s.ts = append(s.ts, ts)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for i, e := range exposedSeries {
			fmt.Fprintf(w, "%s{%s} %s %d\n", e.name, e.labels, formatFloat(exposedValue(i, ts)), ts)
		}
	})
}

func (s *served) timestamps() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.ts...)
}

// exposedValue is a deterministic, non-round value per series and scrape.
func exposedValue(i int, ts int64) float64 { return float64(ts%100000)*1.25 + float64(i) + 0.1 }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs the real Prometheus scraping target every second
// and remote-writing to url; it is stopped when the test ends.
func startPrometheus(t *testing.T, target, url string) {
	t.Helper()
	startPrometheusWith(t, target, url, "")
}

// startPrometheusWith is startPrometheus with extra remote_write settings
// (rwExtra, YAML indented for the remote_write entry: basic_auth,
// authorization, tls_config); it returns the path of Prometheus' log.
func startPrometheusWith(t *testing.T, target, url, rwExtra string) string {
	t.Helper()
	bin := requireEnv(t, "EBBFLOW_TEST_PROMETHEUS")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: target
    honor_labels: true
    honor_timestamps: true
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
    remote_timeout: 10s
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
      min_shards: 1
      max_shards: 2
      max_samples_per_send: 100
%s`, target, url, rwExtra)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	runPrometheus(t, bin, dir, "prometheus", 10*time.Second)
	return filepath.Join(dir, "prometheus.log")
}

type ingestUnderTest struct {
	url    string
	reg    *prometheus.Registry
	kc     kafkax.Config
	topic  string
	cancel context.CancelFunc
	done   chan error
}

func startIngest(t *testing.T, deps Deps, mutate func(*Config)) *ingestUnderTest {
	t.Helper()
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(requireEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	kc.TopicPrefix = fmt.Sprintf("ingesttest%d", time.Now().UnixNano())
	kc.Partitions = 4
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	if err := kafkax.EnsureTopics(context.Background(), kc, topic); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.RemoteWrite.Listen = "127.0.0.1:0"
	cfg.Unmatched = UnmatchedForward
	cfg.Publish.TransactionalID = "ingest-it-" + kc.TopicPrefix
	if mutate != nil {
		mutate(&cfg)
	}
	u := &ingestUnderTest{reg: prometheus.NewRegistry(), kc: kc, topic: topic, done: make(chan error, 1)}
	deps.Kafka, deps.Registerer, deps.Cluster = kc, u.reg, "c1"
	deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		deps.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	addr := make(chan string, 1)
	deps.OnListen = func(a string) { addr <- a }
	var ctx context.Context
	ctx, u.cancel = context.WithCancel(context.Background())
	go func() { u.done <- Run(ctx, cfg, deps) }()
	select {
	case a := <-addr:
		u.url = "http://" + a + cfg.RemoteWrite.Path
	case err := <-u.done:
		t.Fatalf("ingest.Run: %v", err)
	}
	t.Cleanup(func() {
		u.cancel()
		if err := <-u.done; err != nil {
			t.Errorf("ingest.Run: %v", err)
		}
	})
	return u
}

// expectedRaw lists what ingest must publish for the given scrape
// timestamps: every exposed series, forwarded or mapped, with Prometheus'
// job and instance labels.
func expectedKeys(t *testing.T, tss []int64, instance string) map[string]bool {
	t.Helper()
	mp, err := NewMapper(DefaultRules(), "c1", UnmatchedForward)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	var body strings.Builder
	for _, ts := range tss {
		body.Reset()
		for i, e := range exposedSeries {
			fmt.Fprintf(&body, "%s{%s} %s %d\n", e.name, e.labels, formatFloat(exposedValue(i, ts)), ts)
		}
		series, err := ParseExposition([]byte(body.String()), "", map[string]string{"job": "target", "instance": instance}, true, ts)
		if err != nil {
			t.Fatal(err)
		}
		b := NewBatch()
		for _, s := range series {
			mp.Map(b, s.Labels, s.Samples)
		}
		for _, g := range b.Groups {
			for _, s := range g.Samples {
				if s.Kind == KindGauge && strings.HasPrefix(s.Metric, "ebbflow:") {
					continue // derived ratios depend on which scrapes pair up
				}
				want[rawKey(s)] = true
			}
		}
	}
	return want
}

// TestPrometheusRemoteWriteToKafka: a real Prometheus scrapes a target and
// remote-writes to ingest; what arrives in the real Kafka, decoded, is
// exactly what the target exposed (names, labels, values, timestamps),
// once each.
// TestPrometheusRemoteWrite1Metadata: a real Prometheus sending
// remote_write 1.0 with metadata every second delivers the # TYPE and
// # HELP of a text-format target to <prefix>.metrics.metadata.v1
// (source rw1), each family written once although it is sent repeatedly.
func TestPrometheusRemoteWrite1Metadata(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# HELP rw1_jobs_total Jobs done.\n# TYPE rw1_jobs_total counter\nrw1_jobs_total 7\n"+
			"# HELP rw1_queue_depth Items waiting.\n# TYPE rw1_queue_depth gauge\nrw1_queue_depth 3\n")
	}))
	defer target.Close()
	u := startIngest(t, Deps{}, nil)
	startPrometheusWith(t, strings.TrimPrefix(target.URL, "http://"), u.url, "    metadata_config:\n      send_interval: 1s\n")
	checkMetadataTopic(t, u, "rw1_", map[string]schemas.MetricMetadata{
		"rw1_jobs_total":  {Metric: "rw1_jobs_total", Type: "counter", Help: "Jobs done.", Source: schemas.MetadataSourceRW1},
		"rw1_queue_depth": {Metric: "rw1_queue_depth", Type: "gauge", Help: "Items waiting.", Source: schemas.MetadataSourceRW1},
	})
}

func TestPrometheusRemoteWriteToKafka(t *testing.T) {
	srv := &served{}
	target := httptest.NewServer(srv.handler())
	defer target.Close()
	u := startIngest(t, Deps{}, nil)
	instance := strings.TrimPrefix(target.URL, "http://")
	startPrometheus(t, instance, u.url)

	// Compare the first five scrapes in full.
	var tss []int64
	deadline := time.Now().Add(3 * time.Minute)
	for len(tss) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus scraped the target %d times in 3m", len(tss))
		}
		time.Sleep(200 * time.Millisecond)
		tss = srv.timestamps()
	}
	tss = tss[:5]
	want := expectedKeys(t, tss, instance)
	inRange := func(s schemas.RawSample) bool { return s.TimestampMs >= tss[0] && s.TimestampMs <= tss[len(tss)-1] }
	got := consumeRaw(t, u.kc.Brokers, u.topic, func(have []schemas.RawSample) bool { return containsAll(have, want) })
	counts := map[string]int{}
	for _, s := range got {
		if inRange(s) && s.Labels != nil && lookup(s.Labels, "job") == "target" && !strings.HasPrefix(s.Metric, "ebbflow:") &&
			s.Metric != "up" && !strings.HasPrefix(s.Metric, "scrape_") {
			counts[rawKey(s)]++
		}
	}
	for k := range want {
		if counts[k] != 1 {
			t.Errorf("expected sample in Kafka %d times, want once: %s", counts[k], k)
		}
	}
	for k, n := range counts {
		if !want[k] {
			t.Errorf("unexpected sample in Kafka (%d times): %s", n, k)
		}
	}
	t.Logf("compared %d samples from %d scrapes", len(want), len(tss))
	// Mapping happened on the way: the Triton counter is the service's qps.
	found := false
	for _, s := range got {
		if s.Entity == "svc/c1/prod/resnet" && s.Signal == "qps" && s.Kind == KindCounter {
			found = true
		}
	}
	if !found {
		t.Error("no qps sample for svc/c1/prod/resnet")
	}
}

// containsAll reports whether have holds every key of want at least once.
func containsAll(have []schemas.RawSample, want map[string]bool) bool {
	seen := map[string]bool{}
	for _, s := range have {
		if k := rawKey(s); want[k] {
			seen[k] = true
		}
	}
	return len(seen) == len(want)
}

// runPrometheus starts the Prometheus binary bin on dir/prometheus.yml
// (its TSDB in dir/data, its log in dir/prometheus.log, the web listener
// on a free port, extra flags after) and stops it when the test ends: an
// interrupt, a kill after grace. The log is printed when the test failed.
func runPrometheus(t *testing.T, bin, dir, name string, grace time.Duration, flags ...string) {
	t.Helper()
	args := append([]string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", freePort(t)), "--log.level=warn"}, flags...)
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("%s log:\n%s", name, b)
		}
	})
}
