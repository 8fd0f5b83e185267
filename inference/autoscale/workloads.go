package autoscale

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
)

// informerWorkloads reads Deployments and StatefulSets from shared
// informer caches: N is spec.replicas (what was last asked for, not what
// is ready, so a scale-up in progress is not asked for twice).
type informerWorkloads struct {
	deploy appslisters.DeploymentLister
	sts    appslisters.StatefulSetLister
}

// NewWorkloadInformer starts informers on Deployments and StatefulSets in
// all namespaces and waits for their first sync. They stop with ctx. The
// identity needs get/list/watch on apps deployments and statefulsets
// (deploy/rbac/autoscale.yaml).
func NewWorkloadInformer(ctx context.Context, cs kubernetes.Interface, resync time.Duration) (WorkloadLister, error) {
	f := informers.NewSharedInformerFactory(cs, resync)
	d := f.Apps().V1().Deployments()
	s := f.Apps().V1().StatefulSets()
	di, si := d.Informer(), s.Informer()
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), di.HasSynced, si.HasSynced) {
		return nil, fmt.Errorf("autoscale: deployments/statefulsets informer did not sync: %w", ctx.Err())
	}
	return &informerWorkloads{deploy: d.Lister(), sts: s.Lister()}, nil
}

// Workload implements WorkloadLister: a Deployment first, then a
// StatefulSet of that name.
func (w *informerWorkloads) Workload(namespace, name string) (Workload, bool) {
	if dep, err := w.deploy.Deployments(namespace).Get(name); err == nil {
		n := int32(1)
		if dep.Spec.Replicas != nil {
			n = *dep.Spec.Replicas
		}
		return Workload{Kind: "Deployment", Replicas: n, Annotations: dep.Annotations}, true
	} else if !errors.IsNotFound(err) {
		return Workload{}, false
	}
	if st, err := w.sts.StatefulSets(namespace).Get(name); err == nil {
		n := int32(1)
		if st.Spec.Replicas != nil {
			n = *st.Spec.Replicas
		}
		return Workload{Kind: "StatefulSet", Replicas: n, Annotations: st.Annotations}, true
	}
	return Workload{}, false
}
