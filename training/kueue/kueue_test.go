package kueue

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

func testSpec() scheduler.JobSpec {
	return scheduler.JobSpec{Department: "research", User: "alice", Family: "bert", Image: "img:1", Command: []string{"python", "t.py"},
		GPUs: scheduler.GPUSpec{Count: 8, Model: "a100", Fallbacks: []string{"v100"}}, CPU: "16", Memory: "64Gi", ExpectedDuration: 20 * time.Hour}
}

func TestRenderJob(t *testing.T) {
	cfg := scheduler.DefaultConfig()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	runs := []scheduler.RunStats{{Run: "bert-1", EndMs: 1, GPUs: 8, GPUUtilMean: 0.3, GPUMemPeakMiB: 100_000, CPUMean: 4, CPUPeak: 6}}
	// a100 is full: the job falls back to v100, sized for v100's memory.
	p, err := scheduler.PlanSubmission(cfg, "c1", testSpec(), scheduler.PlanInput{Now: now, Runs: runs, DeptUtil: -1,
		Used: scheduler.Usage{"a100": 8}, Free: scheduler.Usage{"a100": 0, "v100": 16}})
	if err != nil {
		t.Fatal(err)
	}
	job, err := RenderJob(cfg, testSpec(), p, now)
	if err != nil {
		t.Fatal(err)
	}
	if job.Labels[LabelQueueName] != "training" || job.Labels[LabelPriorityClass] != "ebbflow-training" || job.Spec.Suspend == nil || !*job.Spec.Suspend {
		t.Fatalf("not a suspended Kueue job: %+v %v", job.Labels, job.Spec.Suspend)
	}
	ps := job.Spec.Template.Spec
	if ps.NodeSelector["nvidia.com/gpu.product"] != "Tesla-V100-SXM2-32GB" {
		t.Errorf("node selector %v, want the v100 fallback", ps.NodeSelector)
	}
	if v := ps.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]; v.Key != "ebbflow.io/pool" || v.Values[0] != "fixed" {
		t.Errorf("20 h job not pinned to the fixed pool: %+v", v)
	}
	// v100: 100000 / (0.9 × 32768) = 3.39 → 4 GPUs; busy 2.4.
	gpus := ps.Containers[0].Resources.Requests["nvidia.com/gpu"]
	if gpus.Value() != 4 || p.Choice.Model != "v100" || !p.Choice.Fallback {
		t.Errorf("GPUs %s on %s (fallback %v), want 4 on v100", gpus.String(), p.Choice.Model, p.Choice.Fallback)
	}
	cpu := ps.Containers[0].Resources.Requests["cpu"]
	if cpu.MilliValue() != 6000 { // 4 × 1.5
		t.Errorf("cpu request %s, want 6", cpu.String())
	}
	if len(p.Decisions) != 2 || p.Decisions[0].Action != schemas.TrainingLaunch || p.Decisions[1].Action != schemas.TrainingResize {
		t.Fatalf("decisions %+v", p.Decisions)
	}
	for _, d := range p.Decisions {
		if _, err := schemas.Marshal(d); err != nil {
			t.Errorf("decision %s does not validate: %v", d.Action, err)
		}
	}
}

func TestSetupObjects(t *testing.T) {
	cfg := scheduler.DefaultConfig()
	objs := SetupObjects(cfg, "100", "1Ti")
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() == "ClusterQueue" {
			cohort, _, _ := unstructured.NestedString(o.Object, "spec", "cohortName")
			reclaim, _, _ := unstructured.NestedString(o.Object, "spec", "preemption", "reclaimWithinCohort")
			if cohort != "training" || reclaim != "LowerPriority" {
				t.Errorf("ClusterQueue %s: cohort %q reclaim %q", o.GetName(), cohort, reclaim)
			}
		}
	}
	if kinds["ClusterQueue"] != 2 || kinds["LocalQueue"] != 2 || kinds["ResourceFlavor"] != 2 || kinds["WorkloadPriorityClass"] != 1 {
		t.Fatalf("kinds %v", kinds)
	}
}

