package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/nodes"
	"github.com/ebbflow/ebbflow/internal/config"
)

// withNodeActuator adds the nodes handler to the actuator's registry and
// runs its handover reconciler while this replica leads (so one replica
// evicts and relabels). It returns the registry and the Leading callback
// that wraps next.
func withNodeActuator(ctx context.Context, c config.Config, cs kubernetes.Interface, log *slog.Logger, reg prometheus.Registerer, next func(bool)) (*actuators.Registry, func(bool), error) {
	m := c.Mixing
	h, err := nodes.New(cs, nodes.Config{GroupLabel: m.GroupLabel, DrainGrace: m.Policy.DrainGrace,
		MaxNodesPerDecision: m.Actuator.MaxNodesPerDecision, MaxTrainingEvictionsPerHour: m.Actuator.MaxTrainingEvictionsPerHour,
		Identity: c.Actuate.Identity}, actuators.WallClock{}, log.With("handler", "nodes"), reg)
	if err != nil {
		return nil, nil, err
	}
	r := actuators.DefaultRegistry(cs, c.Actuate)
	h.Register(r)
	var (
		mu     sync.Mutex
		cancel context.CancelFunc
		done   chan struct{}
	)
	leading := func(on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on && cancel == nil {
			var rctx context.Context
			rctx, cancel = context.WithCancel(ctx)
			done = make(chan struct{})
			go func() {
				defer close(done)
				h.Run(rctx, m.Actuator.ReconcileInterval)
			}()
		}
		if !on && cancel != nil {
			cancel()
			<-done // stop reconciling before the Lease can pass on
			cancel = nil
		}
		if next != nil {
			next(on)
		}
	}
	return r, leading, nil
}
