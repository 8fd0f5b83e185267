//go:build integration

package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const kueueTimeout = 3 * time.Minute

// The Kueue fixtures of testdata/kueue (Kueue engine behaviour; ebbflow's own set-up is deploy/kueue, rendered by training setup).
func kueueExamples() []string {
	dir := filepath.Join("testdata", "kueue")
	return []string{
		filepath.Join(dir, "resourceflavors.yaml"),
		filepath.Join(dir, "clusterqueues.yaml"),
		filepath.Join(dir, "localqueues.yaml"),
	}
}

func a100Job(name, queue string) JobSpec {
	return JobSpec{Name: name, LocalQueue: queue, Requests: GPUs(8), NodeSelector: map[string]string{LabelNodeGroup: "a100"}}
}

func pending(w Workload) bool {
	c, ok := w.Conditions["QuotaReserved"]
	return ok && c.Status == metav1.ConditionFalse
}

// One department's ClusterQueue, in a cohort with another's (testdata/kueue): a job waits while its
// queue and the cohort are full, is admitted when quota frees, borrows the idle department's
// quota, and is pre-empted when that department reclaims it.
func TestKueueQueueingBorrowingAndReclaim(t *testing.T) {
	s := NewScope(t)
	s.ApplyKueue(kueueExamples()...)
	// Two a100 nodes (16 GPUs): as much as both departments' a100 quota.
	s.AddNodes(GroupA100, 2, NodeOptions{})
	research, product := s.KueueName("research"), s.KueueName("product")
	a100 := s.KueueName("a100")

	// research's own 8 a100 GPUs, and product's.
	s.CreateJob(a100Job("r1", "research"))
	s.WaitWorkload("r1", kueueTimeout, "admitted in research on a100", func(w Workload) bool {
		return w.Admitted() && w.ClusterQueue == research && w.Flavors["nvidia.com/gpu"] == a100
	})
	s.CreateJob(a100Job("p1", "product"))
	s.WaitWorkload("p1", kueueTimeout, "admitted in product", func(w Workload) bool { return w.Admitted() && w.ClusterQueue == product })
	s.WaitPods("job in (r1,p1)", kueueTimeout, "r1's and p1's pods Running on the a100 nodes", func(p []corev1.Pod) bool {
		return CountPhase(p, corev1.PodRunning) == 2
	})

	// research is full and has nothing to borrow: r2 waits.
	s.CreateJob(a100Job("r2", "research"))
	w := s.WaitWorkload("r2", kueueTimeout, "pending for quota", pending)
	t.Logf("r2 while research is full: %s", w)
	if w.Admitted() {
		t.Fatalf("r2 admitted while research and the cohort are full: %s", w)
	}
	if msg := w.Conditions["QuotaReserved"].Message; !strings.Contains(msg, "insufficient") && !strings.Contains(msg, "quota") {
		t.Errorf("r2 pending for another reason: %s", w)
	}
	// The job stays suspended: no pods.
	if p, err := s.Pods(s.Context(), "job=r2"); err != nil || len(p) != 0 {
		t.Fatalf("pending job r2 has pods: %s (%v)", Describe(p), err)
	}

	// r1 ends: its quota frees and r2 is admitted.
	s.DeleteJob("r1")
	s.WaitWorkload("r2", kueueTimeout, "admitted once r1's quota is free", func(w Workload) bool {
		return w.Admitted() && w.ClusterQueue == research
	})
	s.WaitPods("job=r2", kueueTimeout, "r2's pod Running", func(p []corev1.Pod) bool { return CountPhase(p, corev1.PodRunning) == 1 })

	// product goes idle; research borrows product's a100 quota for r3.
	s.DeleteJob("p1")
	WaitFor(t, kueueTimeout, "p1's workload to release product's quota", func(ctx context.Context) (bool, string, error) {
		w, ok, err := s.JobWorkload(ctx, "p1")
		if err != nil {
			return false, err.Error(), nil
		}
		return !ok || !w.Cond("QuotaReserved"), w.String(), nil
	})
	s.CreateJob(a100Job("r3", "research"))
	s.WaitWorkload("r3", kueueTimeout, "admitted in research on borrowed a100 quota", func(w Workload) bool {
		return w.Admitted() && w.ClusterQueue == research && w.Flavors["nvidia.com/gpu"] == a100
	})
	WaitFor(t, kueueTimeout, "research to report 8 borrowed a100 GPUs", func(ctx context.Context) (bool, string, error) {
		u, err := s.ClusterQueueUsage(ctx, research)
		if err != nil {
			return false, err.Error(), nil
		}
		q := u[a100]["nvidia.com/gpu"]
		return q[0].Value() == 16 && q[1].Value() == 8, fmt.Sprintf("a100 gpu total=%s borrowed=%s", q[0].String(), q[1].String()), nil
	})

	// product wants its quota back: one of research's two jobs is pre-empted (Kueue picks the
	// most recently admitted; r2 and r3 may share a timestamp second, so either may go), p2 is
	// admitted, and research is left with its nominal quota and borrows nothing.
	s.CreateJob(a100Job("p2", "product"))
	s.WaitWorkload("p2", kueueTimeout, "admitted in product after reclaiming", func(w Workload) bool {
		return w.Admitted() && w.ClusterQueue == product
	})
	var victim, survivor string
	WaitFor(t, kueueTimeout, "one of research's jobs pre-empted, the other admitted", func(ctx context.Context) (bool, string, error) {
		var states []string
		evicted := map[string]bool{}
		admitted := map[string]bool{}
		for _, j := range []string{"r2", "r3"} {
			w, ok, err := s.JobWorkload(ctx, j)
			if err != nil || !ok {
				return false, fmt.Sprintf("%s: %v", j, err), nil
			}
			states = append(states, w.String())
			evicted[j] = w.Cond("Evicted") && w.Conditions["Evicted"].Reason == "Preempted"
			admitted[j] = w.Admitted()
		}
		switch {
		case evicted["r3"] && !admitted["r3"] && admitted["r2"]:
			victim, survivor = "r3", "r2"
		case evicted["r2"] && !admitted["r2"] && admitted["r3"]:
			victim, survivor = "r2", "r3"
		}
		return victim != "", strings.Join(states, "; "), nil
	})
	v := s.WaitWorkload(victim, kueueTimeout, "pre-empted", func(Workload) bool { return true })
	t.Logf("after product reclaimed: victim %s, survivor %s", v, survivor)
	if c, ok := v.Conditions["Preempted"]; !ok || c.Status != metav1.ConditionTrue || c.Reason != "InCohortReclamation" {
		t.Errorf("%s pre-empted for %q, want InCohortReclamation: %s", victim, c.Reason, v)
	}
	WaitFor(t, kueueTimeout, "research back to its nominal 8 a100 GPUs, none borrowed", func(ctx context.Context) (bool, string, error) {
		u, err := s.ClusterQueueUsage(ctx, research)
		if err != nil {
			return false, err.Error(), nil
		}
		q := u[a100]["nvidia.com/gpu"]
		return q[0].Value() == 8 && q[1].Value() == 0, fmt.Sprintf("a100 gpu total=%s borrowed=%s", q[0].String(), q[1].String()), nil
	})
	// The pre-empted job is suspended again and its pods go; p2's pod runs; the victim waits.
	s.WaitPods("job="+victim, kueueTimeout, victim+"'s pods gone", func(p []corev1.Pod) bool { return len(p) == 0 })
	s.WaitPods("job=p2", kueueTimeout, "p2's pod Running", func(p []corev1.Pod) bool { return CountPhase(p, corev1.PodRunning) == 1 })
	s.WaitWorkload(victim, kueueTimeout, "pending again", pending)
	s.WaitPods("job="+survivor, kueueTimeout, survivor+"'s pod still Running", func(p []corev1.Pod) bool { return CountPhase(p, corev1.PodRunning) == 1 })
}

