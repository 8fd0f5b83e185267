package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	out, err := runRoot(t, "training", "backtest", "--trace", "../../../shared/traces/philly_node_sequence.csv", "--json",
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
