package kueue

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/killbudget"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// Client reads and writes Kueue objects and training Jobs. Safe for
// concurrent use except Refresh, which the one refresh loop calls.
type Client struct {
	Dyn     dynamic.Interface
	Kube    kubernetes.Interface
	Cfg     scheduler.Config
	Cluster string
	Log     *slog.Logger
	// DeptUtil returns a department's recent GPU utilisation (0–1, −1
	// unknown); nil = unknown for all.
	DeptUtil func(ctx context.Context, dept scheduler.Department) float64
	// Metrics are updated by Refresh (NewClient makes unregistered ones).
	Metrics *Metrics

	gvr    GVRs
	budget *killbudget.Budget
	seen   map[string]bool // evictions already charged to the budget
	// shares are the configured quotas, by which SyncQuota shares the
	// mixed pool (taken at the first sync; Cfg then holds the live quota).
	shares map[string]map[string]int
}

// NewClient checks the configuration's Kueue API version.
func NewClient(dyn dynamic.Interface, kube kubernetes.Interface, cfg scheduler.Config, cluster string, log *slog.Logger) (*Client, error) {
	g, err := NewGVRs(cfg.Kueue.APIVersion)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Client{Dyn: dyn, Kube: kube, Cfg: cfg, Cluster: cluster, Log: log, gvr: g, Metrics: NewMetrics(nil),
		budget: killbudget.New(cfg.KillBudget), seen: map[string]bool{}}, nil
}

// GVRs returns the Kueue resources the client uses.
func (c *Client) GVRs() GVRs { return c.gvr }

// Apply creates or updates unstructured objects (SetupObjects), for tests
// and `ebbflow training setup`.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		gvr, err := c.gvrOf(o.GetKind())
		if err != nil {
			return err
		}
		ri := c.Dyn.Resource(gvr)
		var r dynamic.ResourceInterface = ri
		if ns := o.GetNamespace(); ns != "" {
			r = ri.Namespace(ns)
		}
		_, err = r.Create(ctx, o, metav1.CreateOptions{FieldManager: "ebbflow-training"})
		if apierrors.IsAlreadyExists(err) {
			cur, gerr := r.Get(ctx, o.GetName(), metav1.GetOptions{})
			if gerr != nil {
				return fmt.Errorf("kueue: get %s %s: %w", o.GetKind(), o.GetName(), gerr)
			}
			o.SetResourceVersion(cur.GetResourceVersion())
			_, err = r.Update(ctx, o, metav1.UpdateOptions{FieldManager: "ebbflow-training"})
		}
		if err != nil {
			return fmt.Errorf("kueue: apply %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

func (c *Client) gvrOf(kind string) (schema.GroupVersionResource, error) {
	switch kind {
	case "ResourceFlavor":
		return c.gvr.ResourceFlavor, nil
	case "ClusterQueue":
		return c.gvr.ClusterQueue, nil
	case "LocalQueue":
		return c.gvr.LocalQueue, nil
	case "WorkloadPriorityClass":
		return c.gvr.WorkloadPriorityClass, nil
	case "Workload":
		return c.gvr.Workload, nil
	}
	return schema.GroupVersionResource{}, fmt.Errorf("kueue: no resource for kind %q", kind)
}

// Submit creates a rendered Job.
func (c *Client) Submit(ctx context.Context, job *batchv1.Job) (*batchv1.Job, error) {
	out, err := c.Kube.BatchV1().Jobs(job.Namespace).Create(ctx, job, metav1.CreateOptions{FieldManager: "ebbflow-training"})
	if err != nil {
		return nil, fmt.Errorf("kueue: create job %s/%s: %w", job.Namespace, job.Name, err)
	}
	return out, nil
}

// Usage is the GPUs each department's ClusterQueue has reserved per GPU
// model, and the cohort's free GPUs per model (the sum of nominal quotas
// minus the sum reserved).
type Usage struct {
	Used map[string]scheduler.Usage
	Free scheduler.Usage
}

// ReadUsage reads the departments' GPU use per flavor: their ClusterQueues'
// status.flavorsReservation, or their admitted Workloads where those say more.
func (c *Client) ReadUsage(ctx context.Context) (Usage, error) {
	u := Usage{Used: map[string]scheduler.Usage{}, Free: scheduler.Usage{}}
	for _, d := range c.Cfg.Departments {
		for m, q := range d.Quota {
			u.Free[m] += q
		}
	}
	for _, d := range c.Cfg.Departments {
		cq, err := c.Dyn.Resource(c.gvr.ClusterQueue).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return u, fmt.Errorf("kueue: ClusterQueue %s of department %s does not exist (create the Kueue objects with `ebbflow training setup`): %w", d.Name, d.Name, err)
			}
			return u, fmt.Errorf("kueue: read ClusterQueue %s: %w", d.Name, err)
		}
		used := scheduler.Usage{}
		fl, _, _ := unstructured.NestedSlice(cq.Object, "status", "flavorsReservation")
		for _, f := range fl {
			fm, _ := f.(map[string]any)
			name, _ := fm["name"].(string)
			res, _ := fm["resources"].([]any)
			for _, r := range res {
				rm, _ := r.(map[string]any)
				if rm["name"] != c.Cfg.Pools.GPUResource {
					continue
				}
				used[name] += quantityInt(rm["total"])
			}
		}
		u.Used[d.Name] = used
	}
	// A ClusterQueue's status follows its admissions a moment later; the
	// admitted Workloads themselves say at once what they hold. Each
	// department's use per flavor is the larger of the two (the status is
	// also a moment late to drop a finished Workload).
	held, err := c.admittedUse(ctx)
	if err != nil {
		return u, err
	}
	for _, d := range c.Cfg.Departments {
		used := u.Used[d.Name]
		for m, n := range held[d.Name] {
			used[m] = max(used[m], n)
		}
		for m, n := range used {
			u.Free[m] -= n
		}
	}
	return u, nil
}

