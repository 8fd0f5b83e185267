package kueue

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ebbflow/ebbflow/training/mixing"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// quotaConfig: a100 is the mixed pool's flavor, v100 the fixed pool's;
// research has twice product's configured a100 quota.
func quotaConfig() scheduler.Config {
	cfg := scheduler.DefaultConfig()
	cfg.Departments = []scheduler.Department{
		{Name: "research", Quota: map[string]int{"a100": 8, "v100": 6}},
		{Name: "product", Quota: map[string]int{"a100": 4, "v100": 2}},
	}
	cfg.Pools.MixedFlavors = []string{"a100"}
	return cfg
}

func shares(cfg scheduler.Config) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, d := range cfg.Departments {
		out[d.Name] = d.Quota
	}
	return out
}

type nodeOpt func(*corev1.Node)

func handover(h mixing.Handover) nodeOpt {
	return func(n *corev1.Node) { n.Labels[mixing.LabelHandover] = string(h) }
}

func handoverTaint(n *corev1.Node) {
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: mixing.TaintHandover, Effect: corev1.TaintEffectNoSchedule})
}

func node(name, pool, product string, gpus int64, opts ...nodeOpt) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		mixing.LabelPool: pool, "nvidia.com/gpu.product": product}}}
	n.Status.Allocatable = corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(gpus, resource.DecimalSI)}
	for _, o := range opts {
		o(&n)
	}
	return n
}

const (
	a100 = "NVIDIA-A100-SXM4-80GB"
	v100 = "Tesla-V100-SXM2-32GB"
)

func TestComputeMixedQuota(t *testing.T) {
	cases := []struct {
		name       string
		nodes      []corev1.Node
		capacity   int
		research   int
		product    int
		skipped    map[string]int
		countNodes int
	}{
		{name: "no node in the mixed pool", capacity: 0, research: 0, product: 0, skipped: map[string]int{}},
		{name: "three offline nodes", nodes: []corev1.Node{node("a", "offline", a100, 8), node("b", "offline", a100, 8), node("c", "offline", a100, 8)},
			capacity: 24, research: 16, product: 8, countNodes: 3, skipped: map[string]int{}},
		{name: "one node flipped to online", nodes: []corev1.Node{node("a", "offline", a100, 8), node("b", "offline", a100, 8), node("c", "online", a100, 8)},
			capacity: 16, research: 11, product: 5, countNodes: 2, skipped: map[string]int{SkipNotMixed: 1}},
		{name: "handover nodes excluded (label or taint, either way)", nodes: []corev1.Node{node("a", "offline", a100, 8),
			node("b", "offline", a100, 8, handover(mixing.HandoverToOnline)), node("c", "online", a100, 8, handover(mixing.HandoverToOffline)),
			node("d", "offline", a100, 8, handoverTaint)},
			capacity: 8, research: 5, product: 3, countNodes: 1, skipped: map[string]int{SkipHandover: 2, SkipNotMixed: 1}},
		{name: "fixed pool and fixed flavor not counted", nodes: []corev1.Node{node("a", "offline", a100, 4), node("f", "fixed", a100, 8),
			node("v", "offline", v100, 8), node("x", "offline", "unknown-gpu", 8)},
			capacity: 4, research: 3, product: 1, countNodes: 1, skipped: map[string]int{SkipNotMixed: 1, SkipFixedFlavor: 1, SkipNoGPUModel: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quotaConfig()
			q := ComputeMixedQuota(cfg, shares(cfg), tc.nodes)
			if q.Capacity["a100"] != tc.capacity || q.Nodes["a100"] != tc.countNodes {
				t.Fatalf("capacity %d GPUs on %d nodes, want %d on %d", q.Capacity["a100"], q.Nodes["a100"], tc.capacity, tc.countNodes)
			}
			if got := q.Quota["research"]["a100"]; got != tc.research {
				t.Errorf("research a100 quota %d, want %d", got, tc.research)
			}
			if got := q.Quota["product"]["a100"]; got != tc.product {
				t.Errorf("product a100 quota %d, want %d", got, tc.product)
			}
			if q.Quota["research"]["a100"]+q.Quota["product"]["a100"] != tc.capacity {
				t.Errorf("quotas %v do not sum to the capacity %d", q.Quota, tc.capacity)
			}
			for _, d := range q.Quota {
				if _, ok := d["v100"]; ok {
					t.Errorf("fixed flavor v100 got a quota: %v", q.Quota)
				}
			}
			if _, ok := q.Capacity["v100"]; ok {
				t.Errorf("fixed flavor v100 counted: %v", q.Capacity)
			}
			if fmt.Sprint(q.Skipped) != fmt.Sprint(tc.skipped) {
				t.Errorf("skipped %v, want %v", q.Skipped, tc.skipped)
			}
		})
	}
}

