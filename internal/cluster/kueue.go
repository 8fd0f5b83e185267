package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/training/scheduler"
)

// Kueue's API (v1beta2) as the tests use it, through the dynamic client.
const (
	KueueGroup   = "kueue.x-k8s.io"
	KueueVersion = "v1beta2"
	// LabelQueueName on a Job names its LocalQueue.
	LabelQueueName = "kueue.x-k8s.io/queue-name"
)

// Kueue resources.
var (
	GVRResourceFlavor = schema.GroupVersionResource{Group: KueueGroup, Version: KueueVersion, Resource: "resourceflavors"}
	GVRClusterQueue   = schema.GroupVersionResource{Group: KueueGroup, Version: KueueVersion, Resource: "clusterqueues"}
	GVRLocalQueue     = schema.GroupVersionResource{Group: KueueGroup, Version: KueueVersion, Resource: "localqueues"}
	GVRCohort         = schema.GroupVersionResource{Group: KueueGroup, Version: KueueVersion, Resource: "cohorts"}
	GVRWorkload       = schema.GroupVersionResource{Group: KueueGroup, Version: KueueVersion, Resource: "workloads"}
	GVRWorkloadPC     = schema.GroupVersionResource{Group: KueueGroup, Version: KueueVersion, Resource: "workloadpriorityclasses"}
)

var kueueResources = map[string]schema.GroupVersionResource{
	"ResourceFlavor":        GVRResourceFlavor,
	"ClusterQueue":          GVRClusterQueue,
	"LocalQueue":            GVRLocalQueue,
	"Cohort":                GVRCohort,
	"WorkloadPriorityClass": GVRWorkloadPC,
}

// KueueName is the name a Kueue object of the example files gets in this scope: cluster-scoped
// names (flavors, ClusterQueues, cohorts, priority classes) carry the scope id so parallel tests
// never share quota; LocalQueues live in the scope's namespace under their own name.
func (s *Scope) KueueName(name string) string { return name + "-" + s.ID }

// ApplyKueue applies Kueue objects from YAML files (this package's testdata/kueue fixtures, or what training setup renders) into the scope:
// cluster-scoped names and the references between them get the scope id (KueueName),
// LocalQueues go to the scope's namespace, and every ResourceFlavor also selects and tolerates
// the scope's nodes. It deletes the objects when the test ends and returns them as applied.
func (s *Scope) ApplyKueue(files ...string) []*unstructured.Unstructured {
	s.T.Helper()
	RequireKueue(s.T)
	s.T.Cleanup(s.logWorkloadsOnFailure)
	var objs []*unstructured.Unstructured
	for _, f := range files {
		got, err := ReadObjects(f)
		if err != nil {
			s.T.Fatal(err)
		}
		objs = append(objs, got...)
	}
	// Flavors and cohorts before the queues that name them.
	order := map[string]int{"ResourceFlavor": 0, "WorkloadPriorityClass": 0, "Cohort": 1, "ClusterQueue": 2, "LocalQueue": 3}
	sort.SliceStable(objs, func(i, j int) bool { return order[objs[i].GetKind()] < order[objs[j].GetKind()] })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, o := range objs {
		if err := s.scopeKueueObject(o); err != nil {
			s.T.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		gvr := kueueResources[o.GetKind()]
		ri := s.Dynamic.Resource(gvr)
		var res dynamic.ResourceInterface = ri
		if o.GetNamespace() != "" {
			res = ri.Namespace(o.GetNamespace())
		}
		// Kueue's webhooks may still be registering right after start-up
		// (minutes on a loaded machine): retry for up to 2 minutes.
		var err error
		for range 120 {
			if _, err = res.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "ebbflow-test", Force: true}); err == nil {
				break
			}
			if !apierrors.IsInternalError(err) && !apierrors.IsServiceUnavailable(err) && !strings.Contains(err.Error(), "webhook") {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			s.T.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		name := o.GetName()
		s.T.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := res.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				s.T.Logf("deleting %s %s: %v", gvr.Resource, name, err)
			}
		})
	}
	return objs
}

