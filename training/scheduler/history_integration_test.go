//go:build integration

package scheduler

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestSizingFromSeededHDFSHistory seeds a family's runs into the real HDFS
// the test services run and sizes a job from them.
func TestSizingFromSeededHDFSHistory(t *testing.T) {
	nn := os.Getenv("EBBFLOW_TEST_HDFS_NAMENODE")
	if nn == "" {
		t.Fatal("EBBFLOW_TEST_HDFS_NAMENODE is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fsys, err := history.Open(ctx, history.Config{Backend: history.BackendHDFS, Root: "/", NameNodes: []string{nn}})
	if err != nil {
		t.Fatal(err)
	}
	h := fsys.(*history.HDFS)
	root := fmt.Sprintf("/ebbflow-test/training-%d", time.Now().UnixNano())
	t.Cleanup(func() { _ = h.Client().RemoveAll(root); h.Close() })

	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ent := func(w string) string { return schemas.ServiceEntity("c1", "research", w) }
	var ws []schemas.Window
	// Three runs of 8 GPUs at 20 %, 25 %, 30 %: busy = 0.25 × 8 = 2; peak
	// memory 20 GiB per GPU × 8 = 160 GiB ÷ (0.9 × 80 GiB) = 2.22 → 3 GPUs.
	for i, util := range []float64{20, 25, 30} {
		ws = append(ws, seedRun(now.Add(-time.Duration(12-3*i)*time.Hour), ent(fmt.Sprintf("gpt-2026112900000%d", i)), 20, 8, util, 20480, 2)...)
	}
	if _, err := history.WriteWindows(ctx, fsys, root, ws, "part-0.parquet"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	runs, err := ReadFamilyRuns(ctx, fsys, root, cfg.Sizing, FamilyRunsQuery{Cluster: "c1", Namespace: "research", Family: "gpt", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runs))
	}
	a100, _ := cfg.GPUModel("a100")
	s := Size(cfg.Sizing, a100, 8, 16, runs)
	if s.GPUs != 3 || !s.FromHistory {
		t.Fatalf("sized %d GPUs, want 3: %s", s.GPUs, s.Formula)
	}
	// cpu alternates 2 and 3 cores: request 2.5 × 1.5 = 3.75, limit 3 × 1.5 = 4.5.
	if s.CPURequest != 3.75 || s.CPULimit != 4.5 {
		t.Errorf("cpu request %v limit %v", s.CPURequest, s.CPULimit)
	}
}
