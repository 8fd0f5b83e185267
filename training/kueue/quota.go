package kueue

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ebbflow/ebbflow/training/mixing"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// Why a node was left out of the mixed pool's capacity.
const (
	SkipNotMixed    = "not_in_mixed_pool"
	SkipHandover    = "in_handover"
	SkipNoGPUModel  = "no_gpu_model"
	SkipFixedFlavor = "not_a_mixed_flavor"
)

// MixedQuota is what the mixed pool offers training and how it is shared.
type MixedQuota struct {
	// Capacity is the GPUs per mixed flavor on nodes in the mixed pool and
	// not in handover.
	Capacity map[string]int
	// Nodes is how many nodes each mixed flavor's capacity comes from.
	Nodes map[string]int
	// Quota is the nominal GPU quota per department and mixed flavor; per
	// flavor it sums to Capacity exactly.
	Quota map[string]map[string]int
	// Skipped counts the nodes left out, by reason.
	Skipped map[string]int
}

// ComputeMixedQuota is the pure quota function: from the nodes (any set;
// those outside the mixed pool are skipped) it counts the allocatable GPUs
// of each mixed flavor (pools.mixed_flavors) on nodes whose pool label is
// pools.mixed and that are not in handover (mixing's handover label or
// taint), and shares each flavor's GPUs among the departments in proportion
// to shares (department → model → configured quota; all zero: equal
// shares) by largest remainder, ties to the department listed first, so
// the shares sum to the capacity. Fixed flavors get no entry.
func ComputeMixedQuota(cfg scheduler.Config, shares map[string]map[string]int, nodes []corev1.Node) MixedQuota {
	q := MixedQuota{Capacity: map[string]int{}, Nodes: map[string]int{}, Quota: map[string]map[string]int{}, Skipped: map[string]int{}}
	byLabel := map[string]string{}
	for _, g := range cfg.GPUModels {
		byLabel[g.LabelValue()] = g.Name
	}
	for _, m := range cfg.Pools.MixedFlavors {
		q.Capacity[m] = 0
	}
	for _, n := range nodes {
		model, reason := mixedNodeModel(cfg, byLabel, n)
		if reason != "" {
			q.Skipped[reason]++
			continue
		}
		q.Capacity[model] += nodeGPUs(n, cfg.Pools.GPUResource)
		q.Nodes[model]++
	}
	for _, d := range cfg.Departments {
		q.Quota[d.Name] = map[string]int{}
	}
	for _, m := range cfg.Pools.MixedFlavors {
		w := make([]int, len(cfg.Departments))
		for i, d := range cfg.Departments {
			w[i] = shares[d.Name][m]
		}
		for i, n := range ShareLargestRemainder(q.Capacity[m], w) {
			q.Quota[cfg.Departments[i].Name][m] = n
		}
	}
	return q
}

// mixedNodeModel returns the mixed flavor a node's GPUs count for, or why
// they do not count.
func mixedNodeModel(cfg scheduler.Config, byLabel map[string]string, n corev1.Node) (model, skip string) {
	if n.Labels[cfg.Pools.Label] != cfg.Pools.Mixed {
		return "", SkipNotMixed
	}
	if n.Labels[mixing.LabelHandover] != "" {
		return "", SkipHandover
	}
	for _, t := range n.Spec.Taints {
		if t.Key == mixing.TaintHandover {
			return "", SkipHandover
		}
	}
	model, ok := byLabel[n.Labels[cfg.Pools.GPUModelLabel]]
	if !ok {
		return "", SkipNoGPUModel
	}
	if !cfg.Pools.IsMixedFlavor(model) {
		return "", SkipFixedFlavor
	}
	return model, ""
}

func nodeGPUs(n corev1.Node, res string) int {
	if q, ok := n.Status.Allocatable[corev1.ResourceName(res)]; ok {
		return int(q.Value())
	}
	if q, ok := n.Status.Capacity[corev1.ResourceName(res)]; ok {
		return int(q.Value())
	}
	return 0
}

