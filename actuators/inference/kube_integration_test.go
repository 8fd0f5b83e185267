//go:build integration

package inference

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
)

// The tests run on the real kube-apiserver of the test services (RBAC
// on). The handler acts as system:serviceaccount:ebbflow:ebbflow-inference
// with exactly deploy/rbac/inference.yaml, impersonated by the actuator's
// own token as in production.

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)", name)
	}
	return v
}

type clients struct {
	admin    kubernetes.Interface
	actuator kubernetes.Interface
	handler  kubernetes.Interface // the actuator impersonating ebbflow-inference
	rc       *rest.Config         // the actuator's
}

func setup(t *testing.T) clients {
	t.Helper()
	server, ca := mustEnv(t, "EBBFLOW_TEST_KUBE_SERVER"), mustEnv(t, "EBBFLOW_TEST_KUBE_CA")
	rc := func(token string) *rest.Config {
		return &rest.Config{Host: server, BearerToken: strings.TrimSpace(token), TLSClientConfig: rest.TLSClientConfig{CAFile: ca}, QPS: 100, Burst: 200}
	}
	admin, err := kubernetes.NewForConfig(rc(mustEnv(t, "EBBFLOW_TEST_KUBE_ADMIN_TOKEN")))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"00-namespace.yaml", "actuator.yaml", "inference.yaml"} {
		if err := cluster.ApplyManifestFile(context.Background(), admin, filepath.Join("..", "..", "deploy", "rbac", f)); err != nil {
			t.Fatalf("apply deploy/rbac/%s: %v", f, err)
		}
	}
	arc := rc(mustEnv(t, "EBBFLOW_TEST_KUBE_ACTUATOR_TOKEN"))
	actuator, err := kubernetes.NewForConfig(arc)
	if err != nil {
		t.Fatal(err)
	}
	handler, err := Client(arc, servers.DefaultConfig().Impersonate)
	if err != nil {
		t.Fatal(err)
	}
	// RBAC caches settle within a moment of a change.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := handler.CoreV1().ConfigMaps(servers.DefaultConfig().Namespace).List(context.Background(), metav1.ListOptions{Limit: 1})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inference identity cannot list ConfigMaps in its namespace: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return clients{admin: admin, actuator: actuator, handler: handler, rc: arc}
}

// uniqueSpec is a testdata spec renamed to a name unique to this run.
func uniqueSpec(t *testing.T, file, version string) (doc []byte, model string) {
	t.Helper()
	b := specDoc(t, file)
	s, err := servers.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	model = fmt.Sprintf("%s-%d", s.Name, time.Now().UnixNano()%1_000_000)
	out := strings.Replace(string(b), "name: "+s.Name+"\n", "name: "+model+"\n", 1)
	out = strings.Replace(out, fmt.Sprintf("version: %d\n", s.Version), "version: "+version+"\n", 1)
	return []byte(out), model
}

func cleanup(t *testing.T, admin kubernetes.Interface, ns, model string) {
	t.Cleanup(func() {
		ctx := context.Background()
		_ = admin.AppsV1().Deployments(ns).Delete(ctx, model, metav1.DeleteOptions{})
		_ = admin.CoreV1().Services(ns).Delete(ctx, model, metav1.DeleteOptions{})
		_ = admin.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: servers.LabelModel + "=" + model})
	})
}

func fingerprint(t *testing.T, kube kubernetes.Interface, ns, model string) string {
	t.Helper()
	ctx := context.Background()
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := kube.CoreV1().Services(ns).Get(ctx, model, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: servers.LabelModel + "=" + model})
	if err != nil {
		t.Fatal(err)
	}
	// The Deployment controller writes status (and so resourceVersion):
	// what ebbflow could change is the generation (spec), the metadata
	// and the fields its manager owns.
	var mine []string
	for _, mf := range d.ManagedFields {
		if mf.Manager == FieldManager {
			mine = append(mine, fmt.Sprintf("%s@%v", mf.Operation, mf.Time))
		}
	}
	// kube-controller-manager's deployment controller writes its own
	// deployment.kubernetes.io/ annotations (the revision); they are not
	// ebbflow's to change and may appear at any time.
	ann := map[string]string{}
	for k, v := range d.Annotations {
		if !strings.HasPrefix(k, "deployment.kubernetes.io/") {
			ann[k] = v
		}
	}
	out := fmt.Sprintf("gen %d labels %v annotations %v managed %v / svc %s", d.Generation, d.Labels, ann, mine, s.ResourceVersion)
	for _, c := range cms.Items {
		out += "/" + c.Name + "@" + c.ResourceVersion
	}
	return out
}

