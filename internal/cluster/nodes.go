package cluster

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels, annotations and resources of the test cluster's nodes and pods.
const (
	// LabelNodeGroup names a node's group (cpu, t4, a100): mixing's default group label.
	LabelNodeGroup = "ebbflow.io/node-group"
	// LabelPool is the node's pool: PoolOnline, PoolOffline or PoolFixed.
	LabelPool = "ebbflow.io/pool"
	// LabelGPUProduct is the GPU model label NVIDIA's GPU feature discovery sets.
	LabelGPUProduct = "nvidia.com/gpu.product"
	// ResourceGPU is the extended resource of NVIDIA's device plugin.
	ResourceGPU corev1.ResourceName = "nvidia.com/gpu"
	// LabelTest (label and NoSchedule taint key) confines a scope's pods to its nodes.
	LabelTest = "ebbflow.io/test"
	// AnnotationKwokNode marks the nodes kwok manages (deploy/dev/kwok.sh selects on it).
	AnnotationKwokNode = "kwok.x-k8s.io/node"
	// AnnotationRunDuration on a Job's pod template: kwok completes the pod (Succeeded) this
	// long (a Go duration, "90s") after it started running. Job pods without it run until
	// deleted. See deploy/dev/kwok/stages.yaml.
	AnnotationRunDuration = "ebbflow.io/run-duration"
)

// Pools.
const (
	PoolOnline  = "online"
	PoolOffline = "offline"
	PoolFixed   = "fixed"
)

// NodeGroup is a kind of node: its allocatable resources and GPU model.
type NodeGroup struct {
	Name       string // value of LabelNodeGroup
	CPU        string // allocatable CPU, a resource quantity
	Memory     string // allocatable memory
	GPUs       int64  // allocatable nvidia.com/gpu (0: no GPU resource, no GPU label)
	GPUProduct string // value of LabelGPUProduct
	Pods       int64  // allocatable pods
}

// The node groups of the test cluster (the GPU product values are what GPU feature discovery
// reports for these cards).
var (
	GroupCPU  = NodeGroup{Name: "cpu", CPU: "32", Memory: "128Gi", Pods: 110}
	GroupT4   = NodeGroup{Name: "t4", CPU: "32", Memory: "192Gi", GPUs: 4, GPUProduct: "Tesla-T4", Pods: 110}
	GroupA100 = NodeGroup{Name: "a100", CPU: "64", Memory: "512Gi", GPUs: 8, GPUProduct: "NVIDIA-A100-SXM4-80GB", Pods: 110}
)

// Groups lists the node groups.
func Groups() []NodeGroup { return []NodeGroup{GroupCPU, GroupT4, GroupA100} }

// NodeOptions shape the nodes AddNodes creates.
type NodeOptions struct {
	Pool          string            // LabelPool value; empty: PoolOffline
	Labels        map[string]string // extra labels
	Taints        []corev1.Taint    // extra taints (the scope's own taint is always there)
	Unschedulable bool              // cordoned
	// CPU, Memory, GPUs, Pods override the group's allocatable when set (GPUs: when >= 0 and
	// SetGPUs is true).
	CPU, Memory string
	GPUs        int64
	SetGPUs     bool
	Pods        int64
}

// NodeObject is the Node AddNodes creates (pure; exported for tests of the shape): labels for
// group, pool, GPU model, hostname and the scope id; the scope's NoSchedule taint; capacity =
// allocatable from the group; annotated for kwok.
func NodeObject(name, scopeID string, g NodeGroup, o NodeOptions) *corev1.Node {
	pool := o.Pool
	if pool == "" {
		pool = PoolOffline
	}
	labels := map[string]string{
		LabelNodeGroup:           g.Name,
		LabelPool:                pool,
		LabelTest:                scopeID,
		"kubernetes.io/hostname": name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"type":                   "kwok",
	}
	if g.GPUProduct != "" {
		labels[LabelGPUProduct] = g.GPUProduct
	}
	maps.Copy(labels, o.Labels)
	cpu, mem, gpus, pods := g.CPU, g.Memory, g.GPUs, g.Pods
	if o.CPU != "" {
		cpu = o.CPU
	}
	if o.Memory != "" {
		mem = o.Memory
	}
	if o.SetGPUs {
		gpus = o.GPUs
	}
	if o.Pods > 0 {
		pods = o.Pods
	}
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods:   *resource.NewQuantity(pods, resource.DecimalSI),
	}
	if gpus > 0 {
		alloc[ResourceGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	taints := append([]corev1.Taint{{Key: LabelTest, Value: scopeID, Effect: corev1.TaintEffectNoSchedule}}, o.Taints...)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{AnnotationKwokNode: "fake"},
		},
		Spec: corev1.NodeSpec{Taints: taints, Unschedulable: o.Unschedulable},
		Status: corev1.NodeStatus{
			Capacity:    alloc.DeepCopy(),
			Allocatable: alloc,
		},
	}
}