// logWorkloadsOnFailure logs every Workload of the scope when the test failed.
func (s *Scope) logWorkloadsOnFailure() {
	if !s.T.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := s.Dynamic.Resource(GVRWorkload).Namespace(s.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.T.Logf("listing workloads: %v", err)
		return
	}
	for _, u := range l.Items {
		w, err := decodeWorkload(&u)
		if err != nil {
			s.T.Logf("%v", err)
			continue
		}
		s.T.Logf("workload %s", w)
	}
}

// scopeKueueObject renames and re-points one Kueue object for the scope.
func (s *Scope) scopeKueueObject(o *unstructured.Unstructured) error {
	if o.GetAPIVersion() != KueueGroup+"/"+KueueVersion {
		return fmt.Errorf("apiVersion %q: the helpers speak %s/%s", o.GetAPIVersion(), KueueGroup, KueueVersion)
	}
	switch o.GetKind() {
	case "ResourceFlavor":
		o.SetName(s.KueueName(o.GetName()))
		labels, _, _ := unstructured.NestedStringMap(o.Object, "spec", "nodeLabels")
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelTest] = s.ID
		if err := unstructured.SetNestedStringMap(o.Object, labels, "spec", "nodeLabels"); err != nil {
			return err
		}
		tols, _, _ := unstructured.NestedSlice(o.Object, "spec", "tolerations")
		tol, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ptr.To(s.Toleration()))
		if err != nil {
			return err
		}
		return unstructured.SetNestedSlice(o.Object, append(tols, tol), "spec", "tolerations")
	case "Cohort", "WorkloadPriorityClass":
		o.SetName(s.KueueName(o.GetName()))
		if p, ok, _ := unstructured.NestedString(o.Object, "spec", "parentName"); ok && p != "" {
			return unstructured.SetNestedField(o.Object, s.KueueName(p), "spec", "parentName")
		}
		return nil
	case "ClusterQueue":
		o.SetName(s.KueueName(o.GetName()))
		if c, ok, _ := unstructured.NestedString(o.Object, "spec", "cohortName"); ok && c != "" {
			if err := unstructured.SetNestedField(o.Object, s.KueueName(c), "spec", "cohortName"); err != nil {
				return err
			}
		}
		groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "resourceGroups")
		for _, g := range groups {
			gm, _ := g.(map[string]any)
			flavors, _ := gm["flavors"].([]any)
			for _, f := range flavors {
				fm, _ := f.(map[string]any)
				if n, ok := fm["name"].(string); ok {
					fm["name"] = s.KueueName(n)
				}
			}
		}
		if err := unstructured.SetNestedSlice(o.Object, groups, "spec", "resourceGroups"); err != nil {
			return err
		}
		// Only the scope's namespace may submit to the scope's queues.
		return unstructured.SetNestedField(o.Object, map[string]any{
			"matchLabels": map[string]any{LabelTest: s.ID}}, "spec", "namespaceSelector")
	case "LocalQueue":
		o.SetNamespace(s.Namespace)
		cq, _, _ := unstructured.NestedString(o.Object, "spec", "clusterQueue")
		return unstructured.SetNestedField(o.Object, s.KueueName(cq), "spec", "clusterQueue")
	default:
		return fmt.Errorf("kind %s is not a Kueue object the helpers know", o.GetKind())
	}
}

// ReadObjects decodes every document of a multi-document YAML file.
func ReadObjects(file string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	yr := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []*unstructured.Unstructured
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", file, err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", file, err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// JobSpec describes a Kueue-managed training Job for NewJob.
type JobSpec struct {
	Name       string
	LocalQueue string              // LabelQueueName
	Pods       int32               // parallelism = completions (default 1)
	Requests   corev1.ResourceList // per pod
	// RunFor, when > 0, makes kwok complete each pod that long after it started
	// (AnnotationRunDuration); otherwise the pods run until deleted.
	RunFor time.Duration
	// NodeSelector pins the pods (e.g. LabelNodeGroup: "a100"); Kueue then only considers
	// flavors whose node labels agree.
	NodeSelector map[string]string
	// PriorityClassName is a PriorityClass (pod priority, also the workload's priority).
	PriorityClassName string
}

// NewJob builds the batch/v1 Job of spec in the scope's namespace: one container, the requests
// as requests and limits, a 1 s termination grace period (eviction and preemption are quick),
// confined to the scope's nodes. Kueue's webhook suspends it on creation.
func (s *Scope) NewJob(spec JobSpec) *batchv1.Job {
	pods := spec.Pods
	if pods == 0 {
		pods = 1
	}
	ann := map[string]string{}
	if spec.RunFor > 0 {
		ann[AnnotationRunDuration] = spec.RunFor.String()
	}
	labels := map[string]string{}
	if spec.LocalQueue != "" {
		labels[LabelQueueName] = spec.LocalQueue
	}
	podSpec := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		PriorityClassName:             spec.PriorityClassName,
		NodeSelector:                  spec.NodeSelector,
		Containers: []corev1.Container{{
			Name: "train", Image: "registry.invalid/ebbflow/fake-trainer:1",
			Resources: corev1.ResourceRequirements{Requests: spec.Requests, Limits: spec.Requests},
		}},
	}
	s.Confine(&podSpec)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: s.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			Parallelism:  ptr.To(pods),
			Completions:  ptr.To(pods),
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": spec.Name}, Annotations: ann},
				Spec:       podSpec,
			},
		},
	}
}