// TestInferenceIdentityIsLeastPrivilege: the handler's identity can do its
// job in the serving namespace and nothing else; the actuator can act as
// it and as no one else.
func TestInferenceIdentityIsLeastPrivilege(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := servers.DefaultConfig().Namespace
	name := fmt.Sprintf("rbac-probe-%d", time.Now().UnixNano()%1_000_000)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := c.handler.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a ConfigMap in %s: %v", ns, err)
	}
	if err := c.handler.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete it: %v", err)
	}
	forbidden := map[string]func() error{
		"create a ConfigMap in default": func() error {
			_, err := c.handler.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		},
		"list pods in the serving namespace": func() error {
			_, err := c.handler.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		},
		"list secrets in the serving namespace": func() error {
			_, err := c.handler.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err
		},
		"update (not patch) a ConfigMap": func() error {
			_, err := c.handler.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
			return err
		},
		"update a Deployment's scale": func() error {
			_, err := c.handler.AppsV1().Deployments(ns).GetScale(ctx, "any", metav1.GetOptions{})
			return err
		},
		"list StatefulSets": func() error {
			_, err := c.handler.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
			return err
		},
		"list Deployments cluster-wide": func() error {
			_, err := c.handler.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
			return err
		},
		"the actuator impersonating another service account": func() error {
			other, err := Client(c.rc, "system:serviceaccount:ebbflow:ebbflow-decider")
			if err != nil {
				return err
			}
			_, err = other.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			return err
		},
	}
	for what, f := range forbidden {
		if err := f(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: want Forbidden, got %v", what, err)
		}
	}
}

