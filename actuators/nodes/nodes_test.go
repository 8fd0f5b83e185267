package nodes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

var t0 = time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func node(name, pool, handover string, unschedulable bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{mixing.LabelNodeGroup: "t4", mixing.LabelPool: pool}},
		Spec: corev1.NodeSpec{Unschedulable: unschedulable, Taints: []corev1.Taint{{Key: "gpu", Value: "t4", Effect: corev1.TaintEffectNoSchedule}}}}
	if handover != "" {
		n.Labels[mixing.LabelHandover] = handover
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: mixing.TaintHandover, Value: handover, Effect: corev1.TaintEffectNoSchedule})
		n.Annotations = map[string]string{AnnotationCordoned: "true"}
		n.Spec.Unschedulable = true
	}
	return n
}

func pod(name, nodeName, workload string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml", Labels: map[string]string{mixing.LabelWorkload: workload}},
		Spec: corev1.PodSpec{NodeName: nodeName}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

// evictions makes the fake API server act on evictions: the pod is deleted,
// or refused with 429 while blocked[name] is set (a PodDisruptionBudget).
type evictions struct {
	mu      sync.Mutex
	blocked map[string]bool
	grace   map[string]int64
}

func (e *evictions) install(cs *fake.Clientset) {
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		obj, ok := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if !ok {
			return true, nil, fmt.Errorf("eviction body is %T", a.(k8stesting.CreateAction).GetObject())
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.blocked[obj.Name] {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		}
		if obj.DeleteOptions != nil && obj.DeleteOptions.GracePeriodSeconds != nil {
			e.grace[obj.Name] = *obj.DeleteOptions.GracePeriodSeconds
		}
		if err := cs.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, a.GetNamespace(), obj.Name); err != nil {
			return true, nil, err
		}
		return true, nil, nil
	})
}

func setup(t *testing.T, cfg Config, objs ...runtime.Object) (*Handler, *fake.Clientset, *evictions, *clock) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	ev := &evictions{blocked: map[string]bool{}, grace: map[string]int64{}}
	ev.install(cs)
	c := &clock{t: t0}
	h, err := New(cs, cfg, c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h, cs, ev, c
}

func decision(id string, seq int64, dir string, flips ...schemas.NodeFlip) actuators.Decision {
	nd := schemas.NodesDecision{ID: id, Kind: schemas.DecisionNodes, Seq: seq, Target: schemas.NodeGroupTarget("c1", "t4"), Group: "t4",
		AtMs: t0.UnixMilli(), ExpiresMs: t0.Add(5 * time.Minute).UnixMilli(), Direction: dir, Nodes: flips, DecidedBy: "test",
		Reason: schemas.NodesReason{Summary: "test", Code: "UtilisationAboveMaxRate", Thresholds: map[string]float64{"min_rate": 0.35, "max_rate": 0.85, "expect_rate": 0.65, "lead_time_s": 240},
			Inputs: map[string]float64{"utilisation": 0.9, "online": 3, "offline": 2, "required": 5}}}
	return actuators.Decision{Kind: nd.Kind, ID: nd.ID, Seq: nd.Seq, Target: nd.Target, AtMs: nd.AtMs, ExpiresMs: nd.ExpiresMs, Event: nd}
}

func toOnline(n string) schemas.NodeFlip {
	return schemas.NodeFlip{Node: n, From: "offline", To: "online", Why: "least work lost", TrainingPods: 1}
}

func getNode(t *testing.T, cs *fake.Clientset, name string) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hasOurTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == mixing.TaintHandover {
			return true
		}
	}
	return false
}

func assertPool(t *testing.T, n *corev1.Node, pool string, inHandover bool) {
	t.Helper()
	_, h := n.Labels[mixing.LabelHandover]
	if n.Labels[mixing.LabelPool] != pool || h != inHandover || hasOurTaint(n) != inHandover || n.Spec.Unschedulable != inHandover {
		t.Fatalf("node %s: pool %s handover %q taint %v cordoned %v; want pool %s, in handover %v",
			n.Name, n.Labels[mixing.LabelPool], n.Labels[mixing.LabelHandover], hasOurTaint(n), n.Spec.Unschedulable, pool, inHandover)
	}
	if len(withoutOurTaint(n.Spec.Taints)) == 0 {
		t.Fatalf("node %s lost its own taints: %+v", n.Name, n.Spec.Taints)
	}
}

