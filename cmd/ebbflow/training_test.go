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
	var r struct {
		Ebbflow struct {
			Utilisation float64 `json:"gpu_allocation_utilisation"`
		} `json:"ebbflow"`
		FIFO struct {
			Utilisation float64 `json:"gpu_allocation_utilisation"`
		} `json:"fifo_static_quotas"`
		Ratio float64 `json:"utilisation_ratio"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Ebbflow.Utilisation <= 0 || r.FIFO.Utilisation <= 0 || r.Ratio != r.Ebbflow.Utilisation/r.FIFO.Utilisation {
		t.Errorf("report %+v", r)
	}
	if _, err := runRoot(t, "training", "backtest"); err == nil || !strings.Contains(err.Error(), "--trace") {
		t.Errorf("missing --trace: %v", err)
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
