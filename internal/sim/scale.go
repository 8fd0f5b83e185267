package sim

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// installScaleReactors makes the fake clientset serve the scale
// subresource of Deployments and StatefulSets the way the API server does:
// GetScale returns an autoscaling/v1 Scale built from the object, and
// UpdateScale or a patch of the scale changes spec.replicas. The stock
// fake object tracker stores the Scale in place of the Deployment (or
// returns the Deployment where a Scale is expected), so actuators calling
// the scale subresource would fail without this.
func installScaleReactors(cs *fake.Clientset) {
	for _, res := range []string{"deployments", "statefulsets"} {
		gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: res}
		cs.PrependReactor("get", res, func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "scale" {
				return false, nil, nil
			}
			ga := a.(k8stesting.GetAction)
			obj, err := cs.Tracker().Get(gvr, a.GetNamespace(), ga.GetName())
			if err != nil {
				return true, nil, err
			}
			return true, scaleOf(obj), nil
		})
		cs.PrependReactor("update", res, func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "scale" {
				return false, nil, nil
			}
			sc, ok := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
			if !ok {
				return true, nil, fmt.Errorf("sim: update %s/scale: object is not an autoscaling/v1 Scale", res)
			}
			obj, err := setReplicas(cs, gvr, a.GetNamespace(), sc.Name, sc.Spec.Replicas)
			if err != nil {
				return true, nil, err
			}
			return true, scaleOf(obj), nil
		})
		cs.PrependReactor("patch", res, func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "scale" {
				return false, nil, nil
			}
			pa := a.(k8stesting.PatchAction)
			var p struct {
				Spec struct {
					Replicas *int32 `json:"replicas"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(pa.GetPatch(), &p); err != nil || p.Spec.Replicas == nil {
				return true, nil, fmt.Errorf("sim: patch %s/%s/scale: only merge patches of spec.replicas are simulated (got %s)", res, pa.GetName(), pa.GetPatch())
			}
			obj, err := setReplicas(cs, gvr, a.GetNamespace(), pa.GetName(), *p.Spec.Replicas)
			if err != nil {
				return true, nil, err
			}
			if pa.GetPatchType() == types.ApplyPatchType {
				return true, scaleOf(obj), nil // ApplyScale returns a Scale
			}
			// The typed Patch(…, "scale") of the fake client expects the
			// parent type back.
			return true, obj, nil
		})
	}
}

func setReplicas(cs *fake.Clientset, gvr schema.GroupVersionResource, ns, name string, n int32) (runtime.Object, error) {
	obj, err := cs.Tracker().Get(gvr, ns, name)
	if err != nil {
		return nil, err
	}
	obj = obj.DeepCopyObject()
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
		o.Generation++
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
		o.Generation++
	default:
		return nil, fmt.Errorf("sim: %s %s/%s: unexpected %T", gvr.Resource, ns, name, obj)
	}
	if err := cs.Tracker().Update(gvr, obj, ns); err != nil {
		return nil, err
	}
	return obj, nil
}

func scaleOf(obj runtime.Object) *autoscalingv1.Scale {
	var (
		meta     metav1.ObjectMeta
		spec     int32
		status   int32
		selector *metav1.LabelSelector
	)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		meta, status, selector = o.ObjectMeta, o.Status.Replicas, o.Spec.Selector
		if o.Spec.Replicas != nil {
			spec = *o.Spec.Replicas
		}
	case *appsv1.StatefulSet:
		meta, status, selector = o.ObjectMeta, o.Status.Replicas, o.Spec.Selector
		if o.Spec.Replicas != nil {
			spec = *o.Spec.Replicas
		}
	}
	sel := ""
	if selector != nil {
		if s, err := metav1.LabelSelectorAsSelector(selector); err == nil {
			sel = s.String()
		}
	}
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, ResourceVersion: meta.ResourceVersion, UID: meta.UID},
		Spec:       autoscalingv1.ScaleSpec{Replicas: spec},
		Status:     autoscalingv1.ScaleStatus{Replicas: status, Selector: sel},
	}
}