func TestHandoverToOnlineEvictsTrainingAndFinishes(t *testing.T) {
	h, cs, ev, _ := setup(t, DefaultConfig(), node("n1", "offline", "", false),
		pod("train-a", "n1", mixing.WorkloadTraining), pod("infer-x", "n1", mixing.WorkloadInference), pod("train-other", "n2", mixing.WorkloadTraining))
	act, err := h.Apply(context.Background(), decision("d1", 1, "to-online", toOnline("n1")))
	if err != nil {
		t.Fatal(err)
	}
	if act.Outcome != schemas.OutcomeApplied || !strings.Contains(act.Reason, "started") || !strings.Contains(act.Reason, "1 evicted") {
		t.Fatalf("action %+v", act)
	}
	assertPool(t, getNode(t, cs, "n1"), "offline", true)
	if g := ev.grace["train-a"]; g != int64(DefaultConfig().DrainGrace/time.Second) {
		t.Fatalf("training pod evicted with grace %ds, want the drain grace", g)
	}
	// The evicted pod is gone: the next pass finishes the handover, and
	// reports the step as an action that validates against its schema.
	var reported []schemas.Action
	h.SetReporter(func(_ context.Context, a schemas.Action) { reported = append(reported, a) })
	if notes, err := h.Reconcile(context.Background()); err != nil || !strings.HasPrefix(notes["n1"], "finished") {
		t.Fatalf("reconcile: %v %v", notes, err)
	}
	if len(reported) != 1 || reported[0].DecisionID != "d1" || reported[0].Seq != 1 || !strings.Contains(reported[0].Reason, "finished") {
		t.Fatalf("reported %+v", reported)
	}
	if _, err := schemas.Marshal(reported[0]); err != nil {
		t.Fatal(err)
	}
	n := getNode(t, cs, "n1")
	assertPool(t, n, "online", false)
	if n.Annotations[mixing.AnnotationDecisionID] != "d1" {
		t.Fatalf("decision id not recorded: %v", n.Annotations)
	}
	pods, _ := cs.CoreV1().Pods("ml").List(context.Background(), metav1.ListOptions{})
	var left []string
	for _, p := range pods.Items {
		left = append(left, p.Name)
	}
	if strings.Join(left, ",") != "infer-x,train-other" {
		t.Fatalf("pods left %v: only n1's training pod should be evicted", left)
	}
	evs, _ := cs.EventsV1().Events("default").List(context.Background(), metav1.ListOptions{})
	reasons := map[string]bool{}
	for _, e := range evs.Items {
		reasons[e.Reason] = true
		if e.Regarding.Kind != "Node" || e.Regarding.Name != "n1" {
			t.Fatalf("event about %+v", e.Regarding)
		}
	}
	for _, r := range []string{"HandoverStarted", "PodEvicted", "HandoverFinished"} {
		if !reasons[r] {
			t.Fatalf("no %s event (have %v)", r, reasons)
		}
	}
	// Redelivered: skipped as a duplicate, nothing changes.
	again, err := h.Apply(context.Background(), decision("d1", 1, "to-online", toOnline("n1")))
	if err != nil || again.Outcome != schemas.OutcomeSkipped || !strings.HasPrefix(again.Reason, "duplicate") {
		t.Fatalf("redelivery: %+v %v", again, err)
	}
	// A newer decision sends it offline; the older one redelivered after
	// it is stale and must not bring it back.
	if _, err := h.Apply(context.Background(), decision("d2", 2, "to-offline", schemas.NodeFlip{Node: "n1", From: "online", To: "offline", Why: "emptiest"})); err != nil {
		t.Fatal(err)
	}
	h.Reconcile(context.Background())
	h.Reconcile(context.Background())
	assertPool(t, getNode(t, cs, "n1"), "offline", false)
	old, err := h.Apply(context.Background(), decision("d1b", 1, "to-online", toOnline("n1")))
	if err != nil || !strings.Contains(old.Reason, "stale") {
		t.Fatalf("older decision after a newer one: %+v %v", old, err)
	}
	assertPool(t, getNode(t, cs, "n1"), "offline", false)
}