// fakeCluster builds fake clients holding ClusterQueues with the given GPU
// reservations, and the Workloads and Jobs given.
func fakeCluster(t *testing.T, cfg scheduler.Config, reserved map[string]map[string]int, wls []*unstructured.Unstructured, jobs []*batchv1.Job) *Client {
	t.Helper()
	g, _ := NewGVRs(cfg.Kueue.APIVersion)
	var objs []runtime.Object
	for _, o := range SetupObjects(cfg, "100", "1Ti") {
		if o.GetKind() == "ClusterQueue" {
			var fl []any
			for m, n := range reserved[o.GetName()] {
				fl = append(fl, map[string]any{"name": m, "resources": []any{map[string]any{"name": "nvidia.com/gpu", "total": itoa(n)}}})
			}
			_ = unstructured.SetNestedSlice(o.Object, fl, "status", "flavorsReservation")
		}
		objs = append(objs, o)
	}
	for _, w := range wls {
		objs = append(objs, w)
	}
	scheme := runtime.NewScheme()
	lists := map[schema.GroupVersionResource]string{g.ClusterQueue: "ClusterQueueList", g.Workload: "WorkloadList", g.LocalQueue: "LocalQueueList",
		g.ResourceFlavor: "ResourceFlavorList", g.WorkloadPriorityClass: "WorkloadPriorityClassList"}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(scheme, lists, objs...)
	var kobjs []runtime.Object
	for _, j := range jobs {
		kobjs = append(kobjs, j)
	}
	c, err := NewClient(dyn, kubefake.NewSimpleClientset(kobjs...), cfg, "c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func itoa(n int) string { return strconv.Itoa(n) }

func workload(ns, name, job string, gpus int, priority int64, conds ...map[string]any) *unstructured.Unstructured {
	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": name + "-uid",
			"ownerReferences": []any{map[string]any{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": "u"}}},
		"spec": map[string]any{"queueName": "training", "priority": priority, "podSets": []any{map[string]any{"name": "main", "count": int64(1),
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "train",
				"resources": map[string]any{"requests": map[string]any{"nvidia.com/gpu": itoa(gpus)}}}}}}}}},
	}}
	var cs []any
	for _, c := range conds {
		cs = append(cs, c)
	}
	if len(cs) > 0 {
		_ = unstructured.SetNestedSlice(w.Object, cs, "status", "conditions")
	}
	return w
}

func cond(typ, status, reason, msg string, at time.Time) map[string]any {
	return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg, "lastTransitionTime": at.Format(time.RFC3339)}
}

func trainingJob(ns, name, dept, model string, submitted time.Time) *batchv1.Job {
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels:      map[string]string{LabelDepartment: dept, LabelFamily: "fam", LabelGPUModel: model, LabelPool: "offline"},
		Annotations: map[string]string{AnnotationSubmitted: submitted.Format(time.RFC3339)}}}
}