// admittedUse sums the GPUs of the admitted, unfinished Workloads in the
// departments' namespaces by ClusterQueue and flavor.
func (c *Client) admittedUse(ctx context.Context) (map[string]scheduler.Usage, error) {
	nss := map[string]bool{}
	for _, d := range c.Cfg.Departments {
		nss[d.Ns()] = true
	}
	out := map[string]scheduler.Usage{}
	for _, ns := range sortedKeys(nss) {
		l, err := c.Dyn.Resource(c.gvr.Workload).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("kueue: list Workloads in %s: %w", ns, err)
		}
		for i := range l.Items {
			w := parseWorkload(&l.Items[i], c.Cfg.Pools.GPUResource)
			if !w.Admitted() || w.Finished() || w.ClusterQueue == "" || w.Flavor == "" {
				continue
			}
			if out[w.ClusterQueue] == nil {
				out[w.ClusterQueue] = scheduler.Usage{}
			}
			out[w.ClusterQueue][w.Flavor] += w.GPUs
		}
	}
	return out, nil
}

func quantityInt(v any) int {
	switch x := v.(type) {
	case string:
		q, err := resource.ParseQuantity(x)
		if err != nil {
			return 0
		}
		return int(q.Value())
	case int64:
		return int(x)
	case float64:
		return int(x)
	}
	return 0
}

// Condition is a Workload status condition.
type Condition struct {
	Type, Status, Reason, Message string
	LastTransition                time.Time
}

// Workload is what `ebbflow training queue` shows about one Workload.
type Workload struct {
	Name, Namespace string
	UID             string
	Job             string
	Queue           string
	Priority        int32
	Created         time.Time
	GPUs            int
	// Flavor is the admitted GPU flavor and ClusterQueue the queue that
	// admitted it ("" while waiting).
	Flavor       string
	ClusterQueue string
	Conditions   map[string]Condition
	// From the owning Job's labels and annotations.
	Department, Family, Model, Pool string
	Submitted                       time.Time
	Score                           *schemas.TrainingScore
}

// Admitted reports whether the Workload holds quota.
func (w Workload) Admitted() bool { return w.Conditions["QuotaReserved"].Status == "True" }

// Finished reports whether the Workload's job has finished.
func (w Workload) Finished() bool { return w.Conditions["Finished"].Status == "True" }