func TestShareLargestRemainderSumsToTotal(t *testing.T) {
	weights := [][]int{{1}, {1, 1}, {1, 1, 1}, {8, 4}, {3, 3, 1}, {0, 0, 0}, {5, 0, 2}, {7, 11, 13, 17}, {}}
	for _, w := range weights {
		for total := 0; total <= 67; total++ {
			parts := ShareLargestRemainder(total, w)
			sum, wsum := 0, 0
			for _, x := range w {
				wsum += x
			}
			for i, p := range parts {
				sum += p
				// Each part is within one GPU of its exact share.
				exact := float64(total) / float64(len(w))
				if wsum > 0 {
					exact = float64(total) * float64(w[i]) / float64(wsum)
				}
				if float64(p) < exact-1 || float64(p) > exact+1 {
					t.Errorf("ShareLargestRemainder(%d, %v)[%d] = %d, exact share %.2f", total, w, i, p, exact)
				}
			}
			if len(w) > 0 && sum != total {
				t.Errorf("ShareLargestRemainder(%d, %v) = %v sums to %d", total, w, parts, sum)
			}
		}
	}
	if got := fmt.Sprint(ShareLargestRemainder(10, []int{1, 1, 1})); got != "[4 3 3]" {
		t.Errorf("ties go to the first department: got %s", got)
	}
	if got := fmt.Sprint(ShareLargestRemainder(5, []int{0, 0})); got != "[3 2]" {
		t.Errorf("zero weights share equally: got %s", got)
	}
}

func clusterQueue(name string, quotas map[string]any) *unstructured.Unstructured {
	var flavors []any
	for _, f := range []string{"a100", "v100"} {
		flavors = append(flavors, map[string]any{"name": f, "resources": []any{
			map[string]any{"name": "cpu", "nominalQuota": "64"},
			map[string]any{"name": "nvidia.com/gpu", "nominalQuota": quotas[f]},
		}})
	}
	return &unstructured.Unstructured{Object: map[string]any{"kind": "ClusterQueue", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"resourceGroups": []any{map[string]any{"flavors": flavors}}}}}
}

func TestQuotaPatchOnlyMixedNominalQuota(t *testing.T) {
	cq := clusterQueue("research", map[string]any{"a100": int64(8), "v100": int64(6)})
	ops, ch := quotaPatch(cq, "nvidia.com/gpu", map[string]int{"a100": 16})
	if len(ch) != 1 || ch[0] != (QuotaChange{ClusterQueue: "research", Flavor: "a100", From: 8, To: 16}) {
		t.Fatalf("changes %+v", ch)
	}
	b, _ := json.Marshal(ops)
	want := `[{"op":"test","path":"/spec/resourceGroups/0/flavors/0/name","value":"a100"},` +
		`{"op":"test","path":"/spec/resourceGroups/0/flavors/0/resources/1/name","value":"nvidia.com/gpu"},` +
		`{"op":"test","path":"/spec/resourceGroups/0/flavors/0/resources/1/nominalQuota","value":8},` +
		`{"op":"replace","path":"/spec/resourceGroups/0/flavors/0/resources/1/nominalQuota","value":16}]`
	if string(b) != want {
		t.Errorf("patch\n%s\nwant\n%s", b, want)
	}
	// Unchanged (the quantity as a string, as the API server may return it): no patch.
	cq = clusterQueue("research", map[string]any{"a100": "16", "v100": int64(6)})
	if ops, ch := quotaPatch(cq, "nvidia.com/gpu", map[string]int{"a100": 16}); len(ops) != 0 || len(ch) != 0 {
		t.Errorf("unchanged quota patched: %v %v", ops, ch)
	}
}

func TestMixedFlavorsMustBeGPUModels(t *testing.T) {
	cfg := quotaConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Pools.MixedFlavors = []string{"a100", "h100"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "pools.mixed_flavors[1]") {
		t.Errorf("unknown mixed flavor: error %v, want one naming pools.mixed_flavors[1]", err)
	}
}
