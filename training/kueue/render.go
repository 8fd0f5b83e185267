package kueue

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ebbflow/ebbflow/training/scheduler"
)

// Labels and annotations ebbflow puts on training Jobs.
const (
	LabelQueueName     = "kueue.x-k8s.io/queue-name"
	LabelPriorityClass = "kueue.x-k8s.io/priority-class"
	LabelDepartment    = "ebbflow.io/department"
	LabelFamily        = "ebbflow.io/family"
	LabelUser          = "ebbflow.io/user"
	LabelPool          = "ebbflow.io/pool"
	LabelGPUModel      = "ebbflow.io/gpu-model"
	LabelManaged       = "ebbflow.io/training"
	// AnnotationScore holds the score terms as JSON.
	AnnotationScore = "ebbflow.io/score"
	// AnnotationSizing holds the sizing inputs and result as JSON.
	AnnotationSizing = "ebbflow.io/sizing"
	// AnnotationModels lists the allowed GPU models, preferred first.
	AnnotationModels = "ebbflow.io/gpu-models"
	// AnnotationExpected is the expected duration.
	AnnotationExpected = "ebbflow.io/expected-duration"
	// AnnotationSubmitted is when the job was submitted (RFC 3339); the
	// wait credit counts from it.
	AnnotationSubmitted = "ebbflow.io/submitted"
)

// RenderJob renders a planned job as a suspended, Kueue-managed batch/v1 Job.
func RenderJob(cfg scheduler.Config, spec scheduler.JobSpec, p scheduler.Plan, now time.Time) (*batchv1.Job, error) {
	dept, ok := cfg.Department(spec.Department)
	if !ok {
		return nil, fmt.Errorf("kueue: render job %s: unknown department %q", p.JobName, spec.Department)
	}
	gm, ok := cfg.GPUModel(p.Choice.Model)
	if !ok {
		return nil, fmt.Errorf("kueue: render job %s: unknown GPU model %q", p.JobName, p.Choice.Model)
	}
	score, _ := json.Marshal(scheduler.ScoreEvent(p.Score))
	sizing, _ := json.Marshal(scheduler.SizingEvent(p.Sizing))
	models, _ := json.Marshal(p.Placement.Models)
	gpus := resource.MustParse(strconv.Itoa(p.Choice.GPUs))
	cpuReq := milliCPU(p.Sizing.CPURequest)
	cpuLim := milliCPU(math.Max(p.Sizing.CPULimit, p.Sizing.CPURequest))
	mem, err := resource.ParseQuantity(spec.Memory)
	if err != nil {
		return nil, fmt.Errorf("kueue: render job %s: memory: %w", p.JobName, err)
	}
	gpuRes := corev1.ResourceName(cfg.Pools.GPUResource)
	one := int32(1)
	suspend := true
	backoff := int32(0)
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: p.JobName, Namespace: p.Namespace,
			Labels: map[string]string{
				LabelQueueName: dept.Queue(cfg.Kueue.LocalQueue), LabelPriorityClass: cfg.Kueue.PriorityClass,
				LabelDepartment: spec.Department, LabelFamily: spec.Family, LabelUser: spec.User,
				LabelPool: p.Placement.Pool, LabelGPUModel: gm.Name, LabelManaged: "true",
			},
			Annotations: map[string]string{
				AnnotationScore: string(score), AnnotationSizing: string(sizing), AnnotationModels: string(models),
				AnnotationExpected: spec.ExpectedDuration.String(), AnnotationSubmitted: now.UTC().Format(time.RFC3339),
			},
		},
		Spec: batchv1.JobSpec{
			Suspend: &suspend, Parallelism: &one, Completions: &one, BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelDepartment: spec.Department, LabelFamily: spec.Family}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					NodeSelector:  map[string]string{cfg.Pools.GPUModelLabel: gm.LabelValue()},
					Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
							MatchExpressions: []corev1.NodeSelectorRequirement{{Key: cfg.Pools.Label, Operator: corev1.NodeSelectorOpIn, Values: []string{p.Placement.Pool}}},
						}}},
					}},
					Tolerations: []corev1.Toleration{{Key: cfg.Pools.GPUResource, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers: []corev1.Container{{
						Name: "train", Image: spec.Image, Command: spec.Command,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: cpuReq, corev1.ResourceMemory: mem, gpuRes: gpus},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: cpuLim, corev1.ResourceMemory: mem, gpuRes: gpus},
						},
					}},
				},
			},
		},
	}
	return job, nil
}

func milliCPU(cores float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Ceil(cores*1000-1e-9)), resource.DecimalSI)
}