// WaitReason says why a Workload waits, from its conditions ("" when it
// does not wait).
func (w Workload) WaitReason() string {
	if w.Finished() {
		return ""
	}
	if w.Admitted() {
		return ""
	}
	if ev := w.Conditions["Evicted"]; ev.Status == "True" {
		return "evicted (" + ev.Reason + "): " + ev.Message
	}
	if q, ok := w.Conditions["QuotaReserved"]; ok && q.Message != "" {
		return q.Reason + ": " + q.Message
	}
	return "not yet considered by Kueue"
}

// ListWorkloads lists the Workloads in the departments' namespaces, with
// their owning Jobs' ebbflow labels and score, sorted by priority.
func (c *Client) ListWorkloads(ctx context.Context) ([]Workload, error) {
	var out []Workload
	nss := map[string]bool{}
	for _, d := range c.Cfg.Departments {
		nss[d.Ns()] = true
	}
	for _, ns := range sortedKeys(nss) {
		l, err := c.Dyn.Resource(c.gvr.Workload).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("kueue: list Workloads in %s: %w", ns, err)
		}
		for i := range l.Items {
			w := parseWorkload(&l.Items[i], c.Cfg.Pools.GPUResource)
			if w.Job != "" && c.Kube != nil {
				if job, err := c.Kube.BatchV1().Jobs(ns).Get(ctx, w.Job, metav1.GetOptions{}); err == nil {
					w.Department, w.Family, w.Model, w.Pool = job.Labels[LabelDepartment], job.Labels[LabelFamily], job.Labels[LabelGPUModel], job.Labels[LabelPool]
					if t, err := time.Parse(time.RFC3339, job.Annotations[AnnotationSubmitted]); err == nil {
						w.Submitted = t
					}
					var s schemas.TrainingScore
					if json.Unmarshal([]byte(job.Annotations[AnnotationScore]), &s) == nil && job.Annotations[AnnotationScore] != "" {
						w.Score = &s
					}
				}
			}
			if w.Submitted.IsZero() {
				w.Submitted = w.Created
			}
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority > out[j].Priority
		}
		return out[i].Created.Before(out[j].Created)
	})
	return out, nil
}

func parseWorkload(u *unstructured.Unstructured, gpuRes string) Workload {
	w := Workload{Name: u.GetName(), Namespace: u.GetNamespace(), UID: string(u.GetUID()), Created: u.GetCreationTimestamp().Time,
		Conditions: map[string]Condition{}}
	for _, o := range u.GetOwnerReferences() {
		if o.Kind == "Job" {
			w.Job = o.Name
		}
	}
	w.Queue, _, _ = unstructured.NestedString(u.Object, "spec", "queueName")
	if p, ok, _ := unstructured.NestedInt64(u.Object, "spec", "priority"); ok {
		w.Priority = int32(p)
	}
	podSets, _, _ := unstructured.NestedSlice(u.Object, "spec", "podSets")
	for _, ps := range podSets {
		pm, _ := ps.(map[string]any)
		count, _ := pm["count"].(int64)
		if count == 0 {
			count = 1
		}
		ctrs, _, _ := unstructured.NestedSlice(pm, "template", "spec", "containers")
		for _, ct := range ctrs {
			cm, _ := ct.(map[string]any)
			req, _, _ := unstructured.NestedMap(cm, "resources", "requests")
			w.GPUs += quantityInt(req[gpuRes]) * int(count)
		}
	}
	w.ClusterQueue, _, _ = unstructured.NestedString(u.Object, "status", "admission", "clusterQueue")
	psa, _, _ := unstructured.NestedSlice(u.Object, "status", "admission", "podSetAssignments")
	for _, a := range psa {
		am, _ := a.(map[string]any)
		if f, ok, _ := unstructured.NestedString(am, "flavors", gpuRes); ok {
			w.Flavor = f
		}
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, cd := range conds {
		cm, _ := cd.(map[string]any)
		c := Condition{}
		c.Type, _ = cm["type"].(string)
		c.Status, _ = cm["status"].(string)
		c.Reason, _ = cm["reason"].(string)
		c.Message, _ = cm["message"].(string)
		if ts, ok := cm["lastTransitionTime"].(string); ok {
			c.LastTransition, _ = time.Parse(time.RFC3339, ts)
		}
		w.Conditions[c.Type] = c
	}
	return w
}

// SetPriority writes a Workload's spec.priority (Kueue allows changing it
// for workloads whose priority comes from a WorkloadPriorityClass).
func (c *Client) SetPriority(ctx context.Context, ns, name string, p int32) error {
	patch := fmt.Sprintf(`{"spec":{"priority":%d}}`, p)
	_, err := c.Dyn.Resource(c.gvr.Workload).Namespace(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "ebbflow-training"})
	if err != nil {
		return fmt.Errorf("kueue: set priority of Workload %s/%s to %d: %w", ns, name, p, err)
	}
	return nil
}