func newActuator(t *testing.T, c clients) *actuators.Actuator {
	t.Helper()
	reg := actuators.NewRegistry()
	reg.Register(schemas.InferenceDecision{}.EventType(), New(c.handler, servers.DefaultConfig()))
	cfg := actuators.DefaultConfig()
	cfg.Retry.Attempts = 1
	a, err := actuators.NewActuator(cfg, "c1", "it-actuator", c.actuator, reg, actuators.WallClock{}, slog.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// process runs a decision through the actuator (as Kafka would deliver
// it) and returns the action it publishes.
func process(t *testing.T, a *actuators.Actuator, h *Handler, d actuators.Decision) schemas.Action {
	t.Helper()
	ev := d.Event.(schemas.InferenceDecision)
	ev.AtMs, ev.ExpiresMs = time.Now().UnixMilli(), time.Now().Add(time.Minute).UnixMilli()
	b, err := schemas.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	act, ok, err := a.Process(context.Background(), ev.EventType(), b)
	if err != nil || !ok {
		t.Fatalf("process %s: ok=%v %v", d.ID, ok, err)
	}
	if _, err := schemas.Marshal(act); err != nil {
		t.Fatalf("action violates its schema: %v", err)
	}
	return act
}

// TestLaunchIdempotenceUpdateRetireOnTheAPIServer: server-side apply as
// ebbflow-inference through the actuator (action + Kubernetes Event per
// decision), a second apply changing nothing, an update keeping the
// autoscaler's replicas, and a retire removing everything.
func TestLaunchIdempotenceUpdateRetireOnTheAPIServer(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	cfg := servers.DefaultConfig()
	ns := cfg.Namespace
	h := New(c.handler, cfg)
	a := newActuator(t, c)
	v3, model := uniqueSpec(t, "resnet50-int8.yaml", "3")
	cleanup(t, c.admin, ns, model)
	seq := time.Now().UnixMilli()

	act := process(t, a, h, decision(t, h, "it-"+model+"-1", seq, schemas.InferenceLaunch, v3, model, 3))
	if act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("launch: %+v", act)
	}
	dep, err := c.admin.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var applied bool
	for _, mf := range dep.ManagedFields {
		if mf.Manager == FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply {
			applied = true
		}
	}
	if !applied || *dep.Spec.Replicas != 2 {
		t.Fatalf("Deployment not applied by %s (managed fields %v), replicas %d", FieldManager, dep.ManagedFields, *dep.Spec.Replicas)
	}
	waitEvent(t, c.admin, ns, model, "it-"+model+"-1")

	// A second apply of the same objects changes nothing.
	before := fingerprint(t, c.admin, ns, model)
	spec, _ := servers.ParseBytes(v3)
	o, err := servers.Render(spec, servers.Digest(v3), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	o.Deployment.Annotations[AnnotationLastDecisionID] = "it-" + model + "-1"
	o.Deployment.Annotations[AnnotationLastDecisionSeq] = fmt.Sprint(seq)
	o.Deployment.Annotations[AnnotationLastAction] = dep.Annotations[AnnotationLastAction]
	if err := Apply(ctx, c.handler, o); err != nil {
		t.Fatal(err)
	}
	if after := fingerprint(t, c.admin, ns, model); after != before {
		t.Fatalf("a second apply changed the objects: %s → %s", before, after)
	}
	// A new decision with the same spec is skipped without a write.
	act = process(t, a, h, decision(t, h, "it-"+model+"-2", seq+1, schemas.InferenceLaunch, v3, model, 3))
	if act.Outcome != schemas.OutcomeSkipped || !strings.HasPrefix(act.Reason, ReasonUpToDate) {
		t.Fatalf("same spec again: %+v", act)
	}
	if after := fingerprint(t, c.admin, ns, model); after != before {
		t.Fatalf("a skipped decision changed the objects: %s → %s", before, after)
	}

	// The autoscaler scales (as the scale handler does, through the scale
	// subresource, as ebbflow-actuator); the update keeps its count.
	sc, err := c.actuator.AppsV1().Deployments(ns).GetScale(ctx, model, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = 6
	if _, err := c.actuator.AppsV1().Deployments(ns).UpdateScale(ctx, model, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v4 := []byte(strings.Replace(string(v3), "version: 3\n", "version: 4\n", 1))
	act = process(t, a, h, decision(t, h, "it-"+model+"-3", seq+2, schemas.InferenceUpdate, v4, model, 4))
	if act.Outcome != schemas.OutcomeApplied || !strings.Contains(act.Reason, "v3 → v4") {
		t.Fatalf("update: %+v", act)
	}
	dep, _ = c.admin.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{})
	if *dep.Spec.Replicas != 6 || dep.Spec.Template.Labels[servers.LabelVersion] != "4" {
		t.Fatalf("after update: replicas %d (want the autoscaler's 6), template version %q", *dep.Spec.Replicas, dep.Spec.Template.Labels[servers.LabelVersion])
	}
	if _, err := c.admin.CoreV1().ConfigMaps(ns).Get(ctx, model+"-v3", metav1.GetOptions{}); err != nil {
		t.Fatalf("v3's ConfigMap must stay while v3 may still serve: %v", err)
	}

	act = process(t, a, h, decision(t, h, "it-"+model+"-4", seq+3, schemas.InferenceRetire, nil, model, 4))
	if act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("retire: %+v", act)
	}
	if _, err := c.admin.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment after retire: %v", err)
	}
	if _, err := c.admin.CoreV1().Services(ns).Get(ctx, model, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Service after retire: %v", err)
	}
	cms, _ := c.admin.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: servers.LabelModel + "=" + model})
	if len(cms.Items) != 0 {
		t.Errorf("%d ConfigMaps left after retire", len(cms.Items))
	}
}

