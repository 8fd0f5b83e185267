package wire

import (
	"context"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/nodes"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// nodeActuator registers the nodes handler (mixing.actuator) in r and
// returns the Leading
// callback that runs its handover reconciler while this replica leads, so
// one replica evicts and relabels. The reconciler's steps go to the
// actions topic; each decision's own action is the framework's.
func nodeActuator(ctx context.Context, e *Env, cs kubernetes.Interface, clock actuators.Clock, r *actuators.Registry) (func(bool), error) {
	m := e.Cfg.Mixing
	h, err := nodes.New(cs, nodes.Config{GroupLabel: m.GroupLabel, DrainGrace: m.Policy.DrainGrace,
		MaxNodesPerDecision: m.Actuator.MaxNodesPerDecision, MaxTrainingEvictionsPerHour: m.Actuator.MaxTrainingEvictionsPerHour,
		Identity: e.Cfg.Actuate.Identity, Cluster: e.Cfg.Kubernetes.Cluster}, clock, e.Log.With("handler", "nodes"), e.Reg)
	if err != nil {
		return nil, err
	}
	sc, err := e.Cfg.Kafka.IdempotentProducer()
	if err != nil {
		return nil, err
	}
	prod, err := sarama.NewSyncProducer(e.Cfg.Kafka.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("actuate: node steps producer to %v: %w", e.Cfg.Kafka.Brokers, err)
	}
	go func() { <-ctx.Done(); prod.Close() }()
	topic := e.Cfg.Kafka.Topics().Name(schemas.TopicActions)
	h.SetReporter(func(_ context.Context, a schemas.Action) {
		msg, err := kafkax.NewMessage(topic, e.Cfg.Actuate.Source, a)
		if err == nil {
			_, _, err = prod.SendMessage(msg)
		}
		if err != nil {
			e.Log.Warn("publish node handover step", "action", a.ID, "err", err)
		}
	})
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
	}
	return leading, nil
}