// GVRs and kinds of the Kueue objects, for an API version such as
// "kueue.x-k8s.io/v1beta2".
type GVRs struct {
	APIVersion            string
	ResourceFlavor        schema.GroupVersionResource
	ClusterQueue          schema.GroupVersionResource
	LocalQueue            schema.GroupVersionResource
	Workload              schema.GroupVersionResource
	WorkloadPriorityClass schema.GroupVersionResource
}

// NewGVRs returns the resources of apiVersion.
func NewGVRs(apiVersion string) (GVRs, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return GVRs{}, fmt.Errorf("kueue: api_version %q: %w", apiVersion, err)
	}
	r := func(res string) schema.GroupVersionResource { return gv.WithResource(res) }
	return GVRs{APIVersion: apiVersion, ResourceFlavor: r("resourceflavors"), ClusterQueue: r("clusterqueues"),
		LocalQueue: r("localqueues"), Workload: r("workloads"), WorkloadPriorityClass: r("workloadpriorityclasses")}, nil
}

// SetupObjects renders the Kueue objects a configuration implies: one
// ResourceFlavor per GPU model (node label of the model), one ClusterQueue
// per department in one cohort with its nominal GPU quota per flavor,
// reclaiming lent quota from lower-priority borrowers only (the score and
// the guard set those priorities; no pre-emption within a department, whose
// waiting jobs' scores grow past its running ones'), one LocalQueue per department namespace,
// and the WorkloadPriorityClass jobs are labelled with. cpuMem is the CPU
// and memory quota each department gets per flavor (Kueue needs every
// requested resource covered).
func SetupObjects(cfg scheduler.Config, cpuPerFlavor, memPerFlavor string) []*unstructured.Unstructured {
	apiVersion := cfg.Kueue.APIVersion
	var out []*unstructured.Unstructured
	obj := func(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
			"metadata": map[string]any{"name": name, "labels": map[string]any{LabelManaged: "true"}}}}
		if ns != "" {
			u.SetNamespace(ns)
		}
		for k, v := range spec {
			u.Object[k] = v
		}
		return u
	}
	out = append(out, obj("WorkloadPriorityClass", "", cfg.Kueue.PriorityClass, map[string]any{
		"value": int64(0), "description": "ebbflow training jobs: ebbflow writes WPAI's score into each Workload's spec.priority"}))
	for _, g := range cfg.GPUModels {
		out = append(out, obj("ResourceFlavor", "", g.Name, map[string]any{"spec": map[string]any{
			"nodeLabels":  map[string]any{cfg.Pools.GPUModelLabel: g.LabelValue()},
			"tolerations": []any{map[string]any{"key": cfg.Pools.GPUResource, "operator": "Exists", "effect": "NoSchedule"}},
		}}))
	}
	for _, d := range cfg.Departments {
		var flavors []any
		for _, g := range cfg.GPUModels {
			flavors = append(flavors, map[string]any{"name": g.Name, "resources": []any{
				map[string]any{"name": "cpu", "nominalQuota": cpuPerFlavor},
				map[string]any{"name": "memory", "nominalQuota": memPerFlavor},
				map[string]any{"name": cfg.Pools.GPUResource, "nominalQuota": int64(d.Quota[g.Name])},
			}})
		}
		out = append(out, obj("ClusterQueue", "", d.Name, map[string]any{"spec": map[string]any{
			"cohortName":        cfg.Kueue.Cohort,
			"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": d.Ns()}},
			"queueingStrategy":  "BestEffortFIFO",
			"resourceGroups": []any{map[string]any{
				"coveredResources": []any{"cpu", "memory", cfg.Pools.GPUResource},
				"flavors":          flavors,
			}},
			"flavorFungibility": map[string]any{"whenCanBorrow": "TryNextFlavor", "whenCanPreempt": "TryNextFlavor"},
			"preemption": map[string]any{
				"reclaimWithinCohort": "LowerPriority",
				"withinClusterQueue":  "Never",
				"borrowWithinCohort":  map[string]any{"policy": "Never"},
			},
		}}))
		out = append(out, obj("LocalQueue", d.Ns(), d.Queue(cfg.Kueue.LocalQueue), map[string]any{"spec": map[string]any{"clusterQueue": d.Name}}))
	}
	return out
}

// ProtectedPriority is the priority of a running job the guard protects:
// above every score, so Kueue's LowerPriority reclaim never picks it.
func ProtectedPriority(cfg scheduler.Config) int32 {
	return scheduler.ScoreTerms{Total: cfg.Score.WithinQuota + cfg.Score.WaitCreditMax + 1}.Priority()
}

// sortedKeys returns a map's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
