package wire

import (
	"context"

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
	infKube := cs
	if e.KubeAs != nil && e.Cfg.Servers.Impersonate != "" {
		var err error
		if infKube, err = e.KubeAs(e.Cfg.Servers.Impersonate); err != nil {
			return nil, nil, err
		}
	}
	r.Register(schemas.InferenceDecision{}.EventType(), inference.New(infKube, e.Cfg.Servers))
	var leading func(bool)
	if e.Cfg.Mixing.Actuator.Enabled {
		// Nodes (mixing.actuator), with its handover reconciler while leading.
		var err error
		if leading, err = nodeActuator(ctx, e, cs, clock, r); err != nil {
			return nil, nil, err
		}
	}
	return r, leading, nil
}
