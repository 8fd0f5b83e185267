//go:build integration

package kueue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ebbflow/ebbflow/internal/cluster"
)

// nominalGPUs reads a ClusterQueue's nominal GPU quota per flavor from the API server.
func nominalGPUs(t *testing.T, c *Client, cq string) map[string]int {
	t.Helper()
	u, err := c.Dyn.Resource(c.GVRs().ClusterQueue).Get(context.Background(), cq, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	groups, _, _ := unstructured.NestedSlice(u.Object, "spec", "resourceGroups")
	for _, g := range groups {
		fl, _, _ := unstructured.NestedSlice(g.(map[string]any), "flavors")
		for _, f := range fl {
			fm := f.(map[string]any)
			for _, r := range fm["resources"].([]any) {
				if rm := r.(map[string]any); rm["name"] == string(cluster.ResourceGPU) {
					out[fm["name"].(string)] = quantityInt(rm["nominalQuota"])
				}
			}
		}
	}
	return out
}

// The mixed pool's a100 quota follows the offline a100 nodes of the real
// cluster through the refresh loop; the fixed flavor (t4) keeps its quota.
func TestMixedPoolQuotaFollowsOfflineNodesOnKueue(t *testing.T) {
	s := cluster.NewScope(t)
	nodes := s.AddNodes(cluster.GroupA100, 3, cluster.NodeOptions{Pool: cluster.PoolOffline})
	s.AddNodes(cluster.GroupA100, 1, cluster.NodeOptions{Pool: cluster.PoolFixed})
	s.AddNodes(cluster.GroupT4, 1, cluster.NodeOptions{Pool: cluster.PoolOffline})
	c := trainingScope(t, s, map[string]map[string]int{"research": {"a100": 8, "t4": 3}, "product": {"a100": 4, "t4": 1}}, 0)
	a100, t4 := s.KueueName("a100"), s.KueueName("t4")
	research, product := s.KueueName("research"), s.KueueName("product")
	c.Cfg.Pools.MixedFlavors = []string{a100}
	c.Cfg.Pools.NodeSelector = cluster.LabelTest + "=" + s.ID
	ctx := s.Context()
	t.Cleanup(func() {
		for _, cq := range []string{research, product} {
			_ = s.Kube.CoreV1().Events(metav1.NamespaceDefault).DeleteCollection(context.Background(), metav1.DeleteOptions{},
				metav1.ListOptions{FieldSelector: "involvedObject.name=" + cq})
		}
	})

	check := func(step string, wantResearch, wantProduct int) {
		t.Helper()
		r, p := nominalGPUs(t, c, research), nominalGPUs(t, c, product)
		offline := 0
		l, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: cluster.LabelTest + "=" + s.ID + "," + cluster.LabelPool + "=" + cluster.PoolOffline + "," + cluster.LabelGPUProduct + "=" + cluster.GroupA100.GPUProduct})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range l.Items {
			q := n.Status.Allocatable[cluster.ResourceGPU]
			offline += int(q.Value())
		}
		if r[a100]+p[a100] != offline {
			t.Errorf("%s: a100 nominal quota %d + %d, want the %d offline a100 GPUs", step, r[a100], p[a100], offline)
		}
		if r[a100] != wantResearch || p[a100] != wantProduct {
			t.Errorf("%s: a100 nominal quota research %d product %d, want %d and %d (shares 8:4)", step, r[a100], p[a100], wantResearch, wantProduct)
		}
		if r[t4] != 3 || p[t4] != 1 {
			t.Errorf("%s: t4 (not a mixed flavor) quota changed: research %d product %d, want 3 and 1", step, r[t4], p[t4])
		}
		if g := testutil.ToFloat64(c.Metrics.MixedGPUs.WithLabelValues(a100)); int(g) != offline {
			t.Errorf("%s: ebbflow_training_mixed_pool_gpus %v, want %d", step, g, offline)
		}
	}

	if _, err := c.Refresh(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	check("3 offline nodes", 16, 8)
	if n := testutil.ToFloat64(c.Metrics.QuotaUpdates.WithLabelValues(a100)); n != 2 {
		t.Errorf("quota updates after the first refresh: %v, want 2 (one per ClusterQueue)", n)
	}
	// Idempotent: nothing changed, nothing patched.
	rv := func() string {
		u, err := c.Dyn.Resource(c.GVRs().ClusterQueue).Get(ctx, research, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(u.GetGeneration())
	}
	gen := rv()
	if _, err := c.Refresh(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(c.Metrics.QuotaUpdates.WithLabelValues(a100)); n != 2 || rv() != gen {
		t.Errorf("an unchanged pool patched the ClusterQueue: updates %v, generation %s → %s", n, gen, rv())
	}

	// Node mixing hands one node to inference: relabel it online.
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, cluster.LabelPool, cluster.PoolOnline)
	if _, err := s.Kube.CoreV1().Nodes().Patch(ctx, nodes[0].Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	check("one node online", 11, 5)

	// A node in handover to online leaves the pool's capacity at once.
	patch = fmt.Sprintf(`{"metadata":{"labels":{%q:"to-online"}}}`, "ebbflow.io/handover")
	if _, err := s.Kube.CoreV1().Nodes().Patch(ctx, nodes[1].Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, p := nominalGPUs(t, c, research), nominalGPUs(t, c, product)
	if r[a100]+p[a100] != 8 || r[a100] != 5 || p[a100] != 3 {
		t.Errorf("with one offline node left (8 GPUs), quota research %d product %d, want 5 and 3", r[a100], p[a100])
	}
	// The Standing the score reads follows the live quota.
	if d, _ := c.Cfg.Department(research); d.Quota[a100] != 5 || d.Quota[t4] != 3 {
		t.Errorf("client's research quota %v, want a100 5 and t4 3", d.Quota)
	}
	// A node change is signalled by the watch, and a sync between refreshes
	// follows it: the first node comes back offline.
	changed := make(chan struct{}, 1)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = c.WatchMixedNodes(wctx, changed) }()
	time.Sleep(500 * time.Millisecond) // let the watch open; a change before it is listed anyway
	patch = fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, cluster.LabelPool, cluster.PoolOffline)
	if _, err := s.Kube.CoreV1().Nodes().Patch(ctx, nodes[0].Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("no node-change signal 30 s after relabelling a node offline")
	}
	if _, ch, err := c.SyncQuota(ctx, time.Now()); err != nil || len(ch) != 2 {
		t.Fatalf("sync after the node change: %v changes, err %v", ch, err)
	}
	if r, p := nominalGPUs(t, c, research), nominalGPUs(t, c, product); r[a100] != 11 || p[a100] != 5 {
		t.Errorf("after the node came back offline (16 GPUs), quota research %d product %d, want 11 and 5", r[a100], p[a100])
	}
	// Each change left an Event on the ClusterQueue.
	evs, err := s.Kube.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + research})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, e := range evs.Items {
		if e.Reason == "MixedPoolQuota" && e.InvolvedObject.Kind == "ClusterQueue" {
			got++
		}
	}
	if got != 4 {
		t.Errorf("%d MixedPoolQuota events on ClusterQueue %s, want 4 (one per change)", got, research)
	}
}
