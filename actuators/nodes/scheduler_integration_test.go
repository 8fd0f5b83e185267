//go:build integration

package nodes

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// These tests need the whole test control plane: kube-scheduler places
// the pods and kwok runs them on fake nodes (deploy/dev/services.sh up).
// Nodes carry the label and NoSchedule taint ebbflow.io/test=<id> so no
// other test's pods land on them.

const labelTest = "ebbflow.io/test"

func requireControlPlane(t *testing.T) {
	t.Helper()
	for _, e := range []string{"EBBFLOW_TEST_KUBE_SCHEDULER", "EBBFLOW_TEST_KWOK"} {
		mustEnv(t, e)
	}
}

// kwokNode creates a fake node kwok manages, with 2 CPUs, and waits until
// it is Ready.
func (w *world) kwokNode(i int, pool string) string {
	w.t.Helper()
	name := fmt.Sprintf("%s-%d", w.prefix, i)
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{mixing.LabelNodeGroup: w.group, mixing.LabelPool: pool, labelTest: w.prefix, "kubernetes.io/hostname": name, "type": "kwok"}},
		Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: labelTest, Value: w.prefix, Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{Capacity: alloc.DeepCopy(), Allocatable: alloc},
	}
	ctx := context.Background()
	if _, err := w.admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	w.waitFor(60*time.Second, "kwok to make "+name+" Ready", func() bool {
		got, err := w.admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range got.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
	return name
}

func (w *world) waitFor(d time.Duration, what string, ok func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// schedPod creates a pod for the scheduler: it selects the group and pool
// and tolerates only this test's nodes; one CPU each.
func (w *world) schedPod(name, pool, workload string) {
	w.t.Helper()
	one := int64(1)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns, Labels: map[string]string{mixing.LabelWorkload: workload, "app": name}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{mixing.LabelNodeGroup: w.group, mixing.LabelPool: pool, labelTest: w.prefix},
			Tolerations:                   []corev1.Toleration{{Key: labelTest, Operator: corev1.TolerationOpEqual, Value: w.prefix, Effect: corev1.TaintEffectNoSchedule}},
			TerminationGracePeriodSeconds: &one,
			Containers: []corev1.Container{{Name: "c", Image: "busybox",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}},
		},
	}
	if _, err := w.admin.CoreV1().Pods(w.ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) podState(name string) (node string, phase corev1.PodPhase, unschedulable bool) {
	p, err := w.admin.CoreV1().Pods(w.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "", "", false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			unschedulable = true
		}
	}
	return p.Spec.NodeName, p.Status.Phase, unschedulable
}

func (w *world) runningOn(name, node string) func() bool {
	return func() bool {
		n, ph, _ := w.podState(name)
		return n == node && ph == corev1.PodRunning
	}
}

// snapshot feeds the tracker from the API server, as the decider loop's
// informers do.
func (w *world) snapshot() mixing.Input {
	ctx := context.Background()
	tr := mixing.NewTracker("c1", mixing.LabelNodeGroup, mixing.DefaultConfig().SignalFor)
	nodes, err := w.admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: mixing.LabelNodeGroup + "=" + w.group})
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range nodes.Items {
		tr.SetNode(nodes.Items[i].Name, &nodes.Items[i])
		// A fresh utilisation reading: the online node is busy (95 %).
		tr.ObserveWindow(schemas.Window{Entity: schemas.NodeEntity("c1", nodes.Items[i].Name), Signal: "gpu_util", SizeS: 60, EndMs: time.Now().UnixMilli(), Mean: 95})
	}
	pods, err := w.admin.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range pods.Items {
		tr.SetPod(w.ns+"/"+pods.Items[i].Name, &pods.Items[i])
	}
	in, bad := tr.Snapshot(w.group, time.Now(), time.Minute)
	if len(bad) > 0 {
		w.t.Fatalf("unreadable nodes: %v", bad)
	}
	return in
}

// A full handover each way on the real control plane. An inference pod
// that does not fit the online node is Pending; the decider, fed from the
// API server, takes the offline node back; the actuator evicts its
// training pod (kwok ends it after its grace period), relabels and
// uncordons it, and the scheduler places the Pending inference pod on the
// returned node. Then the node goes offline again: its inference pod is
// evicted and a training pod is scheduled there.
func TestKubeFullHandoverWithScheduler(t *testing.T) {
	requireControlPlane(t)
	w := newWorld(t)
	on, off := w.kwokNode(1, "online"), w.kwokNode(2, "offline")
	w.schedPod("train-1", "offline", mixing.WorkloadTraining)
	w.waitFor(60*time.Second, "train-1 running on "+off, w.runningOn("train-1", off))
	w.schedPod("web-1", "online", mixing.WorkloadInference)
	w.schedPod("web-2", "online", mixing.WorkloadInference)
	w.waitFor(60*time.Second, "web-1 and web-2 running on "+on, func() bool { return w.runningOn("web-1", on)() && w.runningOn("web-2", on)() })
	w.schedPod("web-3", "online", mixing.WorkloadInference) // 2 CPUs are taken: Pending
	w.waitFor(60*time.Second, "web-3 Unschedulable", func() bool { n, _, u := w.podState("web-3"); return n == "" && u })

	// The decider sees the Pending pod and wants the offline node back.
	pol := mixing.DefaultPolicy()
	pol.KillBudgetPerHour = 1
	d, _ := mixing.Decide(pol, mixing.State{}, w.snapshot())
	if d.Direction != mixing.DirectionToOnline || d.Reason != mixing.ReasonPendingPods || len(d.Nodes) != 1 || d.Nodes[0].Node != off {
		t.Fatalf("decision %s %s %+v: %s", d.Direction, d.Reason, d.Nodes, d.Summary)
	}
	ev := d.Event(mixing.EventMeta{Cluster: "c1", Seq: 1, TTL: time.Minute, Source: "test"})
	cfg := DefaultConfig()
	cfg.DrainGrace = time.Second
	h := w.handler(cfg)
	apply := func(ev schemas.NodesDecision) schemas.Action {
		b, err := schemas.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		dd, err := h.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		act, err := h.Apply(context.Background(), dd)
		if err != nil {
			t.Fatal(err)
		}
		return act
	}
	if act := apply(ev); !strings.Contains(act.Reason, "1 evicted") {
		t.Fatalf("to-online: %+v", act)
	}
	reconcileUntil(t, h, w, off)
	assertPool(t, w.get(off), "online", false)
	w.waitFor(60*time.Second, "web-3 scheduled and running on the returned node", w.runningOn("web-3", off))
	if _, err := w.admin.CoreV1().Pods(w.ns).Get(context.Background(), "train-1", metav1.GetOptions{}); err == nil {
		t.Fatal("the training pod survived the handover")
	}

	// Back offline: web-3 is evicted, a training pod lands on the node.
	flip := schemas.NodeFlip{Node: off, From: "online", To: "offline", Why: "emptiest online node", InferencePods: 1}
	ev2 := ev
	ev2.ID, ev2.Seq, ev2.Direction, ev2.Nodes = ev.ID+"-back", 2, "to-offline", []schemas.NodeFlip{flip}
	ev2.Reason.Code = string(mixing.ReasonUtilisationLow)
	if act := apply(ev2); !strings.Contains(act.Reason, "1 evicted") {
		t.Fatalf("to-offline: %+v", act)
	}
	reconcileUntil(t, h, w, off)
	assertPool(t, w.get(off), "offline", false)
	w.schedPod("train-2", "offline", mixing.WorkloadTraining)
	w.waitFor(60*time.Second, "train-2 running on the node back in training", w.runningOn("train-2", off))
}
