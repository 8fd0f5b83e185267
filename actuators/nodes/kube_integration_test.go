//go:build integration

package nodes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// These tests run against the real kube-apiserver of the test services
// (RBAC on), as the node actuator acts in `ebbflow actuate`: the actuator's
// token (system:serviceaccount:ebbflow:ebbflow-actuator) impersonating
// mixing.actuator.impersonate (ebbflow-node-actuator), after applying the
// roles in deploy/rbac as admin.

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)", name)
	}
	return v
}

// nodeIdentity is the identity the node actuator acts as by default.
var nodeIdentity = mixing.DefaultConfig().Actuator.Impersonate

type kubeClients struct {
	admin kubernetes.Interface
	// own is the actuator's own identity (its token), node is the same
	// token impersonating nodeIdentity: what nodes.New gets in ebbflow
	// actuate.
	own, node kubernetes.Interface
	// actuatorRC is the actuator's connection, to impersonate others.
	actuatorRC *rest.Config
}

// asUser is rc impersonating user, as the actuator's wire does
// (inference.Client): the user name only, the API server adds a service
// account's groups.
func asUser(t *testing.T, rc *rest.Config, user string) kubernetes.Interface {
	t.Helper()
	c := rest.CopyConfig(rc)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func clients(t *testing.T) kubeClients {
	t.Helper()
	rc := func(token string) *rest.Config {
		return &rest.Config{Host: mustEnv(t, "EBBFLOW_TEST_KUBE_SERVER"), BearerToken: strings.TrimSpace(token),
			TLSClientConfig: rest.TLSClientConfig{CAFile: mustEnv(t, "EBBFLOW_TEST_KUBE_CA")}, QPS: 100, Burst: 200}
	}
	admin, err := kubernetes.NewForConfig(rc(mustEnv(t, "EBBFLOW_TEST_KUBE_ADMIN_TOKEN")))
	if err != nil {
		t.Fatal(err)
	}
	// Create or update: a ClusterRoleBinding left by an earlier run (one
	// that bound the node role to ebbflow-actuator) gets this file's
	// subjects.
	for _, f := range []string{"00-namespace.yaml", "actuator.yaml", "node-actuator.yaml"} {
		if err := cluster.ApplyManifestFile(context.Background(), admin, filepath.Join("../../deploy/rbac", f)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
	arc := rc(mustEnv(t, "EBBFLOW_TEST_KUBE_ACTUATOR_TOKEN"))
	own, err := kubernetes.NewForConfig(arc)
	if err != nil {
		t.Fatal(err)
	}
	c := kubeClients{admin: admin, own: own, node: asUser(t, arc, nodeIdentity), actuatorRC: arc}
	// RBAC caches settle within a moment of a change.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := c.node.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{Limit: 1})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the actuator acting as %s cannot list nodes: %v", nodeIdentity, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c
}

// world is one test's namespace and nodes on the real API server.
type world struct {
	t     *testing.T
	admin kubernetes.Interface
	// act is the node actuator's client (the actuator impersonating
	// ebbflow-node-actuator); kube all the test's clients.
	act    kubernetes.Interface
	kube   kubeClients
	ns     string
	prefix string
	group  string
}

func newWorld(t *testing.T) *world {
	kc := clients(t)
	admin := kc.admin
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000_000)
	w := &world{t: t, admin: admin, act: kc.node, kube: kc, ns: "mixing-" + id, prefix: "mix-" + id, group: "g" + id}
	ctx := context.Background()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.CoreV1().Namespaces().Delete(context.Background(), w.ns, metav1.DeleteOptions{})
		list, _ := admin.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: mixing.LabelNodeGroup + "=" + w.group})
		for _, n := range list.Items {
			admin.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{})
		}
	})
	return w
}

func (w *world) node(i int, pool string) string {
	name := fmt.Sprintf("%s-%d", w.prefix, i)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{mixing.LabelNodeGroup: w.group, mixing.LabelPool: pool}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}}}}
	if _, err := w.admin.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	return name
}

