package wire

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/inference"
	"github.com/ebbflow/ebbflow/actuators/scale"
	"github.com/ebbflow/ebbflow/schemas"
)

// Handlers is the one list of actuator handlers, one per decision kind,
// keyed by the decision's CloudEvents type, and the Leading callback of
// those that work while this replica leads (actuators.Deps.Leading; nil
// when none). The actuators framework knows no kind: a new one
// (actuators/<kind>) is one Register line here.
func Handlers(ctx context.Context, e *Env, cs kubernetes.Interface, clock actuators.Clock) (*actuators.Registry, func(bool), error) {
	r := actuators.NewRegistry()
	r.Register(schemas.ScaleDecision{}.EventType(), scale.NewHandler(cs, e.Cfg.Actuate.MaxReplicas))
	// The inference handler acts as its own least-privilege identity
	// (servers.impersonate, deploy/rbac/inference.yaml).
	infKube, err := actAs(e, cs, "inference", e.Cfg.Servers.Impersonate)
	if err != nil {
		return nil, nil, err
	}
	r.Register(schemas.InferenceDecision{}.EventType(), inference.New(infKube, e.Cfg.Servers))
	var leading func(bool)
	if e.Cfg.Mixing.Actuator.Enabled {
		// Nodes (mixing.actuator), with its handover reconciler while
		// leading, as its own identity too (mixing.actuator.impersonate,
		// deploy/rbac/node-actuator.yaml).
		nodeKube, err := actAs(e, cs, "nodes", e.Cfg.Mixing.Actuator.Impersonate)
		if err != nil {
			return nil, nil, err
		}
		if leading, err = nodeActuator(ctx, e, nodeKube, clock, r); err != nil {
			return nil, nil, err
		}
	}
	return r, leading, nil
}

// actAs is the client a handler acts through: one impersonating user, or
// cs itself when user is "" or the process has no identities to act as
// (e.KubeAs nil: ebbflow dev's fake clientset). The scale handler and
// leader election keep the actuator's own identity.
func actAs(e *Env, cs kubernetes.Interface, handler, user string) (kubernetes.Interface, error) {
	if user == "" || e.KubeAs == nil {
		return cs, nil
	}
	kube, err := e.KubeAs(user)
	if err != nil {
		return nil, fmt.Errorf("actuate: %s handler acting as %q: %w", handler, user, err)
	}
	return kube, nil
}