func waitEvent(t *testing.T, kube kubernetes.Interface, ns, object, decisionID string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		evs, err := kube.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == object && strings.Contains(e.Note, decisionID) && e.Action == schemas.DecisionInference {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("no Kubernetes Event for decision %s on %s/%s", decisionID, ns, object)
}

// TestForeignObjectUntouchedOnTheAPIServer: a Deployment and Service with
// the model's name that ebbflow did not create are refused, and stay
// exactly as they were.
func TestForeignObjectUntouchedOnTheAPIServer(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	cfg := servers.DefaultConfig()
	ns := cfg.Namespace
	h := New(c.handler, cfg)
	a := newActuator(t, c)
	doc, model := uniqueSpec(t, "ranker-cpu.yaml", "2")
	cleanup(t, c.admin, ns, model)
	labels := map[string]string{"app": model}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: model, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}},
	}
	if _, err := c.admin.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: model, Namespace: ns, Labels: labels},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := c.admin.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// kube-controller-manager's deployment controller writes its revision
	// annotation and status once; wait for that so the fingerprint sees only
	// what ebbflow might change.
	settle := time.Now().Add(60 * time.Second)
	for {
		d, err := c.admin.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.ObservedGeneration >= d.Generation && d.Annotations["deployment.kubernetes.io/revision"] != "" {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("the deployment controller never synced the foreign Deployment (observed generation %d of %d)", d.Status.ObservedGeneration, d.Generation)
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := fingerprint(t, c.admin, ns, model)
	seq := time.Now().UnixMilli()
	for i, d := range []actuators.Decision{
		decision(t, h, "it-"+model+"-1", seq, schemas.InferenceLaunch, doc, model, 2),
		decision(t, h, "it-"+model+"-2", seq+1, schemas.InferenceRetire, nil, model, 2),
	} {
		act := process(t, a, h, d)
		if act.Outcome != schemas.OutcomeFailed || !strings.HasPrefix(act.Reason, ReasonRefused+": Deployment") {
			t.Errorf("decision %d on a foreign Deployment: %+v", i, act)
		}
	}
	if after := fingerprint(t, c.admin, ns, model); after != before {
		t.Fatalf("foreign objects changed: %s → %s", before, after)
	}
	got, _ := c.admin.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{})
	for _, mf := range got.ManagedFields {
		if mf.Manager == FieldManager {
			t.Errorf("%s manages fields of a foreign Deployment", FieldManager)
		}
	}
}