// GPUs is a request of n nvidia.com/gpu with a little CPU and memory.
func GPUs(n int64) corev1.ResourceList {
	return corev1.ResourceList{
		ResourceGPU:           *resource.NewQuantity(n, resource.DecimalSI),
		corev1.ResourceCPU:    resource.MustParse("1"),
		corev1.ResourceMemory: resource.MustParse("1Gi"),
	}
}

// CreateJob creates the Job and returns it.
func (s *Scope) CreateJob(spec JobSpec) *batchv1.Job {
	s.T.Helper()
	j, err := s.Kube.BatchV1().Jobs(s.Namespace).Create(s.Context(), s.NewJob(spec), metav1.CreateOptions{})
	if err != nil {
		s.T.Fatalf("creating job %s: %v", spec.Name, err)
	}
	return j
}

// DeleteJob deletes a Job and its pods (background propagation).
func (s *Scope) DeleteJob(name string) {
	s.T.Helper()
	if err := s.Kube.BatchV1().Jobs(s.Namespace).Delete(s.Context(), name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		s.T.Fatalf("deleting job %s: %v", name, err)
	}
}

// Workload is the part of a Kueue Workload the tests read.
type Workload struct {
	Name         string
	ClusterQueue string            // status.admission.clusterQueue ("" if none)
	Flavors      map[string]string // resource → flavor of the first pod set's assignment
	Conditions   map[string]metav1.Condition
	Priority     int32
}

// Cond reports whether the workload has condition typ with status True.
func (w Workload) Cond(typ string) bool {
	c, ok := w.Conditions[typ]
	return ok && c.Status == metav1.ConditionTrue
}

// Admitted: quota reserved and admitted.
func (w Workload) Admitted() bool { return w.Cond("QuotaReserved") && w.Cond("Admitted") }

// String is a one-line summary for failure messages.
func (w Workload) String() string {
	var conds []string
	for _, t := range []string{"QuotaReserved", "Admitted", "Evicted", "Preempted", "Finished"} {
		if c, ok := w.Conditions[t]; ok {
			conds = append(conds, fmt.Sprintf("%s=%s(%s: %s)", t, c.Status, c.Reason, c.Message))
		}
	}
	return fmt.Sprintf("%s cq=%q flavors=%v %s", w.Name, w.ClusterQueue, w.Flavors, strings.Join(conds, " "))
}

// JobWorkload returns the Workload Kueue created for a Job of the scope (ok false if none yet).
func (s *Scope) JobWorkload(ctx context.Context, job string) (Workload, bool, error) {
	l, err := s.Dynamic.Resource(GVRWorkload).Namespace(s.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return Workload{}, false, fmt.Errorf("listing workloads in %s: %w", s.Namespace, err)
	}
	for _, u := range l.Items {
		for _, ref := range u.GetOwnerReferences() {
			if ref.Kind == "Job" && ref.Name == job {
				w, err := decodeWorkload(&u)
				return w, err == nil, err
			}
		}
	}
	return Workload{}, false, nil
}