func TestDryRunChangesNothing(t *testing.T) {
	h, cs, _, _ := setup(t, DefaultConfig(), node("n1", "offline", "", false), pod("train-a", "n1", mixing.WorkloadTraining))
	d := decision("d1", 1, "to-online", toOnline("n1"))
	d.DryRun = true
	act, err := h.Apply(context.Background(), d)
	if err != nil || act.Outcome != schemas.OutcomeSkipped || !strings.HasPrefix(act.Reason, "dry run: ") || !act.DryRun {
		t.Fatalf("dry run: %+v %v", act, err)
	}
	assertPool(t, getNode(t, cs, "n1"), "offline", false)
	if _, err := cs.CoreV1().Pods("ml").Get(context.Background(), "train-a", metav1.GetOptions{}); err != nil {
		t.Fatal("dry run evicted a pod")
	}
}

// A PodDisruptionBudget (429) leaves the node in handover; a later pass
// finishes it once the budget allows.
func TestPDBBlocksThenReconcileFinishes(t *testing.T) {
	h, cs, ev, _ := setup(t, DefaultConfig(), node("n1", "offline", "", false), pod("train-a", "n1", mixing.WorkloadTraining))
	ev.blocked["train-a"] = true
	act, err := h.Apply(context.Background(), decision("d1", 1, "to-online", toOnline("n1")))
	if err != nil || !strings.Contains(act.Reason, "PodDisruptionBudget") {
		t.Fatalf("%+v %v", act, err)
	}
	assertPool(t, getNode(t, cs, "n1"), "offline", true)
	ev.mu.Lock()
	ev.blocked["train-a"] = false
	ev.mu.Unlock()
	notes, err := h.Reconcile(context.Background())
	if err != nil || !strings.Contains(notes["n1"], "1 evicted") {
		t.Fatalf("reconcile: %v %v", notes, err)
	}
	notes, err = h.Reconcile(context.Background())
	if err != nil || !strings.HasPrefix(notes["n1"], "finished") {
		t.Fatalf("reconcile: %v %v", notes, err)
	}
	assertPool(t, getNode(t, cs, "n1"), "online", false)
}

// The actuator's own eviction budget holds whatever decisions ask.
func TestTrainingEvictionBudgetHolds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxTrainingEvictionsPerHour = 2
	h, cs, _, clk := setup(t, cfg, node("n1", "offline", "", false), node("n2", "offline", "", false),
		pod("a", "n1", mixing.WorkloadTraining), pod("b", "n1", mixing.WorkloadTraining), pod("c", "n2", mixing.WorkloadTraining))
	if _, err := h.Apply(context.Background(), decision("d1", 1, "to-online", toOnline("n1"), toOnline("n2"))); err != nil {
		t.Fatal(err)
	}
	pods, _ := cs.CoreV1().Pods("ml").List(context.Background(), metav1.ListOptions{})
	if len(pods.Items) != 1 {
		t.Fatalf("%d training pods left, want 1 (budget 2 of 3)", len(pods.Items))
	}
	assertPool(t, getNode(t, cs, "n2"), "offline", true)
	clk.add(30 * time.Minute)
	if notes, _ := h.Reconcile(context.Background()); !strings.Contains(notes["n2"], "eviction budget") {
		t.Fatalf("budget spent, yet: %v", notes)
	}
	clk.add(31 * time.Minute)
	h.Reconcile(context.Background())
	if notes, err := h.Reconcile(context.Background()); err != nil || !strings.HasPrefix(notes["n2"], "finished") {
		t.Fatalf("after the hour: %v %v", notes, err)
	}
}

