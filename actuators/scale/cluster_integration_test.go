//go:build integration

package scale

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
)

// The scale handler, acting as the actuator's service account, scales a Deployment on the real
// control plane: kube-controller-manager creates the pods, kube-scheduler binds them to kwok's
// GPU nodes, kwok runs them; scaling down removes them.
func TestScaleHandlerPodsRunOnKwokNodes(t *testing.T) {
	_, actuator := kubeClients(t) // applies deploy/rbac; the actuator's own identity
	s := cluster.NewScope(t)
	nodes := s.AddNodes(cluster.GroupT4, 2, cluster.NodeOptions{Pool: cluster.PoolOnline})

	labels := map[string]string{"app": "resnet"}
	spec := corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Containers: []corev1.Container{{Name: "triton", Image: "nvcr.io/nvidia/tritonserver:fake",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{cluster.ResourceGPU: resource.MustParse("1")},
				Limits:   corev1.ResourceList{cluster.ResourceGPU: resource.MustParse("1")}}}},
	}
	s.Confine(&spec)
	if _, err := s.Kube.AppsV1().Deployments(s.Namespace).Create(s.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: s.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.WaitPodsRunning("app=resnet", 1, 2*time.Minute)

	h := NewHandler(actuator, 0)
	target := schemas.Target{Cluster: "test", Namespace: s.Namespace, Kind: "Deployment", Name: "resnet"}
	decide := func(seq int64, from, to int32) schemas.Action {
		t.Helper()
		now := time.Now().UnixMilli()
		sd := schemas.ScaleDecision{ID: fmt.Sprintf("d-%s-%d", s.ID, seq), Kind: "scale", Seq: seq, Target: target,
			Entity: "resnet", AtMs: now, ExpiresMs: now + 60_000, From: from, To: to,
			Reason: schemas.Reason{Summary: "integration test"}, DecidedBy: "test"}
		act, err := h.Apply(s.Context(), actuators.Decision{Kind: sd.Kind, ID: sd.ID, Seq: seq, Target: target,
			AtMs: sd.AtMs, ExpiresMs: sd.ExpiresMs, Event: sd})
		if err != nil {
			t.Fatalf("scale %d→%d: %v", from, to, err)
		}
		if act.Outcome != schemas.OutcomeApplied {
			t.Fatalf("scale %d→%d: outcome %s (%s)", from, to, act.Outcome, act.Reason)
		}
		return act
	}

	decide(1, 1, 6)
	pods := s.WaitPodsRunning("app=resnet", 6, 2*time.Minute)
	on := cluster.OnNodes(pods)
	for _, n := range nodes {
		if on[n.Name] < 2 || on[n.Name] > 4 { // 4 GPUs per t4 node
			t.Errorf("node %s runs %d of 6 one-GPU pods (placement %v)", n.Name, on[n.Name], on)
		}
	}
	d, err := s.Kube.AppsV1().Deployments(s.Namespace).Get(s.Context(), "resnet", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations[actuators.AnnotationLastDecisionSeq] != "1" {
		t.Errorf("decision not recorded: annotations %v", d.Annotations)
	}
	waitDeploymentAvailable(t, s, "resnet", 6)

	decide(2, 6, 2)
	s.WaitPodsRunning("app=resnet", 2, 2*time.Minute)
	waitDeploymentAvailable(t, s, "resnet", 2)
}

// waitDeploymentAvailable waits for the Deployment controller to report n available replicas.
func waitDeploymentAvailable(t *testing.T, s *cluster.Scope, name string, n int32) {
	t.Helper()
	cluster.WaitFor(t, 2*time.Minute, fmt.Sprintf("deployment %s to have %d available replicas", name, n), func(ctx context.Context) (bool, string, error) {
		d, err := s.Kube.AppsV1().Deployments(s.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return d.Status.AvailableReplicas == n && d.Status.Replicas == n,
			fmt.Sprintf("replicas=%d available=%d", d.Status.Replicas, d.Status.AvailableReplicas), nil
	})
}