// ShareLargestRemainder splits total into len(weights) integer parts in
// proportion to weights (all zero or negative: equal weights): each part
// gets the floor of its exact share, and the units left go one each to the
// largest fractional parts, ties to the lower index. The parts sum to total.
func ShareLargestRemainder(total int, weights []int) []int {
	out := make([]int, len(weights))
	if len(weights) == 0 || total <= 0 {
		return out
	}
	w := make([]int64, len(weights))
	var sum int64
	for i, x := range weights {
		if x > 0 {
			w[i] = int64(x)
			sum += int64(x)
		}
	}
	if sum == 0 {
		for i := range w {
			w[i] = 1
		}
		sum = int64(len(w))
	}
	rem := make([]int64, len(w))
	left := total
	for i := range w {
		num := int64(total) * w[i]
		out[i] = int(num / sum)
		rem[i] = num % sum
		left -= out[i]
	}
	idx := make([]int, len(w))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return rem[idx[a]] > rem[idx[b]] })
	for k := 0; k < left; k++ {
		out[idx[k%len(idx)]]++
	}
	return out
}

// QuotaChange is one ClusterQueue's nominal GPU quota of one mixed flavor
// rewritten by SyncQuota.
type QuotaChange struct {
	ClusterQueue, Flavor string
	From, To             int
}

// quotaPatch returns the JSON patch that sets the nominal GPU quota of the
// mixed flavors of a ClusterQueue to want (flavor → GPUs), touching only
// those nominalQuota fields (each guarded by a test of the flavor and
// resource name at its index and of the value read), and the changes; no
// ops when every quota is already as wanted. Pure.
func quotaPatch(cq *unstructured.Unstructured, gpuRes string, want map[string]int) ([]map[string]any, []QuotaChange) {
	var ops []map[string]any
	var changes []QuotaChange
	groups, _, _ := unstructured.NestedSlice(cq.Object, "spec", "resourceGroups")
	for gi, g := range groups {
		gm, _ := g.(map[string]any)
		flavors, _ := gm["flavors"].([]any)
		for fi, f := range flavors {
			fm, _ := f.(map[string]any)
			name, _ := fm["name"].(string)
			to, ok := want[name]
			if !ok {
				continue
			}
			res, _ := fm["resources"].([]any)
			for ri, r := range res {
				rm, _ := r.(map[string]any)
				if rm["name"] != gpuRes {
					continue
				}
				from := quantityInt(rm["nominalQuota"])
				if from == to {
					continue
				}
				base := fmt.Sprintf("/spec/resourceGroups/%d/flavors/%d", gi, fi)
				ops = append(ops,
					map[string]any{"op": "test", "path": base + "/name", "value": name},
					map[string]any{"op": "test", "path": fmt.Sprintf("%s/resources/%d/name", base, ri), "value": gpuRes},
					map[string]any{"op": "test", "path": fmt.Sprintf("%s/resources/%d/nominalQuota", base, ri), "value": rm["nominalQuota"]},
					map[string]any{"op": "replace", "path": fmt.Sprintf("%s/resources/%d/nominalQuota", base, ri), "value": int64(to)})
				changes = append(changes, QuotaChange{ClusterQueue: cq.GetName(), Flavor: name, From: from, To: to})
			}
		}
	}
	return ops, changes
}

