//go:build integration

package scale

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
)

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)", name)
	}
	return v
}

// kubeClients returns an admin client and one authenticated with the
// actuator token (system:serviceaccount:ebbflow:ebbflow-actuator), after
// applying deploy/rbac as admin.
func kubeClients(t *testing.T) (admin, actuator kubernetes.Interface) {
	t.Helper()
	server := mustEnv(t, "EBBFLOW_TEST_KUBE_SERVER")
	ca := mustEnv(t, "EBBFLOW_TEST_KUBE_CA")
	mk := func(token string) kubernetes.Interface {
		cs, err := kubernetes.NewForConfig(&rest.Config{Host: server, BearerToken: strings.TrimSpace(token),
			TLSClientConfig: rest.TLSClientConfig{CAFile: ca}, QPS: 100, Burst: 200})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	admin = mk(mustEnv(t, "EBBFLOW_TEST_KUBE_ADMIN_TOKEN"))
	actuator = mk(mustEnv(t, "EBBFLOW_TEST_KUBE_ACTUATOR_TOKEN"))
	if err := cluster.ApplyManifestDir(context.Background(), admin, "../../deploy/rbac"); err != nil {
		t.Fatalf("apply deploy/rbac: %v", err)
	}
	return admin, actuator
}

// testNamespace creates a namespace for one test and deletes it after.
func testNamespace(t *testing.T, admin kubernetes.Interface) string {
	t.Helper()
	name := fmt.Sprintf("ebbflow-it-%d", time.Now().UnixNano()%1_000_000_000)
	if _, err := admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

func createDeployment(t *testing.T, admin kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "srv", Image: "nvcr.io/nvidia/tritonserver:24.08-py3"}}},
			},
		},
	}
	if _, err := admin.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func kubeDecision(ns, name string, seq int64, to int32) schemas.ScaleDecision {
	t := schemas.Target{Cluster: "it", Namespace: ns, Kind: "Deployment", Name: name}
	return schemas.ScaleDecision{
		ID: fmt.Sprintf("scale/%s/%d", t.Key(), seq), Kind: schemas.DecisionScale, Seq: seq, Target: t,
		Entity: schemas.ServiceEntity("it", ns, name), AtMs: seq, ExpiresMs: seq + 120_000, From: 1, To: to,
		Reason:    schemas.Reason{Summary: "integration test", Formula: "ceil", HorizonMinutes: 3, Demands: []schemas.SignalDemand{}},
		DecidedBy: "it",
	}
}

func specReplicas(t *testing.T, admin kubernetes.Interface, ns, name string) (int32, map[string]string) {
	t.Helper()
	d, err := admin.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas, d.Annotations
}

func TestKubeScaleAsActuatorIdentity(t *testing.T) {
	admin, actClient := kubeClients(t)
	ns := testNamespace(t, admin)
	createDeployment(t, admin, ns, "web", 1)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	steps := []struct {
		name     string
		dec      schemas.ScaleDecision
		clock    int64
		outcome  string
		reason   string
		replicas int32
	}{
		{"applied", kubeDecision(ns, "web", now, 4), now, schemas.OutcomeApplied, "scaled 1 → 4", 4},
		{"duplicate", kubeDecision(ns, "web", now, 4), now, schemas.OutcomeSkipped, "duplicate", 4},
		{"stale", kubeDecision(ns, "web", now-5000, 9), now, schemas.OutcomeSkipped, "stale", 4},
		{"expired", kubeDecision(ns, "web", now+1000, 9), now + 200_000, schemas.OutcomeSkipped, "expired", 4},
		{"newer applied", kubeDecision(ns, "web", now+2000, 2), now + 2000, schemas.OutcomeApplied, "scaled 4 → 2", 2},
	}
	for _, s := range steps {
		a, err := actuators.NewActuator(actuators.DefaultConfig(), "it", "it-actuator", actClient, registry(actClient, actuators.DefaultConfig()), actuators.ClockFunc(func() time.Time { return time.UnixMilli(s.clock) }), quiet, nil)
		if err != nil {
			t.Fatal(err)
		}
		act, ok, err := a.Process(ctx, s.dec.EventType(), mustMarshal(t, s.dec))
		if err != nil || !ok {
			t.Fatalf("%s: ok=%v err=%v", s.name, ok, err)
		}
		if act.Outcome != s.outcome || !strings.Contains(act.Reason, s.reason) {
			t.Fatalf("%s: %s %q (error %q), want %s containing %q", s.name, act.Outcome, act.Reason, act.Error, s.outcome, s.reason)
		}
		n, ann := specReplicas(t, admin, ns, "web")
		if n != s.replicas {
			t.Fatalf("%s: replicas %d, want %d", s.name, n, s.replicas)
		}
		if s.outcome == schemas.OutcomeApplied && (ann[actuators.AnnotationLastDecisionID] != s.dec.ID || ann[actuators.AnnotationLastDecisionSeq] != fmt.Sprint(s.dec.Seq)) {
			t.Fatalf("%s: annotations %v", s.name, ann)
		}
	}
	evs, err := admin.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range evs.Items {
		if e.Regarding.Name == "web" && e.ReportingController == "ebbflow.io/actuator" {
			notes = append(notes, e.Reason+": "+e.Note)
		}
	}
	if len(notes) != len(steps) {
		t.Fatalf("%d ebbflow events on the Deployment, want %d: %v", len(notes), len(steps), notes)
	}
}

