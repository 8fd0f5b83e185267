package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/backtest"
	"github.com/ebbflow/ebbflow/training/kueue"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestTrainingSubmitDryRun(t *testing.T) {
	hist := t.TempDir() // empty history: the request is taken as submitted
	out, err := runRoot(t, "training", "submit", "--dry-run", "--set", "history.root="+hist, "../../training/scheduler/testdata/job.yaml")
	if err != nil {
		t.Fatal(err, out)
	}
	for _, want := range []string{"kind: Job", "suspend: true", "kueue.x-k8s.io/queue-name: training", "nvidia.com/gpu: \"8\"",
		"no history: GPUs = requested 8", `"action":"launch"`, `"dry_run":true`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTrainingSubmitNamesTheBadField(t *testing.T) {
	good, err := os.ReadFile("../../training/scheduler/testdata/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, bytes.Replace(good, []byte("department: research"), []byte("department: physics"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runRoot(t, "training", "submit", "--dry-run", bad)
	if err == nil || !strings.Contains(err.Error(), "line 1: department: unknown department \"physics\"") {
		t.Fatalf("error %v", err)
	}
}

func TestTrainingBacktestJSON(t *testing.T) {
	out, err := runRoot(t, "training", "backtest", "--trace", sharedTrace(t, "philly_node_sequence.csv"), "--json",
		"--minutes", "2880", "--warmup-minutes", "720")
	if err != nil {
		t.Fatal(err, out)
	}
	type metrics struct {
		Policy    string  `json:"policy"`
		AllocUtil float64 `json:"gpu_allocation_utilisation"`
		Used      float64 `json:"gpu_used_share"`
	}
	var r struct {
		Reports []struct {
			Trace   string  `json:"trace"`
			Ebbflow metrics `json:"ebbflow"`
			FIFO    metrics `json:"fifo_static_quotas"`
			Oracle  metrics `json:"ebbflow_oracle_sizing"`
			Ratio   float64 `json:"gpu_allocation_utilisation_ratio"`
		} `json:"reports"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(r.Reports) != 1 {
		t.Fatalf("%d reports for one --trace: %s", len(r.Reports), out)
	}
	rep := r.Reports[0]
	if rep.Trace != "philly_node_sequence.csv" || rep.Ebbflow.AllocUtil <= 0 || rep.FIFO.AllocUtil <= 0 || rep.Oracle.Policy != "ebbflow_oracle_sizing" ||
		rep.Ratio != rep.Ebbflow.AllocUtil/rep.FIFO.AllocUtil {
		t.Errorf("report %+v", rep)
	}
}

// Without --trace the backtest runs on every shared trace that records
// allocations, one table each with the three policies, and names the
// traces it skips.
func TestTrainingBacktestEverySharedTrace(t *testing.T) {
	out, err := runRoot(t, "training", "backtest", "--minutes", "1440", "--warmup-minutes", "360")
	if err != nil {
		t.Fatal(err, out)
	}
	for _, st := range backtest.SharedTraces() {
		want := st.File + " ("
		if st.Skip != "" {
			want = "skipped " + st.File + ": " + st.Skip
		}
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"ebbflow ", "fifo_static_quotas ", "ebbflow_oracle_sizing ", "USED/ALLOC", "target "} {
		if strings.Count(out, want) < 2 {
			t.Errorf("output has %q fewer than twice (once per replayed trace):\n%s", want, out)
		}
	}
}

func TestPrintQueueShowsTermsAndWhy(t *testing.T) {
	cfg := scheduler.DefaultConfig()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	wls := []kueue.Workload{
		{Name: "wl-1", Namespace: "research", Job: "bert-1", Department: "research", Model: "a100", GPUs: 4, Priority: 1_000_300,
			Submitted: now.Add(-30 * time.Minute), Score: &schemas.TrainingScore{Standing: "within_quota", UtilPenalty: 0, DeptUtil: 0.7},
			Conditions: map[string]kueue.Condition{"QuotaReserved": {Type: "QuotaReserved", Status: "False", Reason: "Pending",
				Message: "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor a100, 4 more needed"}}},
		{Name: "wl-2", Namespace: "product", Job: "gpt-1", Department: "product", Flavor: "v100", GPUs: 2, Priority: 1_100_001,
			Conditions: map[string]kueue.Condition{"QuotaReserved": {Type: "QuotaReserved", Status: "True"}}},
	}
	var b bytes.Buffer
	printQueue(&b, cfg, wls, now)
	out := b.String()
	for _, want := range []string{"bert-1", "waiting", "1000000 (within_quota base) + 300 (waited 30 min)", "insufficient unused quota", "gpt-1", "admitted"} {
		if !strings.Contains(out, want) {
			t.Errorf("queue output lacks %q:\n%s", want, out)
		}
	}
}

// The shipped Kueue examples (deploy/kueue/kueue.yaml) are exactly what
// `ebbflow training setup --dry-run` renders for deploy/kueue/ebbflow.yaml,
// comment lines at the top of the file aside; and the set-up reclaims
// within the cohort from lower priorities only.
func TestKueueExamplesAreWhatSetupRenders(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "kueue")
	cfgFile := filepath.Join(dir, "ebbflow.yaml")
	got, err := runRoot(t, "training", "setup", "--dry-run", "--config", cfgFile)
	if err != nil {
		t.Fatal(err, got)
	}
	shipped, err := os.ReadFile(filepath.Join(dir, "kueue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(shipped), "\n")
	for len(lines) > 0 && strings.HasPrefix(lines[0], "#") {
		lines = lines[1:]
	}
	if body := strings.Join(lines, ""); body != got {
		t.Fatalf("deploy/kueue/kueue.yaml differs from what training setup renders; regenerate with\n"+
			"  ebbflow training setup --dry-run --config deploy/kueue/ebbflow.yaml > deploy/kueue/kueue.yaml\n"+
			"(and keep its comment header)\nrendered:\n%s", got)
	}
	if n := strings.Count(got, "reclaimWithinCohort: LowerPriority"); n != 2 || strings.Contains(got, "reclaimWithinCohort: Any") {
		t.Errorf("%d ClusterQueues reclaim from LowerPriority, want both departments':\n%s", n, got)
	}
}
