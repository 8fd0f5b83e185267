package cluster

import (
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestNodeObjectShape(t *testing.T) {
	n := NodeObject("a100-x-1", "x", GroupA100, NodeOptions{Pool: PoolOnline, Unschedulable: true,
		Taints: []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}})
	for k, want := range map[string]string{LabelNodeGroup: "a100", LabelPool: PoolOnline, LabelGPUProduct: "NVIDIA-A100-SXM4-80GB", LabelTest: "x"} {
		if n.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], want)
		}
	}
	if n.Annotations[AnnotationKwokNode] != "fake" {
		t.Errorf("not annotated for kwok: %v", n.Annotations)
	}
	if g := n.Status.Allocatable[ResourceGPU]; g.Value() != 8 {
		t.Errorf("allocatable GPUs %s", g.String())
	}
	if len(n.Spec.Taints) != 2 || n.Spec.Taints[0].Key != LabelTest || n.Spec.Taints[0].Value != "x" || !n.Spec.Unschedulable {
		t.Errorf("taints %v unschedulable %v", n.Spec.Taints, n.Spec.Unschedulable)
	}
	cpu := NodeObject("cpu-x-1", "x", GroupCPU, NodeOptions{})
	if _, ok := cpu.Status.Allocatable[ResourceGPU]; ok {
		t.Error("cpu node has a GPU resource")
	}
	if _, ok := cpu.Labels[LabelGPUProduct]; ok || cpu.Labels[LabelPool] != PoolOffline {
		t.Errorf("cpu node labels %v", cpu.Labels)
	}
	one := NodeObject("t4-x-1", "x", GroupT4, NodeOptions{SetGPUs: true, GPUs: 1, CPU: "2"})
	if g, c := one.Status.Allocatable[ResourceGPU], one.Status.Allocatable[corev1.ResourceCPU]; g.Value() != 1 || c.Value() != 2 {
		t.Errorf("overrides: gpu %s cpu %s", g.String(), c.String())
	}
}

// The Kueue fixtures (testdata/kueue) are rewritten consistently for a scope: every reference points at a
// renamed object of the same files.
func TestScopeKueueExamples(t *testing.T) {
	s := &Scope{ID: "abc", Namespace: "ns-abc"}
	dir := filepath.Join("testdata", "kueue")
	var objs []*unstructured.Unstructured
	for _, f := range []string{"resourceflavors.yaml", "clusterqueues.yaml", "localqueues.yaml"} {
		got, err := ReadObjects(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, got...)
	}
	names := map[string]bool{}
	for _, o := range objs {
		if err := s.scopeKueueObject(o); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		names[o.GetKind()+"/"+o.GetName()] = true
	}
	for _, want := range []string{"ResourceFlavor/a100-abc", "ResourceFlavor/t4-abc", "ResourceFlavor/cpu-abc",
		"ClusterQueue/research-abc", "ClusterQueue/product-abc", "LocalQueue/research", "LocalQueue/product"} {
		if !names[want] {
			t.Errorf("missing %s in %v", want, names)
		}
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterQueue":
			if c, _, _ := unstructured.NestedString(o.Object, "spec", "cohortName"); c != "training-abc" {
				t.Errorf("%s cohort %q", o.GetName(), c)
			}
			groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "resourceGroups")
			var order []string
			for _, g := range groups {
				for _, f := range g.(map[string]any)["flavors"].([]any) {
					n := f.(map[string]any)["name"].(string)
					order = append(order, n)
					if !names["ResourceFlavor/"+n] {
						t.Errorf("%s names flavor %s, not in the files", o.GetName(), n)
					}
				}
			}
			if len(order) != 3 || order[0] != "cpu-abc" || order[1] != "a100-abc" || order[2] != "t4-abc" {
				t.Errorf("%s flavor order %v", o.GetName(), order)
			}
		case "LocalQueue":
			cq, _, _ := unstructured.NestedString(o.Object, "spec", "clusterQueue")
			if o.GetNamespace() != "ns-abc" || !names["ClusterQueue/"+cq] {
				t.Errorf("LocalQueue %s/%s → %s", o.GetNamespace(), o.GetName(), cq)
			}
		case "ResourceFlavor":
			labels, _, _ := unstructured.NestedStringMap(o.Object, "spec", "nodeLabels")
			tols, _, _ := unstructured.NestedSlice(o.Object, "spec", "tolerations")
			if labels[LabelTest] != "abc" || labels[LabelNodeGroup] == "" || len(tols) != 1 {
				t.Errorf("flavor %s: nodeLabels %v tolerations %v", o.GetName(), labels, tols)
			}
		}
	}
}