func TestKubeStatefulSetScale(t *testing.T) {
	admin, actClient := kubeClients(t)
	ns := testNamespace(t, admin)
	one := int32(1)
	labels := map[string]string{"app": "db"}
	_, err := admin.AppsV1().StatefulSets(ns).Create(context.Background(), &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "postgres"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := kubeDecision(ns, "db", time.Now().UnixMilli(), 3)
	d.Target.Kind = "StatefulSet"
	a, err := actuators.NewActuator(actuators.DefaultConfig(), "it", "it-actuator", actClient, registry(actClient, actuators.DefaultConfig()), nil, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	act, _, err := a.Process(context.Background(), d.EventType(), mustMarshal(t, d))
	if err != nil || act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("%+v %v", act, err)
	}
	st, err := admin.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	if err != nil || *st.Spec.Replicas != 3 || st.Annotations[actuators.AnnotationLastDecisionID] != d.ID {
		t.Fatalf("statefulset %v %v", st.Spec.Replicas, err)
	}
}

func TestKubeConflictIsRetried(t *testing.T) {
	admin, actClient := kubeClients(t)
	ns := testNamespace(t, admin)
	createDeployment(t, admin, ns, "web", 1)
	var bumped atomic.Int32
	sh := NewHandler(actClient, 100, WithBeforeUpdate(func(ctx context.Context, tg schemas.Target) {
		// Another writer changes the Deployment between our read and write.
		if bumped.Add(1) == 1 {
			_, err := admin.AppsV1().Deployments(tg.Namespace).Patch(ctx, tg.Name, types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"touched":"yes"}}}`), metav1.PatchOptions{})
			if err != nil {
				t.Errorf("concurrent patch: %v", err)
			}
		}
	}))
	reg := actuators.NewRegistry()
	reg.Register(schemas.ScaleDecision{}.EventType(), sh)
	a, err := actuators.NewActuator(actuators.DefaultConfig(), "it", "it-actuator", actClient, reg, nil, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := kubeDecision(ns, "web", time.Now().UnixMilli(), 5)
	act, _, err := a.Process(context.Background(), d.EventType(), mustMarshal(t, d))
	if err != nil {
		t.Fatal(err)
	}
	if act.Outcome != schemas.OutcomeApplied || act.Attempts != 2 {
		t.Fatalf("outcome %s after %d attempts (%s), want applied after 2 (first hits the conflict)", act.Outcome, act.Attempts, act.Error)
	}
	if n, _ := specReplicas(t, admin, ns, "web"); n != 5 {
		t.Fatalf("replicas %d", n)
	}
}

func TestKubeActuatorRefusedOutsideItsRole(t *testing.T) {
	admin, actClient := kubeClients(t)
	ns := testNamespace(t, admin)
	createDeployment(t, admin, ns, "web", 1)
	ctx := context.Background()
	_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A binding left by an earlier run (the node role bound to this
	// identity) was just replaced by kubeClients; RBAC caches settle within
	// a moment of a change.
	deadline := time.Now().Add(2 * time.Minute)
	for _, err := actClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil && time.Now().Before(deadline); _, err = actClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}) {
		time.Sleep(200 * time.Millisecond)
	}
	attempts := map[string]func() error{
		"get secret": func() error { _, err := actClient.CoreV1().Secrets(ns).Get(ctx, "s", metav1.GetOptions{}); return err },
		// Pods and nodes are the node actuator's, which acts as its own
		// identity (deploy/rbac/node-actuator.yaml), not as this one.
		"list pods":  func() error { _, err := actClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); return err },
		"delete pod": func() error { return actClient.CoreV1().Pods(ns).Delete(ctx, "any", metav1.DeleteOptions{}) },
		"evict pod": func() error {
			return actClient.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "any", Namespace: ns}})
		},
		"list nodes": func() error { _, err := actClient.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err },
		"patch node": func() error {
			_, err := actClient.CoreV1().Nodes().Patch(ctx, "any", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		},
		"delete deployment": func() error {
			return actClient.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{})
		},
		"create deployment": func() error {
			one := int32(1)
			_, err := actClient.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x"},
				Spec: appsv1.DeploymentSpec{Replicas: &one}}, metav1.CreateOptions{})
			return err
		},
		"update deployment spec": func() error {
			d, err := admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Image = "evil"
			_, err = actClient.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		},
		"lease outside ebbflow namespace": func() error {
			_, err := actClient.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l"}}, metav1.CreateOptions{})
			return err
		},
		"delete lease in ebbflow": func() error {
			return actClient.CoordinationV1().Leases("ebbflow").Delete(ctx, "ebbflow-actuator", metav1.DeleteOptions{})
		},
		"scale a replicaset": func() error {
			_, err := actClient.AppsV1().ReplicaSets(ns).GetScale(ctx, "web", metav1.GetOptions{})
			return err
		},
		"create node": func() error {
			_, err := actClient.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}, metav1.CreateOptions{})
			return err
		},
	}
	for name, f := range attempts {
		if err := f(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: err %v, want Forbidden", name, err)
		}
	}
	// And what it needs is allowed: read the scale, create a lease in ebbflow.
	if _, err := actClient.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("get scale: %v", err)
	}
}

// TestKubeLeaderElectionOneActive: two actuator instances campaign for the
// same Lease as the actuator identity; at no moment do both act, and when
// the leader stops the other takes over.
func TestKubeLeaderElectionOneActive(t *testing.T) {
	_, actClient := kubeClients(t)
	le := actuators.LeaderElectionConfig{Enabled: true, Namespace: "ebbflow", LeaseName: fmt.Sprintf("it-lease-%d", time.Now().UnixNano()%1_000_000),
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: time.Second}
	var active, maxActive atomic.Int32
	var mu sync.Mutex
	var leaders []string
	run := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			mu.Lock()
			leaders = append(leaders, id)
			mu.Unlock()
			<-ctx.Done()
			active.Add(-1)
			return nil
		}
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	var wg sync.WaitGroup
	for _, x := range []struct {
		id  string
		ctx context.Context
	}{{"a", ctxA}, {"b", ctxB}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := actuators.LeadAndRun(x.ctx, actClient, le, x.id, quiet, run(x.id)); err != nil {
				t.Errorf("%s: %v", x.id, err)
			}
		}()
	}
	waitFor(t, 2*time.Minute, "a first leader", func() bool { mu.Lock(); defer mu.Unlock(); return len(leaders) == 1 })
	time.Sleep(4 * time.Second) // several renewals: the follower must not start acting
	mu.Lock()
	first := leaders[0]
	if len(leaders) != 1 {
		t.Fatalf("leaders %v while the first still holds the lease", leaders)
	}
	mu.Unlock()
	if first == "a" {
		cancelA()
	} else {
		cancelB()
	}
	waitFor(t, 2*time.Minute, "the other instance to take over", func() bool { mu.Lock(); defer mu.Unlock(); return len(leaders) == 2 })
	mu.Lock()
	if leaders[1] == first {
		t.Fatalf("leaders %v: the stopped instance led again", leaders)
	}
	mu.Unlock()
	cancelA()
	cancelB()
	wg.Wait()
	if maxActive.Load() != 1 {
		t.Fatalf("%d instances acted at once", maxActive.Load())
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustMarshal(t *testing.T, ev schemas.Event) []byte {
	t.Helper()
	b, err := schemas.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