// A GPU job that names no GPU model gets the ClusterQueue's first flavor with room (a100), and
// the next one (t4) once its own a100 quota is used up; its pods land on nodes of that model.
func TestKueueFlavorFollowsClusterQueueOrder(t *testing.T) {
	s := NewScope(t)
	s.ApplyKueue(kueueExamples()...)
	s.AddNodes(GroupA100, 1, NodeOptions{})
	t4nodes := s.AddNodes(GroupT4, 1, NodeOptions{})
	a100, t4 := s.KueueName("a100"), s.KueueName("t4")

	s.CreateJob(JobSpec{Name: "big", LocalQueue: "research", Requests: GPUs(8)})
	s.WaitWorkload("big", kueueTimeout, "admitted on a100 (first GPU flavor)", func(w Workload) bool {
		return w.Admitted() && w.Flavors["nvidia.com/gpu"] == a100
	})
	s.CreateJob(JobSpec{Name: "next", LocalQueue: "research", Requests: GPUs(4)})
	w := s.WaitWorkload("next", kueueTimeout, "admitted", Workload.Admitted)
	t.Logf("job next: %s", w)
	if w.Flavors["nvidia.com/gpu"] != t4 {
		t.Fatalf("with research's a100 quota used, job next got flavor %q, want %q (the next in order): %s", w.Flavors["nvidia.com/gpu"], t4, w)
	}
	p := s.WaitPods("job=next", kueueTimeout, "next's pod Running", func(p []corev1.Pod) bool { return CountPhase(p, corev1.PodRunning) == 1 })
	if p[0].Spec.NodeName != t4nodes[0].Name {
		t.Fatalf("job next's pod on %q, want the t4 node %s", p[0].Spec.NodeName, t4nodes[0].Name)
	}
	if got := p[0].Spec.NodeSelector[LabelNodeGroup]; got != "t4" {
		t.Fatalf("Kueue did not inject the t4 flavor's node label: nodeSelector %v", p[0].Spec.NodeSelector)
	}
	// A CPU-only job takes the cpu flavor, first in order.
	s.CreateJob(JobSpec{Name: "cpu-only", LocalQueue: "research", Requests: corev1.ResourceList{
		corev1.ResourceCPU: GPUs(0)[corev1.ResourceCPU]}})
	cw := s.WaitWorkload("cpu-only", kueueTimeout, "admitted", Workload.Admitted)
	if cw.Flavors["cpu"] != s.KueueName("cpu") {
		t.Fatalf("CPU-only job got flavors %v, want cpu", cw.Flavors)
	}
}
