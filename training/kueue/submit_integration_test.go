//go:build integration

package kueue

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/training/scheduler"
)

// realKube connects to the kube-apiserver the test services run.
func realKube(t *testing.T) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	env := func(n string) string {
		v := os.Getenv(n)
		if v == "" {
			t.Fatalf("%s is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)", n)
		}
		return v
	}
	rc := &rest.Config{Host: env("EBBFLOW_TEST_KUBE_SERVER"), BearerToken: strings.TrimSpace(env("EBBFLOW_TEST_KUBE_ADMIN_TOKEN")),
		TLSClientConfig: rest.TLSClientConfig{CAFile: env("EBBFLOW_TEST_KUBE_CA")}}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs, dyn
}

// TestSubmitCreatesAValidSuspendedJob renders a planned job and creates it on
// the real kube-apiserver, which validates every field (extended-resource
// requests equal to limits, affinity, tolerations), then reads it back.
func TestSubmitCreatesAValidSuspendedJob(t *testing.T) {
	cs, dyn := realKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := scheduler.DefaultConfig()
	ns := fmt.Sprintf("training-it-%d", time.Now().UnixNano()%1_000_000)
	cfg.Departments[0].Namespace = ns
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	now := time.Now().UTC()
	spec := testSpec()
	spec.ExpectedDuration = 2 * time.Hour
	runs := []scheduler.RunStats{{Run: "bert-1", EndMs: 1, GPUs: 8, GPUUtilMean: 0.3, GPUMemPeakMiB: 50_000, CPUMean: 3, CPUPeak: 5}}
	p, err := scheduler.PlanSubmission(cfg, "c1", spec, scheduler.PlanInput{Now: now, Runs: runs, DeptUtil: -1})
	if err != nil {
		t.Fatal(err)
	}
	job, err := RenderJob(cfg, spec, p, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(dyn, cs, cfg, "c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, job); err != nil {
		t.Fatalf("the apiserver refused the rendered Job: %v", err)
	}
	got, err := cs.BatchV1().Jobs(ns).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Suspend == nil || !*got.Spec.Suspend {
		t.Error("job is not suspended: Kueue would not gate it")
	}
	if got.Labels[LabelQueueName] != cfg.Kueue.LocalQueue || got.Labels[LabelPriorityClass] != cfg.Kueue.PriorityClass {
		t.Errorf("Kueue labels %v", got.Labels)
	}
	// ceil(0.3 × 8) = 3 GPUs, CPU 3 × 1.5 = 4.5 request, 5 × 1.5 = 7.5 limit.
	res := got.Spec.Template.Spec.Containers[0].Resources
	g := res.Limits[corev1.ResourceName(cfg.Pools.GPUResource)]
	cpuReq, cpuLim := res.Requests[corev1.ResourceCPU], res.Limits[corev1.ResourceCPU]
	if g.Value() != 3 || cpuReq.MilliValue() != 4500 || cpuLim.MilliValue() != 7500 {
		t.Errorf("resources %v", res)
	}
	if got.Spec.Template.Spec.NodeSelector[cfg.Pools.GPUModelLabel] != "NVIDIA-A100-SXM4-80GB" {
		t.Errorf("node selector %v", got.Spec.Template.Spec.NodeSelector)
	}
	// Suspended: the job controller creates no pods.
	time.Sleep(2 * time.Second)
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("%d pods of a suspended job", len(pods.Items))
	}
}
