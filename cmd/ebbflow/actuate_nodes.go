package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/nodes"
	"github.com/ebbflow/ebbflow/internal/config"
	"github.com/ebbflow/ebbflow/schemas"
)

// withNodeActuator adds the nodes handler to the actuator's registry and
// runs its handover reconciler while this replica leads (so one replica
// evicts and relabels). It returns the registry and the Leading callback
// that wraps next.
func withNodeActuator(ctx context.Context, c config.Config, cs kubernetes.Interface, log *slog.Logger, reg prometheus.Registerer, next func(bool)) (*actuators.Registry, func(bool), error) {
	m := c.Mixing
	h, err := nodes.New(cs, nodes.Config{GroupLabel: m.GroupLabel, DrainGrace: m.Policy.DrainGrace,
		MaxNodesPerDecision: m.Actuator.MaxNodesPerDecision, MaxTrainingEvictionsPerHour: m.Actuator.MaxTrainingEvictionsPerHour,
		Identity: c.Actuate.Identity, Cluster: c.Kubernetes.Cluster}, actuators.WallClock{}, log.With("handler", "nodes"), reg)
	if err != nil {
		return nil, nil, err
	}
	// The reconciler's steps (pods evicted, handover finished) go to the
	// actions topic too; the decision's own action is the framework's.
	sc, err := c.Kafka.Sarama()
	if err != nil {
		return nil, nil, err
	}
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Net.MaxOpenRequests = 1
	prod, err := sarama.NewSyncProducer(c.Kafka.Brokers, sc)
	if err != nil {
		return nil, nil, fmt.Errorf("actuate: node steps producer to %v: %w", c.Kafka.Brokers, err)
	}
	go func() { <-ctx.Done(); prod.Close() }()
	actions := c.Kafka.Topics().Name(schemas.TopicActions)
	h.SetReporter(func(_ context.Context, a schemas.Action) {
		msg, err := schemas.NewMessage(actions, c.Actuate.Source, a)
		if err == nil {
			_, _, err = prod.SendMessage(msg)
		}
		if err != nil {
			log.Warn("publish node handover step", "action", a.ID, "err", err)
		}
	})
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
