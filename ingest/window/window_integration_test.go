//go:build integration

package window

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/history/crashpoint"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// childEnv carries the processor configuration to a re-executed test binary.
const childEnv = "EBBFLOW_WINDOW_CHILD"

type childSpec struct {
	Brokers  []string        `json:"brokers"`
	Prefix   string          `json:"prefix"`
	Group    string          `json:"group"`
	NameNode string          `json:"namenode"`
	Root     string          `json:"root"`
	Sizes    []time.Duration `json:"sizes"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild runs the window processor as a separate process, as production
// does, so the parent can SIGKILL it at a crash point and restart it.
func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fsys, err := history.Open(ctx, history.Config{Backend: history.BackendHDFS, Root: s.Root, NameNodes: []string{s.NameNode}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer history.Close(fsys)
	kc := childKafka(s)
	cfg := integrationConfig(s)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := Run(ctx, cfg, Deps{Kafka: kc, History: fsys, HistoryRoot: s.Root, Logger: log, Source: "/ebbflow/window/itest"}); err != nil {
		fmt.Fprintln(os.Stderr, "window.Run:", err)
		return 1
	}
	return 0
}

func childKafka(s childSpec) kafkax.Config {
	kc := kafkax.DefaultConfig()
	kc.Brokers = s.Brokers
	kc.TopicPrefix = s.Prefix
	kc.Partitions = 3
	return kc
}

func integrationConfig(s childSpec) Config {
	cfg := DefaultConfig()
	cfg.Group = s.Group
	cfg.Sizes = s.Sizes
	cfg.CommitInterval = 200 * time.Millisecond
	cfg.MaxBatchRecords = 7
	cfg.IdleTimeout = 0 // the test closes windows with data, never the wall clock
	return cfg
}

type env struct {
	brokers  []string
	namenode string
	python   string
}

func realEnv(t *testing.T, needPython bool) env {
	t.Helper()
	var e env
	b := os.Getenv("EBBFLOW_TEST_KAFKA_BROKERS")
	if b == "" {
		t.Fatal("EBBFLOW_TEST_KAFKA_BROKERS is not set: run `make test` (deploy/dev/services.sh up writes .dev/services.env)")
	}
	e.brokers = strings.Split(b, ",")
	e.namenode = os.Getenv("EBBFLOW_TEST_HDFS_NAMENODE")
	if e.namenode == "" {
		t.Fatal("EBBFLOW_TEST_HDFS_NAMENODE is not set: run `make test`")
	}
	e.python = os.Getenv("EBBFLOW_TEST_PYTHON")
	if needPython && e.python == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: run `make test` (the venv with pyarrow)")
	}
	return e
}

type child struct {
	cmd    *exec.Cmd
	stderr *logBuffer
	done   chan error
}

// logBuffer is a child's output, read while the child writes it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLog waits (generously: the machine may be loaded) until the child
// has logged substr.
func (c *child) waitLog(t *testing.T, substr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(c.stderr.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("the processor did not log %q within 2m; log:\n%s", substr, c.stderr)
		}
		select {
		case err := <-c.done:
			t.Fatalf("the processor exited (%v) before logging %q; log:\n%s", err, substr, c.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func startChild(t *testing.T, s childSpec, crash string) *child {
	t.Helper()
	spec, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	if crash != "" {
		cmd.Env = append(cmd.Env, crashpoint.EnvVar+"="+crash)
	}
	buf := &logBuffer{}
	cmd.Stderr = buf
	cmd.Stdout = buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: buf, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() { c.cmd.Process.Kill() })
	return c
}

// waitKilled waits for the child to reach its crash point and die by SIGKILL.
func (c *child) waitKilled(t *testing.T, point string) {
	t.Helper()
	select {
	case err := <-c.done:
		ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("crash point %s: the processor ended with %v, not SIGKILL; its log:\n%s", point, err, c.stderr)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("crash point %s never reached; log:\n%s", point, c.stderr)
	}
}

func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("processor exited with %v; log:\n%s", err, c.stderr)
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		t.Fatalf("processor did not stop on SIGTERM; log:\n%s", c.stderr)
	}
}

// closingStream is simpleStream plus, per entity, one record far ahead that
// closes every earlier window (and beyond the allowed lateness of all).
func closingStream(entities, steps int) (recs [][]schemas.RawSample, closedBefore int64) {
	recs = simpleStream(entities, steps)
	closedBefore = t0 + int64(steps)*15_000 + 10*60_000
	for e := 0; e < entities; e++ {
		ent := fmt.Sprintf("svc/c1/ns/app%d", e)
		recs = append(recs, []schemas.RawSample{gauge(ent, "closer", closedBefore+30*60_000, 0)})
	}
	return recs, closedBefore
}

func expectedClosed(t *testing.T, cfg Config, recs [][]schemas.RawSample, before int64) map[string]schemas.Window {
	out := map[string]schemas.Window{}
	for k, w := range expected(t, cfg.Settings(), recs) {
		if k.start < before {
			out[fmt.Sprintf("%s|%s|%d|%d", w.Entity, w.Signal, w.SizeS, w.StartMs)] = w
		}
	}
	return out
}

func keyOf(w schemas.Window) string {
	return fmt.Sprintf("%s|%s|%d|%d", w.Entity, w.Signal, w.SizeS, w.StartMs)
}

// verifyExactlyOnce checks the windows topic (read_committed) and the HDFS
// history: every expected window once, with the expected values.
func verifyExactlyOnce(t *testing.T, s childSpec, fsys history.FS, want map[string]schemas.Window) {
	t.Helper()
	kc := childKafka(s)
	msgs := readTopic(t, kc, schemas.TopicMetricsWindows, len(want), 60*time.Second)
	got := decodeWindows(t, msgs)
	checkOnce(t, "metrics.windows", got, want)

	files, err := history.ListFiles(context.Background(), fsys, s.Root, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var rows []schemas.Window
	for _, f := range files {
		ws, err := history.ReadFile(context.Background(), fsys, f)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, ws...)
	}
	checkOnce(t, "HDFS history", rows, want)
	hist, err := history.ReadWindows(context.Background(), fsys, s.Root, history.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(want) {
		t.Fatalf("ReadWindows: %d windows, want %d", len(hist), len(want))
	}
}

func checkOnce(t *testing.T, where string, got []schemas.Window, want map[string]schemas.Window) {
	t.Helper()
	seen := map[string]int{}
	for _, w := range got {
		seen[w.EventID()]++
		if seen[w.EventID()] > 1 {
			t.Fatalf("%s: window %s appears twice", where, w.EventID())
		}
		x, ok := want[keyOf(w)]
		if !ok {
			t.Fatalf("%s: unexpected window %s", where, w.EventID())
		}
		x.Revision = w.Revision
		if !sameValues(x, w) {
			t.Fatalf("%s: window %s:\n got %+v\nwant %+v", where, w.EventID(), w, x)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d windows, want %d (no revisions expected in this stream)", where, len(got), len(want))
	}
}

func newSpec(t *testing.T, e env, name string) (childSpec, *history.HDFS) {
	t.Helper()
	id := fmt.Sprintf("%s%d", name, time.Now().UnixNano())
	s := childSpec{Brokers: e.brokers, Prefix: "it" + id, Group: "g" + id, NameNode: e.namenode,
		Root: "/ebbflow-test/" + id, Sizes: []time.Duration{15 * time.Second, 60 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := history.OpenHDFS(ctx, []string{e.namenode}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			_ = h.Client().RemoveAll(s.Root)
		}
		h.Close()
	})
	if err := kafkax.EnsureTopics(ctx, childKafka(s), childKafka(s).Topics().All()...); err != nil {
		t.Fatal(err)
	}
	return s, h
}

// TestCrashPointsExactlyOnce kills the processor with SIGKILL at each crash
// point in turn, restarts it, and proves that Kafka (read_committed) and the
// HDFS history hold every window exactly once with the right values; then
// pyarrow reads the history and recomputes the aggregates from the raw input.
func TestCrashPointsExactlyOnce(t *testing.T) {
	if !crashpoint.Enabled {
		t.Fatal("crash points are not compiled in: run with go test -tags 'integration crashpoints' (make test does)")
	}
	e := realEnv(t, true)
	s, h := newSpec(t, e, "crash")
	recs, before := closingStream(4, 60)
	produceRaw(t, childKafka(s), recs)
	for _, point := range []string{
		crashpoint.MidWindow + ":25",
		crashpoint.MidTransaction + ":2",
		crashpoint.AfterWriteBeforeRename + ":2",
		crashpoint.AfterRenameBeforeCommit + ":2",
		crashpoint.MidWindow + ":30",
		crashpoint.AfterRenameBeforeCommit + ":3",
	} {
		c := startChild(t, s, point)
		c.waitKilled(t, point)
		t.Logf("killed at %s", point)
	}
	c := startChild(t, s, "")
	want := expectedClosed(t, integrationConfig(s), recs, before)
	verifyExactlyOnce(t, s, h, want)
	c.stop(t)
	if !strings.Contains(c.stderr.String(), "rebuild_records") {
		t.Fatalf("the last run did not restore committed state; log:\n%s", c.stderr)
	}

	// pyarrow recomputes every aggregate from the raw samples, independently.
	local := t.TempDir()
	files, err := history.ListFiles(context.Background(), h, s.Root, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f, s.Root+"/")
		dst := filepath.Join(local, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := h.Client().CopyToLocal(f, dst); err != nil {
			t.Fatalf("copy %s from HDFS: %v", f, err)
		}
	}
	runPythonCheck(t, e.python, local, recs, integrationConfig(s), before)
}

// runPythonCheck writes the raw input as JSON lines and has pyarrow compare
// the Hive-partitioned history with its own aggregation of it.
func runPythonCheck(t *testing.T, python, historyDir string, recs [][]schemas.RawSample, cfg Config, before int64) {
	t.Helper()
	rawPath := filepath.Join(t.TempDir(), "raw.jsonl")
	var b bytes.Buffer
	for _, r := range recs {
		for _, s := range r {
			if math.IsNaN(s.Value) {
				continue
			}
			labels := map[string]string{}
			for _, l := range s.Labels {
				labels[l.Name] = l.Value
			}
			line, _ := json.Marshal(map[string]any{"entity": s.Entity, "signal": s.Signal, "kind": s.Kind, "metric": s.Metric,
				"labels": labels, "ts": s.TimestampMs, "value": s.Value})
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	if err := os.WriteFile(rawPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var sizes []string
	for _, d := range cfg.Sizes {
		sizes = append(sizes, fmt.Sprint(int64(d.Seconds())))
	}
	cmd := exec.Command(python, "testdata/check_history.py",
		"--history", historyDir, "--raw", rawPath, "--sizes", strings.Join(sizes, ","),
		"--staleness-ms", fmt.Sprint(cfg.Staleness.Milliseconds()), "--before-ms", fmt.Sprint(before),
		"--accuracy", fmt.Sprint(cfg.SketchAccuracy))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow check failed: %v\n%s", err, out)
	}
	t.Logf("pyarrow: %s", bytes.TrimSpace(out))
}

// TestRebalanceTwoProcessors runs two processors in one group: the second
// joins mid-stream (a cooperative-sticky rebalance moves partitions to it),
// then the first is SIGKILLed; every window still appears exactly once.
func TestRebalanceTwoProcessors(t *testing.T) {
	e := realEnv(t, false)
	s, h := newSpec(t, e, "rebal")
	recs, before := closingStream(6, 60)
	half := len(recs) / 2
	kc := childKafka(s)
	a := startChild(t, s, "")
	produceRaw(t, kc, recs[:half])
	a.waitLog(t, "partition assigned")
	b := startChild(t, s, "")
	// The rebalance completes and b owns partitions.
	b.waitLog(t, "partition assigned")
	produceRaw(t, kc, recs[half:])
	// a dies while it may still hold unprocessed records of the second
	// half; b takes over its partitions and exactly-once must hold.
	a.cmd.Process.Kill()
	<-a.done
	want := expectedClosed(t, integrationConfig(s), recs, before)
	verifyExactlyOnce(t, s, h, want)
	b.stop(t)
	if !strings.Contains(b.stderr.String(), "partition assigned") {
		t.Fatalf("the second processor never got a partition; log:\n%s", b.stderr)
	}
	_ = path.Join
}
