package sim

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLaunchedServiceWaitsForItsDeployment: a launched service serves
// nothing until a Deployment is created through the API (as the inference
// actuator does); then its pods start, become ready after the start-up
// delay and serve Triton-named metrics; deleting the Deployment removes
// them.
func TestLaunchedServiceWaitsForItsDeployment(t *testing.T) {
	ctx := context.Background()
	s := newTestSim(t, 30*time.Second,
		Service{Name: "web", Model: "web", CapacityRPS: 100, BaseLatencyMs: 10, InitialReplicas: 1, Load: constLoad(50)},
		Service{Name: "resnet50", Model: "resnet50", CapacityRPS: 100, BaseLatencyMs: 10, Load: constLoad(150), Launched: true})
	cs := s.Clientset()
	podsOf := func(name string) []corev1.Pod {
		l, err := cs.CoreV1().Pods("inference").List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	for range 4 {
		if err := s.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(podsOf("resnet50")); n != 0 {
		t.Fatalf("%d pods before the launch", n)
	}
	if st := s.Stats()[1]; st.Requests != 0 || st.ReplicaMinutes != 0 {
		t.Fatalf("a service not yet launched counted %+v", st)
	}
	two := int32(2)
	labels := map[string]string{"ebbflow.io/model": "resnet50"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "resnet50", Namespace: "inference"},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "triton", Image: "tritonserver:launched"}}}}}}
	if _, err := cs.AppsV1().Deployments("inference").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // 45 s: past the 30 s start-up
		if err := s.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pods := podsOf("resnet50")
	if len(pods) != 2 || pods[0].Spec.Containers[0].Image != "tritonserver:launched" {
		t.Fatalf("after the launch: %d pods %+v", len(pods), pods)
	}
	mf := scrape(t, s.MetricsURL("inference", pods[0].Name))
	if mf["nv_inference_request_success"] == nil {
		t.Fatalf("a launched pod serves no Triton metrics: %v", mf)
	}
	got, _ := cs.AppsV1().Deployments("inference").Get(ctx, "resnet50", metav1.GetOptions{})
	if got.Status.ReadyReplicas != 2 {
		t.Fatalf("Deployment status %+v", got.Status)
	}
	if err := cs.AppsV1().Deployments("inference").Delete(ctx, "resnet50", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(podsOf("resnet50")); n != 0 {
		t.Fatalf("%d pods left after the Deployment was deleted", n)
	}
	if st := s.State()[1]; st.Pods != 0 || st.Desired != 0 {
		t.Fatalf("state after retire %+v", st)
	}
}
