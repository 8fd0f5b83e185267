//go:build integration

package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Generous deadlines: the machine running the tests may be busy; nothing here sleeps.
const (
	schedTimeout = 2 * time.Minute
)

func pod(s *Scope, name, priorityClass string, cpu string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			PriorityClassName:             priorityClass,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/ebbflow/fake:1",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}},
		},
	}
	s.Confine(&p.Spec)
	return p
}

func priorityClass(s *Scope, name string, value int32) string {
	s.T.Helper()
	full := name + "-" + s.ID
	_, err := s.Kube.SchedulingV1().PriorityClasses().Create(s.Context(), &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: full}, Value: value}, metav1.CreateOptions{})
	if err != nil {
		s.T.Fatalf("creating PriorityClass %s: %v", full, err)
	}
	s.T.Cleanup(func() {
		if err := s.Kube.SchedulingV1().PriorityClasses().Delete(s.Context(), full, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			s.T.Logf("deleting PriorityClass %s: %v", full, err)
		}
	})
	return full
}

// A Deployment becomes a ReplicaSet and pods (kube-controller-manager), the pods are bound to
// kwok nodes (kube-scheduler) and run (kwok); scaling down deletes pods after their grace period.
func TestDeploymentPodsRunOnKwokNodes(t *testing.T) {
	s := NewScope(t)
	nodes := s.AddNodes(GroupT4, 2, NodeOptions{Pool: PoolOnline})
	labels := map[string]string{"app": "infer"}
	spec := corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/ebbflow/fake:1",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{ResourceGPU: resource.MustParse("1")},
				Limits:   corev1.ResourceList{ResourceGPU: resource.MustParse("1")}}}},
	}
	s.Confine(&spec)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "infer", Namespace: s.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](6),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
	if _, err := s.Kube.AppsV1().Deployments(s.Namespace).Create(s.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := s.WaitPodsRunning("app=infer", 6, schedTimeout)
	on := OnNodes(pods)
	for _, n := range nodes {
		// 4 GPUs per t4 node: 6 one-GPU pods cannot fit on one node.
		if on[n.Name] > 4 || on[n.Name] == 0 {
			t.Errorf("node %s runs %d pods; want 2..4 of 6 (placement %v)", n.Name, on[n.Name], on)
		}
	}
	// Two more than the nodes hold: the extra pods stay Pending, marked unschedulable.
	if _, err := s.Kube.AppsV1().Deployments(s.Namespace).Patch(s.Context(), "infer", "application/merge-patch+json",
		[]byte(`{"spec":{"replicas":10}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	s.WaitPods("app=infer", schedTimeout, "8 Running and 2 unschedulable pods", func(pods []corev1.Pod) bool {
		unsched := 0
		for _, p := range pods {
			if ok, _ := PodFailedScheduling(p); ok {
				unsched++
			}
		}
		return len(pods) == 10 && CountPhase(pods, corev1.PodRunning) == 8 && unsched == 2
	})
	// Scale down: the Deployment's pods go, after their 1 s grace period, through kwok.
	if _, err := s.Kube.AppsV1().Deployments(s.Namespace).Patch(s.Context(), "infer", "application/merge-patch+json",
		[]byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	s.WaitPodsRunning("app=infer", 2, schedTimeout)
}

// A high-priority pod pre-empts a low-priority one on a full node.
func TestPriorityPreemptionOnFullNode(t *testing.T) {
	s := NewScope(t)
	nodes := s.AddNodes(GroupCPU, 1, NodeOptions{CPU: "4"})
	low := priorityClass(s, "low", 100)
	high := priorityClass(s, "high", 100000)
	for i := range 2 {
		if _, err := s.Kube.CoreV1().Pods(s.Namespace).Create(s.Context(), pod(s, fmt.Sprintf("low-%d", i), low, "2"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.WaitPods("app in (low-0,low-1)", schedTimeout, "both low-priority pods Running (node full)", func(p []corev1.Pod) bool {
		return CountPhase(p, corev1.PodRunning) == 2
	})
	if _, err := s.Kube.CoreV1().Pods(s.Namespace).Create(s.Context(), pod(s, "high", high, "2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := s.WaitPods("app=high", schedTimeout, "the high-priority pod Running on the full node", func(p []corev1.Pod) bool {
		return CountPhase(p, corev1.PodRunning) == 1
	})
	if got[0].Spec.NodeName != nodes[0].Name {
		t.Fatalf("high-priority pod on %q, want %s", got[0].Spec.NodeName, nodes[0].Name)
	}
	// Exactly one low-priority pod was pre-empted (deleted) to make room; the other still runs.
	lows := s.WaitPods("app in (low-0,low-1)", schedTimeout, "one low-priority pod gone", func(p []corev1.Pod) bool {
		return len(p) == 1
	})
	if lows[0].Status.Phase != corev1.PodRunning {
		t.Fatalf("surviving low-priority pod: %s", Describe(lows))
	}
	// The scheduler records the pre-emption as an event on the victim or nominates the node.
	if got[0].Status.NominatedNodeName != "" && got[0].Status.NominatedNodeName != nodes[0].Name {
		t.Errorf("nominated node %q", got[0].Status.NominatedNodeName)
	}
}

// A cordoned node and a node tainted NoSchedule receive no new pods; an untouched node of the
// same shape takes them all.
func TestCordonedAndTaintedNodesGetNoPods(t *testing.T) {
	s := NewScope(t)
	cordoned := s.AddNodes(GroupCPU, 1, NodeOptions{Unschedulable: true})[0]
	tainted := s.AddNodes(GroupCPU, 1, NodeOptions{Taints: []corev1.Taint{{
		Key: "ebbflow.io/draining", Value: "true", Effect: corev1.TaintEffectNoSchedule}}})[0]
	open := s.AddNodes(GroupCPU, 1, NodeOptions{})[0]
	// Cordon through the API too (the kubectl cordon path), on the node created schedulable.
	later := s.AddNodes(GroupCPU, 1, NodeOptions{})[0]
	s.Cordon(later.Name, true)

	labels := map[string]string{"app": "web"}
	spec := corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/ebbflow/fake:1",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}},
	}
	s.Confine(&spec)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: s.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](8),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
	if _, err := s.Kube.AppsV1().Deployments(s.Namespace).Create(s.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := s.WaitPodsRunning("app=web", 8, schedTimeout)
	on := OnNodes(pods)
	// The scheduler spreads equal pods over equal nodes; all 8 on one node means the other
	// three were filtered out.
	if on[open.Name] != 8 {
		t.Fatalf("placement %v: want all 8 pods on %s, none on cordoned %s, tainted %s, cordoned-later %s",
			on, open.Name, cordoned.Name, tainted.Name, later.Name)
	}
	// Uncordon: new pods may go there again (the spread shows the filter was the cordon).
	s.Cordon(later.Name, false)
	if _, err := s.Kube.AppsV1().Deployments(s.Namespace).Patch(s.Context(), "web", "application/merge-patch+json",
		[]byte(`{"spec":{"replicas":12}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	pods = s.WaitPodsRunning("app=web", 12, schedTimeout)
	on = OnNodes(pods)
	if on[later.Name] == 0 || on[cordoned.Name] != 0 || on[tainted.Name] != 0 {
		t.Fatalf("after uncordoning %s: placement %v", later.Name, on)
	}
}

// kwok completes a Job's pods after the run duration in their annotation; the Job controller
// then marks the Job Complete.
func TestJobPodsCompleteAfterRunDuration(t *testing.T) {
	s := NewScope(t)
	s.AddNodes(GroupCPU, 1, NodeOptions{})
	job := s.NewJob(JobSpec{Name: "short", Pods: 2, Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}, RunFor: 3 * time.Second})
	forever := s.NewJob(JobSpec{Name: "forever", Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}})
	for _, j := range []*batchv1.Job{job, forever} {
		if _, err := s.Kube.BatchV1().Jobs(s.Namespace).Create(s.Context(), j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now()
	s.WaitPods("job=short", schedTimeout, "both pods of job short Succeeded", func(p []corev1.Pod) bool {
		return len(p) == 2 && CountPhase(p, corev1.PodSucceeded) == 2
	})
	WaitFor(t, schedTimeout, "job short Complete", func(ctx context.Context) (bool, string, error) {
		j, err := s.Kube.BatchV1().Jobs(s.Namespace).Get(ctx, "short", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("succeeded=%d active=%d", j.Status.Succeeded, j.Status.Active), nil
	})
	if el := time.Since(started); el < 3*time.Second {
		t.Fatalf("job finished %s after creation, before its 3s run duration", el)
	}
	// The pod without a run duration is still running.
	p := s.WaitPods("job=forever", schedTimeout, "job forever's pod Running", func(p []corev1.Pod) bool {
		return CountPhase(p, corev1.PodRunning) == 1
	})
	if p[0].Status.Phase != corev1.PodRunning {
		t.Fatalf("job forever: %s", Describe(p))
	}
}