func decodeWorkload(u *unstructured.Unstructured) (Workload, error) {
	var raw struct {
		Spec struct {
			Priority *int32 `json:"priority"`
		} `json:"spec"`
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
			Admission  *struct {
				ClusterQueue      string `json:"clusterQueue"`
				PodSetAssignments []struct {
					Flavors map[string]string `json:"flavors"`
				} `json:"podSetAssignments"`
			} `json:"admission"`
		} `json:"status"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &raw); err != nil {
		return Workload{}, fmt.Errorf("decoding workload %s: %w", u.GetName(), err)
	}
	w := Workload{Name: u.GetName(), Conditions: map[string]metav1.Condition{}, Flavors: map[string]string{}}
	if raw.Spec.Priority != nil {
		w.Priority = *raw.Spec.Priority
	}
	for _, c := range raw.Status.Conditions {
		w.Conditions[c.Type] = c
	}
	if a := raw.Status.Admission; a != nil {
		w.ClusterQueue = a.ClusterQueue
		if len(a.PodSetAssignments) > 0 {
			w.Flavors = a.PodSetAssignments[0].Flavors
		}
	}
	return w, nil
}

// WaitWorkload waits until the Job's Workload satisfies cond and returns it.
func (s *Scope) WaitWorkload(job string, timeout time.Duration, what string, cond func(Workload) bool) Workload {
	s.T.Helper()
	var got Workload
	WaitFor(s.T, timeout, "workload of job "+job+" "+what, func(ctx context.Context) (bool, string, error) {
		w, ok, err := s.JobWorkload(ctx, job)
		if err != nil {
			return false, err.Error(), nil
		}
		if !ok {
			return false, "no workload yet", nil
		}
		got = w
		return cond(w), w.String(), nil
	})
	return got
}

// ClusterQueueUsage returns, per flavor and resource, the quota the ClusterQueue has reserved
// and how much of it is borrowed (status.flavorsReservation).
func (s *Scope) ClusterQueueUsage(ctx context.Context, cq string) (map[string]map[string][2]resource.Quantity, error) {
	u, err := s.Dynamic.Resource(GVRClusterQueue).Get(ctx, cq, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading ClusterQueue %s: %w", cq, err)
	}
	var raw struct {
		Status struct {
			FlavorsReservation []struct {
				Name      string `json:"name"`
				Resources []struct {
					Name     string            `json:"name"`
					Total    resource.Quantity `json:"total"`
					Borrowed resource.Quantity `json:"borrowed"`
				} `json:"resources"`
			} `json:"flavorsReservation"`
		} `json:"status"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &raw); err != nil {
		return nil, fmt.Errorf("decoding ClusterQueue %s: %w", cq, err)
	}
	out := map[string]map[string][2]resource.Quantity{}
	for _, f := range raw.Status.FlavorsReservation {
		out[f.Name] = map[string][2]resource.Quantity{}
		for _, r := range f.Resources {
			out[f.Name][r.Name] = [2]resource.Quantity{r.Total, r.Borrowed}
		}
	}
	return out, nil
}

// ApplyKueueObjects applies objects built in Go (what `ebbflow training
// setup` renders, kueue.SetupObjects) as ApplyKueue applies files: written
// as YAML, read back and scoped the same way.
func (s *Scope) ApplyKueueObjects(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	s.T.Helper()
	var docs []string
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			s.T.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	file := filepath.Join(s.T.TempDir(), "kueue.yaml")
	if err := os.WriteFile(file, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		s.T.Fatal(err)
	}
	return s.ApplyKueue(file)
}

// KueueConfig is base with the names ApplyKueue gives its Kueue objects in
// this scope: GPU models (flavors), departments (ClusterQueues) and their
// quotas' keys, the priority class.
func (s *Scope) KueueConfig(base scheduler.Config) scheduler.Config {
	c := base
	c.GPUModels = append([]scheduler.GPUModel(nil), base.GPUModels...)
	for i := range c.GPUModels {
		c.GPUModels[i].Name = s.KueueName(base.GPUModels[i].Name)
	}
	c.Departments = nil
	for _, d := range base.Departments {
		q := map[string]int{}
		for m, n := range d.Quota {
			q[s.KueueName(m)] = n
		}
		d.Name, d.Quota = s.KueueName(d.Name), q
		c.Departments = append(c.Departments, d)
	}
	c.Kueue.PriorityClass = s.KueueName(base.Kueue.PriorityClass)
	return c
}
