//go:build integration

package nodes

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// TestKubeAdmissionPolicyLimitsNodePatches: RBAC lets the node actuator
// patch any node; the ValidatingAdmissionPolicy in deploy/admission makes
// the real API server refuse its patches to anything but cordon and
// ebbflow.io/ labels, taints and annotations, while a whole handover
// (cordon, taint, label, evict, uncordon) still succeeds under it.
func TestKubeAdmissionPolicyLimitsNodePatches(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.node(1, "offline"), w.node(2, "online")
	w.pod("train-a", n1, mixing.WorkloadTraining)
	ctx := context.Background()
	suffix := fmt.Sprintf("it-%s", w.group)
	cleanup, err := cluster.ApplyAdmissionPolicies(ctx, w.admin, "../../deploy/admission/actuator-policy.yaml", suffix,
		&metav1.LabelSelector{MatchLabels: map[string]string{mixing.LabelNodeGroup: w.group}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	patch := func(node, p string) error {
		_, err := w.act.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, []byte(p), metav1.PatchOptions{})
		return err
	}
	i := 0
	cluster.WaitFor(t, time.Minute, "the API server enforcing the node actuator policy", func(context.Context) (bool, string, error) {
		i++
		err := patch(n2, fmt.Sprintf(`{"metadata":{"labels":{"kubernetes.io/hostname":"x%d"}}}`, i))
		if err == nil {
			return false, "foreign label patch still accepted", nil
		}
		if strings.Contains(err.Error(), "may change only ebbflow.io/ labels") {
			return true, "", nil
		}
		return false, "", fmt.Errorf("label patch refused, but not by the policy: %w", err)
	})

	refused := []struct{ what, patch, message string }{
		{"a foreign label", `{"metadata":{"labels":{"topology.kubernetes.io/zone":"elsewhere"}}}`, "only ebbflow.io/ labels"},
		{"removing a foreign taint", `{"spec":{"taints":[]}}`, "only ebbflow.io/ taints"},
		{"adding a foreign taint", `{"spec":{"taints":[{"key":"nvidia.com/gpu","value":"present","effect":"NoSchedule"},{"key":"evil","effect":"NoExecute"}]}}`, "only ebbflow.io/ taints"},
		{"a foreign annotation", `{"metadata":{"annotations":{"node.alpha.kubernetes.io/ttl":"0"}}}`, "only ebbflow.io/ annotations"},
		{"the provider id", `{"spec":{"providerID":"kwok://elsewhere"}}`, "only spec.unschedulable"},
	}
	for _, r := range refused {
		if err := patch(n1, r.patch); err == nil || !strings.Contains(err.Error(), r.message) {
			t.Errorf("patch of %s by %s: err %v, want refused with %q", r.what, nodeIdentity, err, r.message)
		}
	}
	if n := w.get(n1); len(n.Spec.Taints) != 1 || n.Labels["topology.kubernetes.io/zone"] != "" || n.Spec.ProviderID != "" {
		t.Fatalf("a refused patch changed the node: taints %v labels %v", n.Spec.Taints, n.Labels)
	}

	// Its own work: a whole handover of n1 to online.
	h := w.handler(immediate())
	act := h.applyArgs(t, w.decision("d1", 1, toOnline(n1)))
	if act.Outcome != schemas.OutcomeApplied || !strings.Contains(act.Reason, "started") {
		t.Fatalf("handover under the policy: %+v", act)
	}
	assertPool(t, w.get(n1), "offline", true)
	reconcileUntil(t, h, w, n1)
	n := w.get(n1)
	assertPool(t, n, "online", false)
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "nvidia.com/gpu" {
		t.Fatalf("the node's own taint after the handover: %v", n.Spec.Taints)
	}
}