// AddNodes creates n kwok nodes of group g named "<group>-<scope id>-<i>" (i continues across
// calls), waits until kwok reports them Ready, and deletes them when the test ends.
func (s *Scope) AddNodes(g NodeGroup, n int, o NodeOptions) []*corev1.Node {
	s.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*corev1.Node
	for range n {
		s.nodeSeq++
		name := fmt.Sprintf("%s-%s-%d", g.Name, s.ID, s.nodeSeq)
		node, err := s.Kube.CoreV1().Nodes().Create(ctx, NodeObject(name, s.ID, g, o), metav1.CreateOptions{})
		if err != nil {
			s.T.Fatalf("creating node %s: %v", name, err)
		}
		s.T.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				s.T.Logf("deleting node %s: %v", name, err)
			}
		})
		out = append(out, node)
	}
	for i, node := range out {
		name := node.Name
		WaitFor(s.T, 60*time.Second, "kwok to make node "+name+" Ready", func(ctx context.Context) (bool, string, error) {
			got, err := s.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			out[i] = got
			for _, c := range got.Status.Conditions {
				if c.Type == corev1.NodeReady {
					return c.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s (%s)", c.Status, c.Reason), nil
				}
			}
			return false, "no Ready condition (is kwok running? .dev/run/kwok/kwok.log)", nil
		})
	}
	return out
}

// Confine gives a pod spec the node selector and toleration of the scope's nodes, so its pods
// run only there.
func (s *Scope) Confine(spec *corev1.PodSpec) {
	if spec.NodeSelector == nil {
		spec.NodeSelector = map[string]string{}
	}
	spec.NodeSelector[LabelTest] = s.ID
	spec.Tolerations = append(spec.Tolerations, s.Toleration())
}

// Toleration tolerates the scope's node taint.
func (s *Scope) Toleration() corev1.Toleration {
	return corev1.Toleration{Key: LabelTest, Operator: corev1.TolerationOpEqual, Value: s.ID, Effect: corev1.TaintEffectNoSchedule}
}

// Cordon marks a node unschedulable (or schedulable again).
func (s *Scope) Cordon(node string, unschedulable bool) {
	s.T.Helper()
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, unschedulable)
	if _, err := s.Kube.CoreV1().Nodes().Patch(s.Context(), node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		s.T.Fatalf("cordon %s: %v", node, err)
	}
}

// Pods lists the scope namespace's pods matching a label selector ("" for all).
func (s *Scope) Pods(ctx context.Context, selector string) ([]corev1.Pod, error) {
	l, err := s.Kube.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing pods %q in %s: %w", selector, s.Namespace, err)
	}
	return l.Items, nil
}

// WaitPods waits until the pods matching selector satisfy cond and returns them.
func (s *Scope) WaitPods(selector string, timeout time.Duration, what string, cond func([]corev1.Pod) bool) []corev1.Pod {
	s.T.Helper()
	var pods []corev1.Pod
	WaitFor(s.T, timeout, what, func(ctx context.Context) (bool, string, error) {
		got, err := s.Pods(ctx, selector)
		if err != nil {
			return false, err.Error(), nil
		}
		pods = got
		return cond(got), Describe(got), nil
	})
	return pods
}

// WaitPodsRunning waits until exactly n pods match selector and all are Running (bound to a
// node, not terminating) and returns them.
func (s *Scope) WaitPodsRunning(selector string, n int, timeout time.Duration) []corev1.Pod {
	s.T.Helper()
	return s.WaitPods(selector, timeout, fmt.Sprintf("%d Running pods %q in %s", n, selector, s.Namespace), func(pods []corev1.Pod) bool {
		return len(pods) == n && CountPhase(pods, corev1.PodRunning) == n
	})
}

// CountPhase counts the pods in a phase that are not terminating.
func CountPhase(pods []corev1.Pod, phase corev1.PodPhase) int {
	n := 0
	for _, p := range pods {
		if p.Status.Phase == phase && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n
}

// OnNodes maps node name to the number of the pods bound to it.
func OnNodes(pods []corev1.Pod) map[string]int {
	m := map[string]int{}
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			m[p.Spec.NodeName]++
		}
	}
	return m
}

// PodFailedScheduling reports whether the scheduler recorded the pod as unschedulable (condition
// PodScheduled=False, reason Unschedulable) and with which message.
func PodFailedScheduling(p corev1.Pod) (bool, string) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true, c.Message
		}
	}
	return false, ""
}

// NodeNames lists the nodes' names.
func NodeNames(nodes []*corev1.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}