// onlineNode creates a kwok node in the online pool (tainted for it, as
// node mixing does) for CPU model servers, removed after the test.
func onlineNode(t *testing.T, admin kubernetes.Interface, name string) {
	t.Helper()
	cfg := servers.DefaultConfig()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{cfg.PoolLabel: cfg.Pool, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: cfg.PoolLabel, Value: cfg.Pool, Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
		},
	}
	if _, err := admin.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := admin.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				// The TaintNodesByCondition admission plugin taints a new
				// node not-ready; without a node lifecycle controller in the
				// test control plane, remove it as that controller would.
				var keep []corev1.Taint
				for _, tn := range got.Spec.Taints {
					if tn.Key != corev1.TaintNodeNotReady {
						keep = append(keep, tn)
					}
				}
				got.Spec.Taints = keep
				if _, err := admin.CoreV1().Nodes().Update(context.Background(), got, metav1.UpdateOptions{}); err != nil {
					if apierrors.IsConflict(err) {
						continue
					}
					t.Fatal(err)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kwok did not make node %s Ready: %+v", name, got.Status.Conditions)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRolloutOnTheControlPlane needs kube-scheduler, kube-controller-manager
// and kwok (EBBFLOW_TEST_KWOK, set by the test services that run them):
// launch → the Deployment becomes Available; update → no pod of the old
// version is removed before the new version has a Ready pod, and Ready
// pods never drop below the replica count; retire → the Deployment's
// ReplicaSets and pods are collected.
func TestRolloutOnTheControlPlane(t *testing.T) {
	if os.Getenv("EBBFLOW_TEST_KWOK") == "" {
		t.Fatal("EBBFLOW_TEST_KWOK is not set: start the control plane with deploy/dev/services.sh up (kube-controller-manager and kwok make pods Ready); integration tests never skip")
	}
	c := setup(t)
	ctx := context.Background()
	cfg := servers.DefaultConfig()
	ns := cfg.Namespace
	h := New(c.handler, cfg)
	a := newActuator(t, c)
	doc, model := uniqueSpec(t, "ranker-cpu.yaml", "2")
	doc = []byte(strings.Replace(string(doc), "resources: {cpu: \"4\", memory: 2Gi}", "resources: {cpu: \"4\", memory: 2Gi}\nscaling: {min_replicas: 3, max_replicas: 10}", 1))
	cleanup(t, c.admin, ns, model)
	onlineNode(t, c.admin, "it-online-"+model)
	seq := time.Now().UnixMilli()
	if act := process(t, a, h, decision(t, h, "it-"+model+"-1", seq, schemas.InferenceLaunch, doc, model, 2)); act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("launch: %+v", act)
	}
	waitRolledOut(t, c.admin, ns, model, 3, "2")

	// Watch the pods through the update.
	sel := servers.LabelModel + "=" + model
	pods := map[string]*corev1.Pod{}
	initial, err := c.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	for i := range initial.Items {
		pods[initial.Items[i].Name] = &initial.Items[i]
	}
	w, err := c.admin.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: initial.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	v3 := []byte(strings.Replace(string(doc), "version: 2\n", "version: 3\n", 1))
	if act := process(t, a, h, decision(t, h, "it-"+model+"-2", seq+1, schemas.InferenceUpdate, v3, model, 3)); act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("update: %+v", act)
	}
	firstNewReady, firstOldGone := time.Time{}, time.Time{}
	minReady := 1 << 30
	deadline := time.After(90 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == "DELETED" {
				delete(pods, p.Name)
			} else {
				pods[p.Name] = p
			}
			ready, newPods, oldLive := 0, 0, 0
			for _, q := range pods {
				v := q.Labels[servers.LabelVersion]
				terminating := q.DeletionTimestamp != nil
				if podReady(q) && !terminating {
					ready++
					if v == "3" {
						newPods++
						if firstNewReady.IsZero() {
							firstNewReady = time.Now()
						}
					}
				}
				if v == "2" && !terminating {
					oldLive++
				}
			}
			if oldLive < 3 && firstOldGone.IsZero() {
				firstOldGone = time.Now()
			}
			minReady = min(minReady, ready)
			done = newPods == 3 && oldLive == 0
		case <-deadline:
			t.Fatalf("rollout did not finish: pods %d", len(pods))
		}
	}
	if firstNewReady.IsZero() || firstOldGone.Before(firstNewReady) {
		t.Errorf("an old pod went (%v) before a new one was Ready (%v)", firstOldGone, firstNewReady)
	}
	if minReady < 3 {
		t.Errorf("Ready pods dropped to %d during the rollout (want ≥ 3, maxUnavailable 0)", minReady)
	}
	waitRolledOut(t, c.admin, ns, model, 3, "3")

	if act := process(t, a, h, decision(t, h, "it-"+model+"-3", seq+2, schemas.InferenceRetire, nil, model, 3)); act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("retire: %+v", act)
	}
	deadline2 := time.Now().Add(60 * time.Second)
	for {
		rss, _ := c.admin.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		ps, _ := c.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		live := 0
		for _, p := range ps.Items {
			if p.DeletionTimestamp == nil {
				live++
			}
		}
		if len(rss.Items) == 0 && live == 0 {
			break
		}
		if time.Now().After(deadline2) {
			t.Fatalf("after retire: %d ReplicaSets, %d pods not terminating", len(rss.Items), live)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitRolledOut(t *testing.T, kube kubernetes.Interface, ns, name string, replicas int32, version string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rolledOut(d) && *d.Spec.Replicas == replicas && d.Spec.Template.Labels[servers.LabelVersion] == version {
			for _, c := range d.Status.Conditions {
				if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			var why []string
			ps, _ := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: servers.LabelModel + "=" + name})
			for _, p := range ps.Items {
				why = append(why, fmt.Sprintf("%s node=%q phase=%s conditions=%+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions))
			}
			t.Fatalf("Deployment %s/%s not rolled out to v%s: %+v\npods:\n%s", ns, name, version, d.Status, strings.Join(why, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
