package wire

import (
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/scale"
	"github.com/ebbflow/ebbflow/schemas"
)

// Handlers is the one list of actuator handlers, one per decision kind,
// keyed by the decision's CloudEvents type. The actuators framework knows
// no kind: a new one (actuators/<kind>) is one Register line here.
func Handlers(kube kubernetes.Interface, cfg actuators.Config) *actuators.Registry {
	r := actuators.NewRegistry()
	r.Register(schemas.ScaleDecision{}.EventType(), scale.NewHandler(kube, cfg.MaxReplicas))
	return r
}
