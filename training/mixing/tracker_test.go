package mixing

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ebbflow/ebbflow/schemas"
)

func knode(name, group, pool, handover string) *corev1.Node {
	l := map[string]string{LabelNodeGroup: group, LabelPool: pool}
	if handover != "" {
		l[LabelHandover] = handover
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32")}}}
}

func kpod(name, node, workload string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{LabelWorkload: workload},
		CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

func win(node, signal string, end time.Time, v float64) schemas.Window {
	return schemas.Window{Entity: schemas.NodeEntity("c1", node), Signal: signal, Kind: schemas.KindGauge, SizeS: 60,
		StartMs: end.Add(-time.Minute).UnixMilli(), EndMs: end.UnixMilli(), Count: 1, Mean: v}
}

func TestTrackerSnapshot(t *testing.T) {
	cfg := DefaultConfig()
	tr := NewTracker("c1", LabelNodeGroup, cfg.SignalFor)
	tr.SetNode("t4-1", knode("t4-1", "t4", "online", ""))
	tr.SetNode("t4-2", knode("t4-2", "t4", "online", ""))
	tr.SetNode("t4-3", knode("t4-3", "t4", "offline", ""))
	tr.SetNode("t4-4", knode("t4-4", "t4", "online", "to-offline"))
	tr.SetNode("cpu-1", knode("cpu-1", "cpu", "online", ""))
	tr.SetNode("bad", knode("bad", "t4", "sideways", ""))
	tr.SetPod("ns/web-1", kpod("web-1", "t4-1", WorkloadInference))
	tr.SetPod("ns/web-2", kpod("web-2", "t4-1", WorkloadInference))
	ck := kpod("train-1", "t4-3", WorkloadTraining)
	ck.Annotations = map[string]string{AnnotationLastCheckpoint: t0.Add(-10 * time.Minute).Format(time.RFC3339)}
	tr.SetPod("ns/train-1", ck)
	pending := kpod("web-3", "", WorkloadInference)
	pending.Spec.NodeSelector = map[string]string{LabelNodeGroup: "t4"}
	pending.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}}
	tr.SetPod("ns/web-3", pending)

	// gpu_util in percent: 80 and 40 → mean 0.6; the offline node's and a
	// stale window do not count; another cluster's node is ignored.
	tr.ObserveWindow(win("t4-1", "gpu_util", t0, 80))
	tr.ObserveWindow(win("t4-2", "gpu_util", t0, 40))
	tr.ObserveWindow(win("t4-3", "gpu_util", t0, 99))
	if tr.ObserveWindow(win("t4-1", "gpu_util", t0.Add(-time.Minute), 5)) {
		t.Fatal("an older window replaced a newer one")
	}
	if tr.ObserveWindow(schemas.Window{Entity: schemas.NodeEntity("c2", "t4-1"), Signal: "gpu_util", EndMs: t0.UnixMilli()}) {
		t.Fatal("another cluster's window was used")
	}
	tr.ObserveWindow(win("cpu-1", "cpu", t0, 8)) // 8 cores of 32
	for _, n := range []string{"t4-1", "t4-2"} {
		tr.ObserveForecast(schemas.Forecast{ID: n, Entity: schemas.NodeEntity("c1", n), Signal: "gpu_util", OriginMs: t0.UnixMilli(), StepS: 60,
			Horizons: []schemas.HorizonValue{{Minutes: 1, AtMs: t0.Add(time.Minute).UnixMilli(), Value: 90}, {Minutes: 2, AtMs: t0.Add(2 * time.Minute).UnixMilli(), Value: 100}}})
	}

	if g := tr.Groups(); len(g) != 2 || g[0] != "cpu" || g[1] != "t4" {
		t.Fatalf("groups %v", g)
	}
	in, bad := tr.Snapshot("t4", t0.Add(30*time.Second), 3*time.Minute)
	if len(bad) != 1 {
		t.Fatalf("bad nodes %v, want the one with pool sideways", bad)
	}
	if in.Utilisation < 0.599 || in.Utilisation > 0.601 {
		t.Fatalf("utilisation %v, want 0.6", in.Utilisation)
	}
	if len(in.Forecast) != 2 || in.Forecast[0].Utilisation != 0.9 || in.Forecast[1].Utilisation != 1.0 {
		t.Fatalf("forecast %+v", in.Forecast)
	}
	if in.PendingInference != 1 {
		t.Fatalf("pending %d", in.PendingInference)
	}
	byName := map[string]Node{}
	for _, n := range in.Nodes {
		byName[n.Name] = n
	}
	if len(in.Nodes) != 4 || byName["t4-1"].InferencePods != 2 || byName["t4-4"].Handover != HandoverToOffline {
		t.Fatalf("nodes %+v", in.Nodes)
	}
	tp := byName["t4-3"].TrainingPods
	if len(tp) != 1 || tp[0].LostWork(t0) != 10*time.Minute {
		t.Fatalf("training pods %+v", tp)
	}
	cpu, _ := tr.Snapshot("cpu", t0, 3*time.Minute)
	if cpu.Utilisation != 0.25 {
		t.Fatalf("cpu utilisation %v, want 8/32", cpu.Utilisation)
	}
	stale, _ := tr.Snapshot("t4", t0.Add(10*time.Minute), 3*time.Minute)
	if !stale.Unmeasured || stale.Utilisation != 0 || len(stale.Forecast) != 0 {
		t.Fatalf("stale windows used: %+v", stale)
	}
	// Missing data is not low load: no node goes offline on it (the
	// Pending pod aside, which would bring one back).
	stale.PendingInference = 0
	d, _ := Decide(DefaultPolicy(), State{LowSince: t0.Add(-24 * time.Hour)}, stale)
	if d.Direction != DirectionHold || d.Reason != ReasonNoUtilisation {
		t.Fatalf("without data: %s %s", d.Direction, d.Reason)
	}
}