// SyncQuota makes the mixed flavors' nominal GPU quota of every
// department's ClusterQueue follow the mixed pool: it lists the mixed
// pool's nodes, computes the quota (ComputeMixedQuota, shares from the
// configured quotas), and JSON-patches only the nominalQuota fields that
// differ (none when nothing changed), with a log line, a counter and an
// Event on the ClusterQueue per change. The client's view of the quotas
// (Standing, Borrowers) follows. A no-op without pools.mixed_flavors.
func (c *Client) SyncQuota(ctx context.Context, now time.Time) (MixedQuota, []QuotaChange, error) {
	if len(c.Cfg.Pools.MixedFlavors) == 0 {
		return MixedQuota{}, nil, nil
	}
	if c.shares == nil {
		c.Cfg.Departments = append([]scheduler.Department(nil), c.Cfg.Departments...)
		c.shares = map[string]map[string]int{}
		for _, d := range c.Cfg.Departments {
			c.shares[d.Name] = map[string]int{}
			for m, n := range d.Quota {
				c.shares[d.Name][m] = n
			}
		}
	}
	sel := c.Cfg.Pools.Label + "=" + c.Cfg.Pools.Mixed
	if s := strings.TrimSpace(c.Cfg.Pools.NodeSelector); s != "" {
		sel += "," + s
	}
	nl, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return MixedQuota{}, nil, fmt.Errorf("kueue: list mixed-pool nodes (%s): %w", sel, err)
	}
	q := ComputeMixedQuota(c.Cfg, c.shares, nl.Items)
	for m, n := range q.Capacity {
		c.Metrics.MixedGPUs.WithLabelValues(m).Set(float64(n))
	}
	var all []QuotaChange
	for i, d := range c.Cfg.Departments {
		cq, err := c.Dyn.Resource(c.gvr.ClusterQueue).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return q, all, fmt.Errorf("kueue: read ClusterQueue %s for its mixed-pool quota: %w", d.Name, err)
		}
		ops, changes := quotaPatch(cq, c.Cfg.Pools.GPUResource, q.Quota[d.Name])
		if len(ops) > 0 {
			body, _ := json.Marshal(ops)
			if _, err := c.Dyn.Resource(c.gvr.ClusterQueue).Patch(ctx, d.Name, types.JSONPatchType, body, metav1.PatchOptions{FieldManager: "ebbflow-training"}); err != nil {
				return q, all, fmt.Errorf("kueue: patch nominal quota of ClusterQueue %s: %w", d.Name, err)
			}
		}
		// The live quota of the mixed flavors is what Standing and Borrowers read.
		nq := map[string]int{}
		for m, n := range d.Quota {
			nq[m] = n
		}
		for m, n := range q.Quota[d.Name] {
			nq[m] = n
		}
		c.Cfg.Departments[i].Quota = nq
		for _, ch := range changes {
			c.Metrics.QuotaUpdates.WithLabelValues(ch.Flavor).Inc()
			msg := fmt.Sprintf("nominal quota of %s %s: %d → %d GPUs (mixed pool: %d GPUs on %d nodes, shared by configured quota)",
				ch.Flavor, c.Cfg.Pools.GPUResource, ch.From, ch.To, q.Capacity[ch.Flavor], q.Nodes[ch.Flavor])
			c.Log.Info("training quota", "cluster_queue", ch.ClusterQueue, "flavor", ch.Flavor, "from", ch.From, "to", ch.To,
				"mixed_gpus", q.Capacity[ch.Flavor], "mixed_nodes", q.Nodes[ch.Flavor], "skipped", q.Skipped)
			c.event(ctx, cq, "MixedPoolQuota", msg, now)
		}
		all = append(all, changes...)
	}
	return q, all, nil
}

// event records a Kubernetes Event on a cluster-scoped Kueue object (in
// the default namespace); failing to is logged, not fatal.
func (c *Client) event(ctx context.Context, obj *unstructured.Unstructured, reason, msg string, now time.Time) {
	if c.Kube == nil {
		return
	}
	t := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: obj.GetName() + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Name: obj.GetName(),
			UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion()},
		Reason: reason, Message: msg, Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "ebbflow-training"},
		FirstTimestamp: t, LastTimestamp: t, Count: 1,
	}
	if _, err := c.Kube.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.Log.Warn("training quota event", "cluster_queue", obj.GetName(), "err", err)
	}
}

// WatchMixedNodes signals on changed (without blocking; one pending signal
// is enough) whenever a node carrying the pool label is added, deleted, or
// has its labels or taints changed, so the caller re-syncs the quota
// between refreshes. It returns when ctx ends; a closed watch is reopened.
func (c *Client) WatchMixedNodes(ctx context.Context, changed chan<- struct{}) error {
	sel := c.Cfg.Pools.Label
	if s := strings.TrimSpace(c.Cfg.Pools.NodeSelector); s != "" {
		sel += "," + s
	}
	seen := map[string]string{} // node → labels and taints it was last seen with
	key := func(n *corev1.Node) string {
		b, _ := json.Marshal([]any{n.Labels, n.Spec.Taints})
		return string(b)
	}
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	for ctx.Err() == nil {
		l, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			c.Log.Warn("training quota: list nodes", "selector", sel, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		for i := range l.Items {
			seen[l.Items[i].Name] = key(&l.Items[i])
		}
		w, err := c.Kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: l.ResourceVersion})
		if err != nil {
			c.Log.Warn("training quota: watch nodes", "selector", sel, "err", err)
			continue
		}
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			k := key(n)
			if ev.Type == "DELETED" {
				delete(seen, n.Name)
				signal()
			} else if seen[n.Name] != k {
				seen[n.Name] = k
				signal()
			}
		}
		w.Stop()
	}
	return nil
}