// A node left mid-handover by a crashed actuator is finished by a new one
// from its labels alone; a node the handover did not cordon stays as the
// admin left it.
func TestRestartResumesFromLabels(t *testing.T) {
	mid := node("n1", "online", "to-offline", false)
	admin := node("n2", "offline", "to-online", false)
	delete(admin.Annotations, AnnotationCordoned) // cordoned by an admin before the handover
	h, cs, _, _ := setup(t, DefaultConfig(), mid, admin, pod("web-1", "n1", mixing.WorkloadInference))
	notes, err := h.Reconcile(context.Background())
	if err != nil || !strings.Contains(notes["n1"], "1 evicted") || !strings.HasPrefix(notes["n2"], "finished") {
		t.Fatalf("%v %v", notes, err)
	}
	notes, err = h.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(notes["n1"], "finished") {
		t.Fatalf("%v", notes)
	}
	assertPool(t, getNode(t, cs, "n1"), "offline", false)
	n2 := getNode(t, cs, "n2")
	if !n2.Spec.Unschedulable || hasOurTaint(n2) || n2.Labels[mixing.LabelPool] != "online" {
		t.Fatalf("n2: %+v %+v", n2.Labels, n2.Spec)
	}
}

func TestRefusals(t *testing.T) {
	other := node("a1", "offline", "", false)
	other.Labels[mixing.LabelNodeGroup] = "a100"
	cfg := DefaultConfig()
	cfg.MaxNodesPerDecision = 3
	h, cs, _, _ := setup(t, cfg, node("f1", "fixed", "", false), other, node("on1", "online", "", false), node("leaving", "online", "to-offline", false))
	act, err := h.Apply(context.Background(), decision("d9", 9, "to-online",
		toOnline("f1"), toOnline("a1"), toOnline("on1"), toOnline("leaving"), toOnline("ghost")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"f1: skipped: fixed", "a1: skipped: in group \"a100\"", "on1: skipped: already in pool online", "leaving: refused, over the actuator's 3", "ghost: refused"} {
		if !strings.Contains(act.Reason, want) {
			t.Fatalf("reason %q lacks %q", act.Reason, want)
		}
	}
	assertPool(t, getNode(t, cs, "f1"), "fixed", false)
	// Cancel: a node on its way offline taken back.
	act, err = h.Apply(context.Background(), decision("d10", 10, "to-online", schemas.NodeFlip{Node: "leaving", From: "online", To: "online", Cancel: true, Why: "cancel"}))
	if err != nil || act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("%+v %v", act, err)
	}
	assertPool(t, getNode(t, cs, "leaving"), "online", false)
}

// Another writer changing the node between read and patch (409) makes the
// handler read again and retry, not fail the decision.
func TestConflictIsRetried(t *testing.T) {
	h, cs, _, _ := setup(t, DefaultConfig(), node("n1", "offline", "", false))
	conflicts := 0
	cs.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "n1", fmt.Errorf("the object has been modified"))
		}
		return false, nil, nil
	})
	act, err := h.Apply(context.Background(), decision("d1", 1, "to-online", toOnline("n1")))
	if err != nil || act.Outcome != schemas.OutcomeApplied || conflicts != 1 {
		t.Fatalf("%+v %v (conflicts %d)", act, err, conflicts)
	}
	assertPool(t, getNode(t, cs, "n1"), "online", false)
}

// TestDecodeRefusesWhatTheSchemaCannotSay: a node name Kubernetes cannot
// hold, or a target that is not the decision's group, is a schema error
// naming the field (the actuator dead-letters it), not a node to look up.
func TestDecodeRefusesWhatTheSchemaCannotSay(t *testing.T) {
	h, err := New(fake.NewClientset(), DefaultConfig(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, field string
		mut         func(*schemas.NodesDecision)
	}{
		{"a path", "/nodes/0/node", func(d *schemas.NodesDecision) { d.Nodes[0].Node = "../../etc/passwd" }},
		{"capitals and spaces", "/nodes/1/node", func(d *schemas.NodesDecision) { d.Nodes[1].Node = "GPU Node" }},
		{"target not the group", "/target/name", func(d *schemas.NodesDecision) { d.Target.Name = "t5" }},
		{"good", "", func(*schemas.NodesDecision) {}},
	} {
		nd := decision("d1", 1, "to-online", toOnline("n1"), toOnline("gpu-node-02.zone-a")).Event.(schemas.NodesDecision)
		tc.mut(&nd)
		b, err := schemas.Marshal(nd)
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Decode(b)
		var ve *schemas.ValidationError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field):
			t.Errorf("%s: err %v, want a schema error at %s", tc.name, err, tc.field)
		}
	}
}