// Refresh is one pass of the score loop: first the mixed flavors' nominal
// quota follows the mixed pool (SyncQuota); then every waiting Workload of a
// training Job gets its current score as priority; every admitted one that
// borrows (Borrowers) gets the protected priority while the guard protects it (younger
// than min_runtime, or kill budget spent) and the borrowing base otherwise;
// evictions by pre-emption are charged to the kill budget and reported.
// It returns the decisions it made.
func (c *Client) Refresh(ctx context.Context, now time.Time) ([]schemas.TrainingDecision, error) {
	if _, _, err := c.SyncQuota(ctx, now); err != nil {
		return nil, err
	}
	wls, err := c.ListWorkloads(ctx)
	if err != nil {
		return nil, err
	}
	utils := map[string]float64{}
	for _, d := range c.Cfg.Departments {
		utils[d.Name] = -1
		if c.DeptUtil != nil {
			utils[d.Name] = c.DeptUtil(ctx, d)
		}
	}
	var out []schemas.TrainingDecision
	waiting, admitted := 0, 0
	for _, w := range wls {
		switch {
		case w.Finished():
		case w.Admitted():
			admitted++
		default:
			waiting++
		}
	}
	c.Metrics.Waiting.Set(float64(waiting))
	c.Metrics.Admitted.Set(float64(admitted))
	// Charge every new eviction to the kill budget before any guard reads it.
	for _, w := range wls {
		if ev := w.Conditions["Evicted"]; ev.Status == "True" && ev.Reason == "Preempted" {
			key := w.UID + "/" + ev.LastTransition.Format(time.RFC3339)
			if !c.seen[key] {
				c.seen[key] = true
				c.budget.Record(ev.LastTransition)
				c.Metrics.Preemptions.Inc()
				out = append(out, c.decision(w, schemas.TrainingPreempt, now, scheduler.ScoreTerms{Standing: scheduler.Borrowing},
					fmt.Sprintf("Kueue pre-empted %s/%s: %s", w.Namespace, w.Job, ev.Message), ""))
			}
		}
	}
	borrowers := Borrowers(c.Cfg, wls)
	// GPUs in use per department and flavor, from the Workloads themselves
	// (their admission is written at once; ClusterQueue status lags).
	used := map[string]scheduler.Usage{}
	for _, w := range wls {
		if w.Admitted() && !w.Finished() {
			if used[w.Department] == nil {
				used[w.Department] = scheduler.Usage{}
			}
			used[w.Department][nonEmpty(w.Flavor, w.Model)] += w.GPUs
		}
	}
	for _, w := range wls {
		dept, ok := c.Cfg.Department(w.Department)
		if !ok || w.Finished() {
			continue
		}
		model := w.Flavor
		if model == "" {
			model = w.Model
		}
		var want int32
		var terms scheduler.ScoreTerms
		var guard string
		if w.Admitted() {
			ran := now.Sub(w.Conditions["QuotaReserved"].LastTransition)
			borrowing := borrowers[w.UID]
			terms = scheduler.Score(c.Cfg.Score, scheduler.ScoreInput{Standing: scheduler.WithinQuota, DeptUtil: -1})
			want = ProtectedPriority(c.Cfg) // within quota: never a reclaim victim
			if borrowing {
				terms = scheduler.Score(c.Cfg.Score, scheduler.ScoreInput{Standing: scheduler.Borrowing, DeptUtil: -1})
				chk := scheduler.CanPreempt(c.Cfg, c.budget, c.Cfg.Score.WithinQuota, scheduler.Victim{Name: w.Job, Standing: scheduler.Borrowing, Score: terms.Total, Started: now.Add(-ran)}, now)
				if chk.Allowed {
					want = terms.Priority()
				} else {
					guard = string(chk.Reason)
				}
			}
		} else {
			st := scheduler.Standing(dept, used[dept.Name], model, w.GPUs)
			terms = scheduler.Score(c.Cfg.Score, scheduler.ScoreInput{Standing: st, Waited: now.Sub(w.Submitted), DeptUtil: utils[dept.Name]})
			want = terms.Priority()
		}
		if want == w.Priority {
			continue
		}
		if err := c.SetPriority(ctx, w.Namespace, w.Name, want); err != nil {
			return out, err
		}
		c.Metrics.PriorityUpdates.WithLabelValues(string(terms.Standing)).Inc()
		if guard != "" {
			c.Metrics.GuardProtections.WithLabelValues(guard).Inc()
		}
		action, summary := schemas.TrainingAdmit, fmt.Sprintf("score of waiting %s/%s: %s", w.Namespace, w.Job, terms)
		if w.Admitted() {
			summary = fmt.Sprintf("running %s/%s: priority %d → %d", w.Namespace, w.Job, w.Priority, want)
			if guard != "" {
				summary += " (protected: " + guard + ")"
			}
		}
		c.Log.Info("training priority", "workload", w.Namespace+"/"+w.Name, "job", w.Job, "from", w.Priority, "to", want,
			"standing", terms.Standing, "base", terms.Base, "wait_credit", terms.WaitCredit, "util_penalty", terms.UtilPenalty, "guard", guard)
		out = append(out, c.decision(w, action, now, terms, summary, guard))
	}
	return out, nil
}