func (w *world) pod(name, node, workload string) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns, Labels: map[string]string{mixing.LabelWorkload: workload, "app": name}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}}
	if _, err := w.admin.CoreV1().Pods(w.ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// running marks a pod Running and Ready, as a kubelet would.
func (w *world) running(name string) {
	ctx := context.Background()
	p, err := w.admin.CoreV1().Pods(w.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := w.admin.CoreV1().Pods(w.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) handler(cfg Config) *Handler {
	cfg.Identity = "test-" + w.prefix
	h, err := New(w.act, cfg, nil, nil, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

func (w *world) decision(id string, seq int64, flips ...schemas.NodeFlip) decisionArgs {
	return decisionArgs{id: id, seq: seq, group: w.group, flips: flips}
}

type decisionArgs struct {
	id    string
	seq   int64
	group string
	flips []schemas.NodeFlip
}

func (h *Handler) applyArgs(t *testing.T, a decisionArgs) schemas.Action {
	t.Helper()
	d := decision(a.id, a.seq, "to-online", a.flips...)
	nd := d.Event.(schemas.NodesDecision)
	nd.Group = a.group
	nd.Target = schemas.NodeGroupTarget("c1", a.group)
	// Through the wire format, as the actuator receives it.
	b, err := schemas.Marshal(nd)
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

func (w *world) get(name string) *corev1.Node {
	n, err := w.admin.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) podsOn(node string) []string {
	list, err := w.admin.CoreV1().Pods(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		if p.Spec.NodeName == node {
			out = append(out, p.Name)
		}
	}
	return out
}

func immediate() Config {
	cfg := DefaultConfig()
	cfg.DrainGrace = 0 // no kubelet here to end a graceful deletion
	return cfg
}

// reconcileUntil reconciles until the node's handover is over.
func reconcileUntil(t *testing.T, h *Handler, w *world, name string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := h.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, in := w.get(name).Labels[mixing.LabelHandover]; !in {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("node %s still in handover: %v", name, w.get(name).Labels)
}

func TestKubeHandoverToOnline(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.node(1, "offline"), w.node(2, "online")
	w.pod("train-a", n1, mixing.WorkloadTraining)
	w.pod("train-b", n1, mixing.WorkloadTraining)
	w.pod("web-1", n2, mixing.WorkloadInference)
	h := w.handler(immediate())
	act := h.applyArgs(t, w.decision("d1", 1, toOnline(n1)))
	if act.Outcome != schemas.OutcomeApplied || !strings.Contains(act.Reason, "started") {
		t.Fatalf("%+v", act)
	}
	reconcileUntil(t, h, w, n1)
	n := w.get(n1)
	assertPool(t, n, "online", false)
	if n.Annotations[mixing.AnnotationDecisionID] != "d1" || n.Spec.Taints[0].Key != "nvidia.com/gpu" {
		t.Fatalf("annotations %v taints %v", n.Annotations, n.Spec.Taints)
	}
	if left := w.podsOn(n1); len(left) != 0 {
		t.Fatalf("training pods left on %s: %v", n1, left)
	}
	if left := w.podsOn(n2); len(left) != 1 {
		t.Fatalf("inference pod on %s touched: %v", n2, left)
	}
	evs, err := w.admin.EventsV1().Events("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range evs.Items {
		if e.Regarding.Name == n1 {
			seen[e.Reason]++
		}
	}
	if seen["HandoverStarted"] != 1 || seen["PodEvicted"] != 2 || seen["HandoverFinished"] != 1 {
		t.Fatalf("events on %s: %v", n1, seen)
	}
	// Redelivery after the fact: a duplicate, the node is not touched.
	rv := w.get(n1).ResourceVersion
	if again := h.applyArgs(t, w.decision("d1", 1, toOnline(n1))); !strings.HasPrefix(again.Reason, "duplicate") || w.get(n1).ResourceVersion != rv {
		t.Fatalf("redelivery: %+v", again)
	}
}

// The actuator crashes mid-handover (a PodDisruptionBudget holds the last
// training pod, so the node is left cordoned and labelled); a new actuator,
// with nothing but the API server's state, finishes it once the budget
// allows.
func TestKubeCrashMidHandoverResumes(t *testing.T) {
	w := newWorld(t)
	n1 := w.node(1, "offline")
	w.pod("train-a", n1, mixing.WorkloadTraining)
	w.pod("train-b", n1, mixing.WorkloadTraining)
	w.running("train-b") // budgets protect only running, ready pods
	one := intstr.FromInt32(1)
	_, err := w.admin.PolicyV1().PodDisruptionBudgets(w.ns).Create(context.Background(), &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "keep-b"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "train-b"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := w.handler(immediate())
	act := first.applyArgs(t, w.decision("d1", 1, toOnline(n1)))
	if !strings.Contains(act.Reason, "PodDisruptionBudget") {
		t.Fatalf("the PDB did not hold: %+v", act)
	}
	if _, err := first.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertPool(t, w.get(n1), "offline", true)
	if left := w.podsOn(n1); strings.Join(left, ",") != "train-b" {
		t.Fatalf("pods left %v, want train-b only", left)
	}
	// "Crash": the first actuator is gone. The budget is lifted.
	if err := w.admin.PolicyV1().PodDisruptionBudgets(w.ns).Delete(context.Background(), "keep-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	second := w.handler(immediate())
	reconcileUntil(t, second, w, n1)
	assertPool(t, w.get(n1), "online", false)
}

// Under pressure (three nodes, six training pods) the actuator's own
// eviction budget holds: exactly the budget is evicted, the rest wait.
func TestKubeEvictionBudgetHolds(t *testing.T) {
	w := newWorld(t)
	var flips []schemas.NodeFlip
	for i := 1; i <= 3; i++ {
		n := w.node(i, "offline")
		w.pod(fmt.Sprintf("train-%d-a", i), n, mixing.WorkloadTraining)
		w.pod(fmt.Sprintf("train-%d-b", i), n, mixing.WorkloadTraining)
		flips = append(flips, toOnline(n))
	}
	cfg := immediate()
	cfg.MaxTrainingEvictionsPerHour = 3
	h := w.handler(cfg)
	h.applyArgs(t, w.decision("d1", 1, flips...))
	for range 3 {
		if _, err := h.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	list, err := w.admin.CoreV1().Pods(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 3 {
		t.Fatalf("%d of 6 training pods left, want 3 (budget 3 per hour)", len(list.Items))
	}
}

// TestKubeNodeActuatorRBAC: the node actuator's identity (the actuator
// impersonating ebbflow-node-actuator) can do its job and nothing beyond:
// no node update or delete, no pod delete, create or patch, no secrets,
// nothing of the scale handler's. The actuator's own identity holds none
// of the node work, and may impersonate ebbflow-node-actuator only: not
// another service account, not the same name in another namespace, not a
// user, not with groups added.
func TestKubeNodeActuatorRBAC(t *testing.T) {
	w := newWorld(t)
	n1 := w.node(1, "offline")
	w.pod("train-a", n1, mixing.WorkloadTraining)
	ctx := context.Background()
	if _, err := w.act.CoreV1().Nodes().Patch(ctx, n1, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch node: %v", err)
	}
	if _, err := w.act.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n1}); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: w.prefix + "-probe", Namespace: metav1.NamespaceDefault},
		EventTime: metav1.NowMicro(), ReportingController: "ebbflow.io/it", ReportingInstance: w.prefix,
		Action: "Probe", Reason: "Probe", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Node", Name: n1, APIVersion: "v1"}}
	if _, err := w.act.EventsV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create event: %v", err)
	}
	t.Cleanup(func() {
		_ = w.admin.EventsV1().Events(metav1.NamespaceDefault).Delete(context.Background(), ev.Name, metav1.DeleteOptions{})
	})
	own := w.kube.own
	refused := map[string]func() error{
		"update node": func() error {
			n := w.get(n1)
			n.Labels["y"] = "z"
			_, err := w.act.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		},
		"delete node": func() error { return w.act.CoreV1().Nodes().Delete(ctx, n1, metav1.DeleteOptions{}) },
		"create node": func() error {
			_, err := w.act.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.prefix + "-x"}}, metav1.CreateOptions{})
			return err
		},
		"delete pod": func() error { return w.act.CoreV1().Pods(w.ns).Delete(ctx, "train-a", metav1.DeleteOptions{}) },
		"patch pod": func() error {
			_, err := w.act.CoreV1().Pods(w.ns).Patch(ctx, "train-a", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		},
		"patch node status": func() error {
			_, err := w.act.CoreV1().Nodes().Patch(ctx, n1, types.MergePatchType, []byte(`{"status":{"capacity":{"cpu":"1"}}}`), metav1.PatchOptions{}, "status")
			return err
		},
		"get secrets": func() error { _, err := w.act.CoreV1().Secrets(w.ns).List(ctx, metav1.ListOptions{}); return err },
		"delete events": func() error {
			return w.act.EventsV1().Events("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		},
		// The scale handler's and leader election's rights stay the actuator's own.
		"list deployments": func() error { _, err := w.act.AppsV1().Deployments(w.ns).List(ctx, metav1.ListOptions{}); return err },
		"get a deployment's scale": func() error {
			_, err := w.act.AppsV1().Deployments(w.ns).GetScale(ctx, "any", metav1.GetOptions{})
			return err
		},
		"create a lease in ebbflow": func() error {
			_, err := w.act.CoordinationV1().Leases("ebbflow").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: w.prefix}}, metav1.CreateOptions{})
			return err
		},
		// The actuator's own identity does none of the node work.
		"own identity: list pods": func() error {
			_, err := own.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n1})
			return err
		},
		"own identity: list nodes": func() error { _, err := own.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err },
		"own identity: patch node": func() error {
			_, err := own.CoreV1().Nodes().Patch(ctx, n1, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"z"}}}`), metav1.PatchOptions{})
			return err
		},
		"own identity: evict": func() error {
			return own.PolicyV1().Evictions(w.ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "train-a", Namespace: w.ns}})
		},
	}
	// Impersonating anyone else is refused (each would list nodes if it
	// could act as the identity: ebbflow-mixing may).
	for _, user := range []string{
		"system:serviceaccount:ebbflow:ebbflow-mixing",
		"system:serviceaccount:ebbflow:ebbflow-autoscale",
		"system:serviceaccount:kube-system:ebbflow-node-actuator",
		"system:serviceaccount:" + w.ns + ":ebbflow-node-actuator",
		"system:admin",
	} {
		other := asUser(t, w.kube.actuatorRC, user)
		refused["impersonate "+user] = func() error { _, err := other.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1}); return err }
	}
	withGroup := rest.CopyConfig(w.kube.actuatorRC)
	withGroup.Impersonate = rest.ImpersonationConfig{UserName: nodeIdentity, Groups: []string{"system:masters"}}
	masters, err := kubernetes.NewForConfig(withGroup)
	if err != nil {
		t.Fatal(err)
	}
	refused["impersonate "+nodeIdentity+" in system:masters"] = func() error {
		_, err := masters.CoreV1().Secrets(w.ns).List(ctx, metav1.ListOptions{})
		return err
	}
	for name, f := range refused {
		if err := f(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: err %v, want Forbidden", name, err)
		}
	}
	// Eviction is allowed (through the API, so budgets apply).
	g := int64(0)
	if err := w.act.PolicyV1().Evictions(w.ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "train-a", Namespace: w.ns},
		DeleteOptions: &metav1.DeleteOptions{GracePeriodSeconds: &g}}); err != nil {
		t.Fatalf("evict: %v", err)
	}
}
