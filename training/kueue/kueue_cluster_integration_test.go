//go:build integration

package kueue

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// trainingScope sets up real Kueue objects rendered by SetupObjects from
// quotas (department → model → GPUs) in a test scope: ResourceFlavors a100
// and t4, ClusterQueues research and product in one cohort, their
// LocalQueues in the scope's namespace, the WorkloadPriorityClass. It
// returns the client and the configuration with the scoped names.
func trainingScope(t *testing.T, s *cluster.Scope, quotas map[string]map[string]int, minRuntime time.Duration) *Client {
	t.Helper()
	base := scheduler.DefaultConfig()
	base.GPUModels = []scheduler.GPUModel{
		{Name: "a100", MemoryMiB: 81920, NodeLabelValue: cluster.GroupA100.GPUProduct},
		{Name: "t4", MemoryMiB: 16384, NodeLabelValue: cluster.GroupT4.GPUProduct},
	}
	base.Departments = []scheduler.Department{
		{Name: "research", Namespace: s.Namespace, LocalQueue: "research", Quota: quotas["research"]},
		{Name: "product", Namespace: s.Namespace, LocalQueue: "product", Quota: quotas["product"]},
	}
	base.MinRuntime = minRuntime
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	s.ApplyKueueObjects(SetupObjects(base, "64", "512Gi"))
	// The same configuration with the names ApplyKueue gave the objects.
	cfg := s.KueueConfig(base)
	c, err := NewClient(s.Dynamic, s.Kube, cfg, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// submit runs the submit path: plan against the ClusterQueues' usage,
// render, confine to the scope's nodes, create. runFor 0 runs until deleted.
func submit(t *testing.T, s *cluster.Scope, c *Client, name, dept string, gpus int, models []string, expected time.Duration, runs []scheduler.RunStats) (*batchv1.Job, scheduler.Plan) {
	t.Helper()
	ctx := s.Context()
	u, err := c.ReadUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scoped := make([]string, len(models))
	for i, m := range models {
		scoped[i] = s.KueueName(m)
	}
	spec := scheduler.JobSpec{Name: "fam-" + name, Department: s.KueueName(dept), User: "it", Family: "fam", Image: "registry.invalid/train:1",
		Command: []string{"train"}, GPUs: scheduler.GPUSpec{Count: gpus, Model: scoped[0], Fallbacks: scoped[1:]},
		CPU: "1", Memory: "1Gi", ExpectedDuration: expected}
	now := time.Now()
	p, err := scheduler.PlanSubmission(c.Cfg, "test", spec, scheduler.PlanInput{Now: now, Runs: runs, Used: u.Used[spec.Department], Free: u.Free, DeptUtil: -1})
	if err != nil {
		t.Fatal(err)
	}
	job, err := RenderJob(c.Cfg, spec, p, now)
	if err != nil {
		t.Fatal(err)
	}
	s.Confine(&job.Spec.Template.Spec)
	grace := int64(1)
	job.Spec.Template.Spec.TerminationGracePeriodSeconds = &grace
	job.Spec.Template.Labels["job"] = job.Name
	if _, err := c.Submit(ctx, job); err != nil {
		t.Fatal(err)
	}
	return job, p
}

func refresh(t *testing.T, c *Client) []schemas.TrainingDecision {
	t.Helper()
	ds, err := c.Refresh(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if _, err := schemas.Marshal(d); err != nil {
			t.Errorf("decision does not validate: %v", err)
		}
	}
	return ds
}

func admitted(w cluster.Workload) bool { return w.Admitted() }

// TestFallbackLongJobsAndSizingOnKueue: a job sized from history asks for
// what its history says; a job falls back to its second GPU model when the
// first is full; a long job lands in the fixed pool.
func TestFallbackLongJobsAndSizingOnKueue(t *testing.T) {
	s := cluster.NewScope(t)
	s.AddNodes(cluster.GroupA100, 1, cluster.NodeOptions{Pool: cluster.PoolOffline})
	fixed := s.AddNodes(cluster.GroupA100, 1, cluster.NodeOptions{Pool: cluster.PoolFixed})
	t4 := s.AddNodes(cluster.GroupT4, 1, cluster.NodeOptions{Pool: cluster.PoolOffline})
	c := trainingScope(t, s, map[string]map[string]int{"research": {"a100": 16, "t4": 4}, "product": {"a100": 0, "t4": 0}}, time.Minute)

	// Sized from history: asked for 8, three runs kept 0.3 × 8 = 2.4 GPUs busy → 3.
	runs := []scheduler.RunStats{{Run: "fam-1", EndMs: 1, GPUs: 8, GPUUtilMean: 0.3, GPUMemPeakMiB: 60_000},
		{Run: "fam-2", EndMs: 2, GPUs: 8, GPUUtilMean: 0.3, GPUMemPeakMiB: 60_000}}
	_, p := submit(t, s, c, "sized", "research", 8, []string{"a100"}, time.Hour, runs)
	if p.Choice.GPUs != 3 {
		t.Fatalf("sized to %d GPUs, want 3: %s", p.Choice.GPUs, p.Sizing.Formula)
	}
	w := s.WaitWorkload("fam-sized", 2*time.Minute, "sized job admitted", admitted)
	if got := c.Cfg.GPUModels[0].Name; w.Flavors[string(cluster.ResourceGPU)] != got {
		t.Errorf("sized job on flavor %v, want %s", w.Flavors, got)
	}
	s.WaitPodsRunning("job=fam-sized", 1, 2*time.Minute)

	// A long job fills the fixed pool's a100 node (20 h > 12 h).
	submit(t, s, c, "long", "research", 8, []string{"a100"}, 20*time.Hour, nil)
	pods := s.WaitPodsRunning("job=fam-long", 1, 2*time.Minute)
	if pods[0].Spec.NodeName != fixed[0].Name {
		t.Errorf("long job on %s, want the fixed-pool node %s", pods[0].Spec.NodeName, fixed[0].Name)
	}
	// The offline a100 node has 5 GPUs left; a100 usage is 11 of 16, so a
	// 4-GPU job still fits a100. Fill a100 up to the quota first.
	submit(t, s, c, "fill", "research", 5, []string{"a100"}, time.Hour, nil)
	s.WaitWorkload("fam-fill", 2*time.Minute, "filler admitted", admitted)
	// ClusterQueue status catches up with admissions asynchronously.
	cluster.WaitFor(t, time.Minute, "ClusterQueue reports a100 full", func(ctx context.Context) (bool, string, error) {
		u, err := c.ReadUsage(ctx)
		return err == nil && u.Free[s.KueueName("a100")] == 0, fmt.Sprintf("%+v", u), err
	})
	// a100 is full: the job prefers a100, allows t4, and falls back.
	_, p = submit(t, s, c, "fallback", "research", 4, []string{"a100", "t4"}, time.Hour, nil)
	if p.Choice.Model != s.KueueName("t4") || !p.Choice.Fallback {
		t.Fatalf("choice %+v, want t4 as a fallback", p.Choice)
	}
	w = s.WaitWorkload("fam-fallback", 2*time.Minute, "fallback job admitted", admitted)
	if w.Flavors[string(cluster.ResourceGPU)] != s.KueueName("t4") {
		t.Errorf("fallback job admitted on %v", w.Flavors)
	}
	pods = s.WaitPodsRunning("job=fam-fallback", 1, 2*time.Minute)
	if pods[0].Spec.NodeName != t4[0].Name {
		t.Errorf("fallback job on %s, want the t4 node %s", pods[0].Spec.NodeName, t4[0].Name)
	}
}

// TestQuotaOrderMinRuntimeAndReclaimOnKueue: research runs within its quota
// and borrows product's idle quota; then a research borrower and a product
// job within quota wait. While the borrowing run is younger than the minimum
// runtime, the guard keeps Kueue from reclaiming it; once it is older, Kueue
// reclaims it for product's job, which is admitted before the research
// borrower that waited longer.
func TestQuotaOrderMinRuntimeAndReclaimOnKueue(t *testing.T) {
	s := cluster.NewScope(t)
	s.AddNodes(cluster.GroupA100, 1, cluster.NodeOptions{Pool: cluster.PoolOffline})
	const minRuntime = 40 * time.Second
	c := trainingScope(t, s, map[string]map[string]int{"research": {"a100": 4, "t4": 0}, "product": {"a100": 4, "t4": 0}}, minRuntime)
	a100 := []string{"a100"}

	submit(t, s, c, "r1", "research", 4, a100, time.Hour, nil)
	s.WaitWorkload("fam-r1", 2*time.Minute, "r1 within quota admitted", admitted)
	submit(t, s, c, "r2", "research", 4, a100, time.Hour, nil)
	r2 := s.WaitWorkload("fam-r2", 2*time.Minute, "r2 borrowing admitted", admitted)
	started := time.Now()
	// r1 runs within quota, r2 borrows and is younger than min runtime:
	// both get the protected priority, r2 because of the min_runtime guard.
	for _, d := range refresh(t, c) {
		if d.Target.Name == "fam-r2" && d.Reason.Guard != string(scheduler.PreemptMinRuntime) {
			t.Errorf("r2 protected by %q, want min_runtime: %s", d.Reason.Guard, d.Reason.Summary)
		}
	}
	if w, _, _ := s.JobWorkload(s.Context(), "fam-r2"); w.Priority != ProtectedPriority(c.Cfg) {
		t.Errorf("young borrower r2 has priority %d, want the protected %d", w.Priority, ProtectedPriority(c.Cfg))
	}

	submit(t, s, c, "r3", "research", 4, a100, time.Hour, nil) // borrower, submitted first
	time.Sleep(2 * time.Second)
	submit(t, s, c, "p1", "product", 4, a100, time.Hour, nil) // within product's quota
	refresh(t, c)
	// Minimum runtime protects the young borrower r2.
	for time.Since(started) < minRuntime-10*time.Second {
		if w, ok, err := s.JobWorkload(s.Context(), "fam-r2"); err != nil || !ok || !w.Admitted() || w.Cond("Evicted") {
			t.Fatalf("young borrower r2 lost its quota before min runtime: %v %v %+v", ok, err, w)
		}
		if w, _, _ := s.JobWorkload(s.Context(), "fam-p1"); w.Admitted() {
			t.Fatal("p1 admitted while the only room was a protected borrower's")
		}
		refresh(t, c)
		time.Sleep(2 * time.Second)
	}
	// Past min runtime: refresh lowers r2 to the borrowing base; Kueue reclaims.
	time.Sleep(time.Until(started.Add(minRuntime + time.Second)))
	var preempts []schemas.TrainingDecision
	cluster.WaitFor(t, 2*time.Minute, "p1 admitted after reclaiming r2", func(ctx context.Context) (bool, string, error) {
		for _, d := range refresh(t, c) {
			if d.Action == schemas.TrainingPreempt {
				preempts = append(preempts, d)
			}
		}
		w, ok, err := s.JobWorkload(ctx, "fam-p1")
		if err != nil || !ok {
			return false, "no workload", err
		}
		return w.Admitted(), w.String(), nil
	})
	w2, _, _ := s.JobWorkload(s.Context(), "fam-r2")
	if w2.Admitted() {
		t.Errorf("r2 still admitted after the reclaim: %s (before: %s)", w2, r2)
	}
	if w3, _, _ := s.JobWorkload(s.Context(), "fam-r3"); w3.Admitted() {
		t.Errorf("research borrower r3 admitted; the within-quota product job should have come first: %s", w3)
	}
	if len(preempts) == 0 {
		// Kueue may report the eviction a moment after admitting p1.
		cluster.WaitFor(t, time.Minute, "a preempt decision for r2", func(context.Context) (bool, string, error) {
			for _, d := range refresh(t, c) {
				if d.Action == schemas.TrainingPreempt {
					preempts = append(preempts, d)
				}
			}
			return len(preempts) > 0, "", nil
		})
	}
	if preempts[0].Target.Name != "fam-r2" || !strings.Contains(preempts[0].Reason.Summary, "pre-empted") {
		t.Errorf("preempt decision %+v", preempts[0])
	}
}