func TestRefreshWritesScoresAndGuards(t *testing.T) {
	cfg := scheduler.DefaultConfig() // quotas 8 a100 + 8 v100 each; min runtime 10m
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	// product borrows: 16 a100 reserved against a quota of 8. Its oldest
	// run (8 GPUs) fits the quota; the two younger ones borrow.
	reserved := map[string]map[string]int{"research": {"a100": 4}, "product": {"a100": 16}}
	pendingWhy := "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor a100, 4 more needed"
	wls := []*unstructured.Unstructured{
		workload("research", "wl-wait-in", "job-wait-in", 4, 0, cond("QuotaReserved", "False", "Pending", pendingWhy, now.Add(-30*time.Minute))),
		workload("product", "wl-wait-borrow", "job-wait-borrow", 4, 0, cond("QuotaReserved", "False", "Pending", pendingWhy, now.Add(-time.Hour))),
		workload("product", "wl-base", "job-base", 8, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now.Add(-5*time.Hour))),
		workload("product", "wl-young", "job-young", 4, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now.Add(-2*time.Minute))),
		workload("product", "wl-old", "job-old", 4, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now.Add(-2*time.Hour))),
		workload("product", "wl-evicted", "job-evicted", 4, 0,
			cond("QuotaReserved", "False", "Pending", pendingWhy, now.Add(-time.Minute)),
			cond("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: x) due to reclamation within the cohort", now.Add(-time.Minute))),
	}
	jobs := []*batchv1.Job{
		trainingJob("research", "job-wait-in", "research", "a100", now.Add(-30*time.Minute)),
		trainingJob("product", "job-wait-borrow", "product", "a100", now.Add(-time.Hour)),
		trainingJob("product", "job-base", "product", "a100", now.Add(-6*time.Hour)),
		trainingJob("product", "job-young", "product", "a100", now.Add(-5*time.Minute)),
		trainingJob("product", "job-old", "product", "a100", now.Add(-3*time.Hour)),
		trainingJob("product", "job-evicted", "product", "a100", now.Add(-4*time.Hour)),
	}
	c := fakeCluster(t, cfg, reserved, wls, jobs)
	ctx := context.Background()
	ds, err := c.Refresh(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	prio := func(ns, name string) int64 {
		u, err := c.Dyn.Resource(c.GVRs().Workload).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, _, _ := unstructured.NestedInt64(u.Object, "spec", "priority")
		return p
	}
	protected := int64(ProtectedPriority(cfg))
	want := map[string]int64{
		"research/wl-wait-in":    1_000_000 + 300, // within quota (4+4 ≤ 8), waited 30 min
		"product/wl-wait-borrow": 1_000 + 600,     // over quota, waited 60 min
		"product/wl-young":       protected,       // borrower younger than min runtime
		"product/wl-old":         1_000,           // borrower past min runtime: reclaimable
		"product/wl-evicted":     1_000 + 2400,    // waiting again, 4 h since submission
	}
	for k, v := range want {
		ns, name, _ := strings.Cut(k, "/")
		if got := prio(ns, name); got != v {
			t.Errorf("%s priority %d, want %d", k, got, v)
		}
	}
	var preempts, admits int
	for _, d := range ds {
		if _, err := schemas.Marshal(d); err != nil {
			t.Errorf("decision %+v does not validate: %v", d, err)
		}
		switch d.Action {
		case schemas.TrainingPreempt:
			preempts++
		case schemas.TrainingAdmit:
			admits++
			if d.Target.Name == "job-young" && d.Reason.Guard != string(scheduler.PreemptMinRuntime) {
				t.Errorf("young borrower protected without the min_runtime guard: %+v", d.Reason)
			}
		}
	}
	if preempts != 1 || admits != 6 {
		t.Errorf("%d preempt and %d admit decisions, want 1 and 6", preempts, admits)
	}
	if got := counterValue(c.Metrics.Preemptions); got != 1 {
		t.Errorf("ebbflow_training_preemptions_total = %v, want 1", got)
	}
	if got := counterValue(c.Metrics.GuardProtections.WithLabelValues("min_runtime")); got != 1 {
		t.Errorf("min_runtime protections = %v, want 1", got)
	}
	// The eviction was charged once: a second pass changes nothing.
	if ds2, err := c.Refresh(ctx, now); err != nil || len(ds2) != 0 {
		t.Errorf("second pass: %d decisions (%v)", len(ds2), err)
	}
	wl, err := c.ListWorkloads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wl {
		if w.Name == "wl-wait-in" && !strings.Contains(w.WaitReason(), "insufficient unused quota") {
			t.Errorf("wait reason %q", w.WaitReason())
		}
		if w.Name == "wl-young" && w.WaitReason() != "" {
			t.Errorf("admitted workload waits: %q", w.WaitReason())
		}
	}
}

