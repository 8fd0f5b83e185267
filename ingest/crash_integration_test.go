//go:build integration && crashpoints

package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ebbflow/ebbflow/internal/history/crashpoint"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// crashChildEnv, when set, makes the test binary run ingest as a child
// process (see runCrashChild) instead of the tests.
const crashChildEnv = "EBBFLOW_INGEST_CRASH_CHILD"

type crashSpec struct {
	Brokers []string `json:"brokers"`
	Prefix  string   `json:"prefix"`
	TxnID   string   `json:"txn_id"`
	Listen  string   `json:"listen"`
	Metrics string   `json:"metrics"`
	Persist bool     `json:"persist"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		os.Exit(runCrashChild(spec))
	}
	os.Exit(m.Run())
}

// runCrashChild runs ingest as production does, in its own process, so
// the test can SIGKILL it at a crash point and start it again.
func runCrashChild(spec string) int {
	var s crashSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	kc := kafkax.DefaultConfig()
	kc.Brokers, kc.TopicPrefix, kc.Partitions = s.Brokers, s.Prefix, 4
	cfg := DefaultConfig()
	cfg.RemoteWrite.Listen = s.Listen
	cfg.Unmatched = UnmatchedForward
	cfg.Publish.TransactionalID = s.TxnID
	cfg.Publish.PersistDigests = s.Persist
	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", s.Metrics)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go http.Serve(ln, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := Run(ctx, cfg, Deps{Kafka: kc, Logger: log, Registerer: reg, Cluster: "c1"}); err != nil {
		fmt.Fprintln(os.Stderr, "ingest.Run:", err)
		return 1
	}
	return 0
}

type crashChild struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

func startCrashChild(t *testing.T, s crashSpec, crash string) *crashChild {
	t.Helper()
	spec, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(spec))
	if crash != "" {
		cmd.Env = append(cmd.Env, crashpoint.EnvVar+"="+crash)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, out: &buf, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("ingest child log:\n%s", c.out)
		}
	})
	return c
}

// childCounter reads a counter (summed over its series) from the child's
// /metrics; -1 while the child does not answer.
func childCounter(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, m := range mfs[name].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// TestCrashAfterCommitPrometheusRetries: ingest runs in its own process,
// a real Prometheus remote-writes to it, and ingest is SIGKILLed right
// after a Kafka transaction committed, before the requests in it are
// answered. Prometheus retries them against the restarted ingest. With
// publish.persist_digests (the default) the restarted ingest reloads the
// digests committed with the samples and acknowledges the retries without
// writing them: every sample the target exposed is in the real Kafka
// (read_committed) exactly once. Without it (the "memory only" case, which
// this test also runs) the same crash writes the retried samples twice:
// the scenario really exercises the gap the digests close.
func TestCrashAfterCommitPrometheusRetries(t *testing.T) {
	if !crashpoint.Enabled {
		t.Fatal("crash points are not compiled in: run with go test -tags 'integration crashpoints' (make test does)")
	}
	for _, persist := range []bool{true, false} {
		name := "persisted digests"
		if !persist {
			name = "digests in memory only"
		}
		t.Run(name, func(t *testing.T) { crashAfterCommit(t, persist) })
	}
}

func crashAfterCommit(t *testing.T, persist bool) {
	brokers := strings.Split(requireEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	kc := kafkax.DefaultConfig()
	kc.Brokers, kc.TopicPrefix, kc.Partitions = brokers, fmt.Sprintf("ingestcrash%d", time.Now().UnixNano()), 4
	topic := kc.Topics().Name("metrics.raw")
	if err := kafkax.EnsureTopics(context.Background(), kc, topic); err != nil {
		t.Fatal(err)
	}
	srv := &served{}
	target := httptest.NewServer(srv.handler())
	defer target.Close()
	spec := crashSpec{Brokers: brokers, Prefix: kc.TopicPrefix, TxnID: "ingest-crash-" + kc.TopicPrefix,
		Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Persist: persist}
	// The 6th committed transaction: Prometheus is sending by then.
	point := CrashAfterCommit + ":6"
	first := startCrashChild(t, spec, point)
	instance := strings.TrimPrefix(target.URL, "http://")
	startPrometheus(t, instance, "http://"+spec.Listen+DefaultConfig().RemoteWrite.Path)

	select {
	case err := <-first.done:
		ws, ok := first.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("ingest ended with %v, not SIGKILL at %s; its log:\n%s", err, point, first.out)
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("crash point %s never reached; ingest log:\n%s", point, first.out)
	}
	killedAt := len(srv.timestamps())
	second := startCrashChild(t, spec, "")
	waitUntil := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			select {
			case err := <-second.done:
				t.Fatalf("restarted ingest ended (%v) while waiting for %s; its log:\n%s", err, what, second.out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not happen within %v", what, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if persist {
		waitUntil("the restarted ingest reloading digests", 60*time.Second, func() bool {
			return childCounter(spec.Metrics, "ebbflow_ingest_digests_loaded_total") >= 1
		})
		// Prometheus' retry of the requests whose answer died with the
		// first process is recognised.
		waitUntil("a resend acknowledged without writing", 60*time.Second, func() bool {
			return childCounter(spec.Metrics, "ebbflow_ingest_duplicate_requests_total") >= 1
		})
	}
	waitUntil("scrapes after the restart", 90*time.Second, func() bool { return len(srv.timestamps()) >= killedAt+5 })
	waitUntil("samples acknowledged after the restart", 60*time.Second, func() bool {
		return childCounter(spec.Metrics, "ebbflow_ingest_samples_published_total") > 0
	})

	tss := srv.timestamps()[:killedAt+3]
	want := expectedKeys(t, tss, instance)
	got := consumeRaw(t, brokers, topic, func(have []schemas.RawSample) bool { return containsAll(have, want) })
	time.Sleep(2 * time.Second) // let a late duplicate arrive before counting
	n := len(got)
	got = consumeRaw(t, brokers, topic, func(have []schemas.RawSample) bool { return len(have) >= n && containsAll(have, want) })
	counts := map[string]int{}
	for _, s := range got {
		if want[rawKey(s)] {
			counts[rawKey(s)]++
		}
	}
	lost, dups := 0, 0
	for k := range want {
		switch c := counts[k]; {
		case c == 0:
			lost++
		case c > 1:
			dups++
		}
	}
	dupReqs := childCounter(spec.Metrics, "ebbflow_ingest_duplicate_requests_total")
	t.Logf("%d expected samples over %d scrapes, crash after scrape %d: %d lost, %d in Kafka more than once; restarted ingest acknowledged %v resends without writing",
		len(want), len(tss), killedAt, lost, dups, dupReqs)
	if lost > 0 {
		t.Errorf("%d samples lost", lost)
	}
	if persist && dups > 0 {
		t.Errorf("%d samples written more than once across the crash", dups)
	}
	if !persist && dups == 0 {
		t.Errorf("without persisted digests no sample was written twice: the crash did not hit a committed, unanswered request, so the test proves nothing")
	}
}
