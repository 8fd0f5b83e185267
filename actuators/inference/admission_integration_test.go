//go:build integration

package inference

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestKubeAdmissionPolicyLimitsInferenceIdentity: RBAC lets
// ebbflow-inference create, patch and delete any ConfigMap, Service and
// Deployment in the serving namespace; the ValidatingAdmissionPolicy in
// deploy/admission makes the real API server refuse it every object not
// labelled app.kubernetes.io/managed-by=ebbflow, while launching a model
// server (server-side apply of all three) still succeeds.
func TestKubeAdmissionPolicyLimitsInferenceIdentity(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	cfg := servers.DefaultConfig()
	ns := cfg.Namespace
	v3, model := uniqueSpec(t, "resnet50-int8.yaml", "3")
	cleanup(t, c.admin, ns, model)
	sel := map[string]string{servers.LabelModel: model}
	done, err := cluster.ApplyAdmissionPolicies(ctx, c.admin, "../../deploy/admission/actuator-policy.yaml", "it-"+model,
		&metav1.LabelSelector{MatchLabels: sel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)

	// Someone else's ConfigMap, in the serving namespace (carrying the
	// test's selector label, not managed-by).
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: model + "-foreign", Namespace: ns, Labels: sel}, Data: map[string]string{"k": "v"}}
	if _, err := c.admin.CoreV1().ConfigMaps(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const msg = "only objects labelled app.kubernetes.io/managed-by=ebbflow"
	i := 0
	cluster.WaitFor(t, time.Minute, "the API server enforcing the inference identity policy", func(ctx context.Context) (bool, string, error) {
		i++
		_, err := c.handler.CoreV1().ConfigMaps(ns).Patch(ctx, foreign.Name, types.MergePatchType, fmt.Appendf(nil, `{"data":{"k":"%d"}}`, i), metav1.PatchOptions{})
		if err == nil {
			return false, "patch of a foreign ConfigMap still accepted", nil
		}
		if strings.Contains(err.Error(), msg) {
			return true, "", nil
		}
		return false, "", fmt.Errorf("patch refused, but not by the policy: %w", err)
	})
	refused := map[string]func() error{
		"delete a foreign ConfigMap": func() error {
			return c.handler.CoreV1().ConfigMaps(ns).Delete(ctx, foreign.Name, metav1.DeleteOptions{})
		},
		"create an unmanaged ConfigMap": func() error {
			_, err := c.handler.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: model + "-new", Namespace: ns, Labels: sel}}, metav1.CreateOptions{})
			return err
		},
		"take over a foreign ConfigMap by labelling it": func() error {
			_, err := c.handler.CoreV1().ConfigMaps(ns).Patch(ctx, foreign.Name, types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"ebbflow"}}}`), metav1.PatchOptions{})
			return err
		},
	}
	for what, f := range refused {
		if err := f(); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s as ebbflow-inference: err %v, want refused with %q", what, err, msg)
		}
	}
	if _, err := c.admin.CoreV1().ConfigMaps(ns).Get(ctx, foreign.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the foreign ConfigMap: %v", err)
	}

	// Its own work: launching the model server.
	h := New(c.handler, cfg)
	a := newActuator(t, c)
	act := process(t, a, h, decision(t, h, "it-"+model+"-1", time.Now().UnixMilli(), schemas.InferenceLaunch, v3, model, 3))
	if act.Outcome != schemas.OutcomeApplied {
		t.Fatalf("launch under the policy: %+v", act)
	}
	if _, err := c.admin.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{}); err != nil {
		t.Fatalf("launched Deployment: %v", err)
	}
}