func TestKillBudgetSpentProtectsOldBorrowers(t *testing.T) {
	cfg := scheduler.DefaultConfig()
	cfg.KillBudget.Max = 1
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	reserved := map[string]map[string]int{"product": {"a100": 12}}
	wls := []*unstructured.Unstructured{
		workload("product", "wl-base", "job-base", 8, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now.Add(-5*time.Hour))),
		workload("product", "wl-a-old", "job-old", 4, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now.Add(-2*time.Hour))),
		workload("product", "wl-evicted", "job-evicted", 4, 0, cond("Evicted", "True", "Preempted", "reclaimed", now.Add(-time.Minute))),
	}
	jobs := []*batchv1.Job{trainingJob("product", "job-old", "product", "a100", now.Add(-3*time.Hour)),
		trainingJob("product", "job-base", "product", "a100", now.Add(-6*time.Hour)),
		trainingJob("product", "job-evicted", "product", "a100", now.Add(-3*time.Hour))}
	c := fakeCluster(t, cfg, reserved, wls, jobs)
	ds, err := c.Refresh(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Target.Name == "job-old" {
			if d.Reason.Guard != string(scheduler.PreemptKillBudget) {
				t.Errorf("old borrower after the budget was spent: guard %q", d.Reason.Guard)
			}
			return
		}
	}
	t.Fatal("no decision about the old borrower")
}

func TestBorrowersOldestFitTheQuota(t *testing.T) {
	cfg := scheduler.DefaultConfig() // research: 8 a100
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	adm := func(uid string, gpus int, at time.Duration) Workload {
		return Workload{UID: uid, Department: "research", Flavor: "a100", GPUs: gpus,
			Conditions: map[string]Condition{"QuotaReserved": {Type: "QuotaReserved", Status: "True", LastTransition: t0.Add(at)}}}
	}
	wls := []Workload{adm("c", 4, 3*time.Hour), adm("a", 4, time.Hour), adm("b", 4, 2*time.Hour),
		{UID: "waiting", Department: "research", Flavor: "a100", GPUs: 8}}
	got := Borrowers(cfg, wls)
	want := map[string]bool{"a": false, "b": false, "c": true}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s borrowing = %v, want %v", k, got[k], v)
		}
	}
}

func counterValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// admittedBy marks a fixture Workload admitted by clusterQueue on flavor, as
// Kueue writes status.admission.
func admittedBy(w *unstructured.Unstructured, clusterQueue, flavor string) *unstructured.Unstructured {
	_ = unstructured.SetNestedField(w.Object, clusterQueue, "status", "admission", "clusterQueue")
	_ = unstructured.SetNestedSlice(w.Object, []any{map[string]any{"name": "main", "count": int64(1),
		"flavors": map[string]any{"nvidia.com/gpu": flavor}}}, "status", "admission", "podSetAssignments")
	return w
}

// TestReadUsageCountsAdmissionsBeforeTheClusterQueueStatus: a Workload
// admitted a moment ago already holds its GPUs although its ClusterQueue's
// status does not show them yet (Kueue updates it a moment later), so a
// job planned right after sees the quota taken; a finished Workload still in
// the status stays counted until the status drops it (the larger of the two).
func TestReadUsageCountsAdmissionsBeforeTheClusterQueueStatus(t *testing.T) {
	cfg := scheduler.DefaultConfig() // quotas 8 a100 + 8 v100 for each department
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	reserved := map[string]map[string]int{"product": {"v100": 4}}
	wls := []*unstructured.Unstructured{
		admittedBy(workload("research", "wl-new", "job-new", 8, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now)), "research", "a100"),
		admittedBy(workload("product", "wl-v", "job-v", 2, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now)), "product", "v100"),
		admittedBy(workload("product", "wl-done", "job-done", 8, 0, cond("QuotaReserved", "True", "QuotaReserved", "", now),
			cond("Finished", "True", "Succeeded", "", now)), "product", "a100"),
		workload("research", "wl-wait", "job-wait", 4, 0, cond("QuotaReserved", "False", "Pending", "insufficient quota", now)),
	}
	c := fakeCluster(t, cfg, reserved, wls, nil)
	u, err := c.ReadUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Used["research"]["a100"]; got != 8 {
		t.Errorf("research a100 used %d, want the just-admitted 8", got)
	}
	if got := u.Used["product"]["v100"]; got != 4 {
		t.Errorf("product v100 used %d, want the status's 4 (more than its admitted 2)", got)
	}
	if got := u.Used["product"]["a100"]; got != 0 {
		t.Errorf("product a100 used %d, want 0 (its Workload finished)", got)
	}
	if u.Free["a100"] != 8 || u.Free["v100"] != 12 {
		t.Errorf("free %v, want a100 8 and v100 12 of 16 each", u.Free)
	}
}