// Borrowers says which admitted Workloads run on borrowed quota, by UID.
// Per department and GPU flavor, admitted Workloads are taken oldest
// admission first; those that still fit the nominal quota run within it,
// the rest borrow. (Kueue, reclaiming, evicts among equal priorities the
// most recently admitted first: the same order.) Pure.
func Borrowers(cfg scheduler.Config, wls []Workload) map[string]bool {
	type key struct{ dept, model string }
	groups := map[key][]Workload{}
	for _, w := range wls {
		if w.Admitted() && !w.Finished() {
			k := key{w.Department, nonEmpty(w.Flavor, w.Model)}
			groups[k] = append(groups[k], w)
		}
	}
	out := map[string]bool{}
	for k, g := range groups {
		d, _ := cfg.Department(k.dept)
		sort.SliceStable(g, func(i, j int) bool {
			return g[i].Conditions["QuotaReserved"].LastTransition.Before(g[j].Conditions["QuotaReserved"].LastTransition)
		})
		used := 0
		for _, w := range g {
			used += w.GPUs
			out[w.UID] = used > d.Quota[k.model]
		}
	}
	return out
}

func (c *Client) decision(w Workload, action string, now time.Time, t scheduler.ScoreTerms, summary, guard string) schemas.TrainingDecision {
	name := w.Job
	if name == "" {
		name = w.Name
	}
	if t.Standing == "" {
		t.Standing = scheduler.Borrowing
	}
	models := []string{w.Model}
	if w.Model == "" {
		models = []string{w.Flavor}
	}
	if models[0] == "" {
		models = []string{"unknown"}
	}
	return schemas.TrainingDecision{
		ID: fmt.Sprintf("%s/%s/%s/%d", w.Namespace, name, action, now.UnixMilli()), Kind: schemas.DecisionTraining, Seq: now.UnixMilli(),
		Target: schemas.Target{Cluster: c.Cluster, Namespace: w.Namespace, Kind: "Job", Name: name},
		Action: action, AtMs: now.UnixMilli(), ExpiresMs: now.Add(c.Cfg.Kueue.RefreshInterval).UnixMilli(),
		Job: schemas.TrainingJob{Name: name, Namespace: w.Namespace, Department: nonEmpty(w.Department, "unknown"), Family: nonEmpty(w.Family, "unknown"), Pool: nonEmpty(w.Pool, "unknown"),
			Models: models, Model: w.Flavor, RequestedGPUs: max(1, w.GPUs), GPUs: w.GPUs},
		Score:     scheduler.ScoreEvent(t),
		Reason:    schemas.TrainingReason{Summary: summary, Guard: guard},
		DecidedBy: c.Cfg.Source,
	}
}

func nonEmpty(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
