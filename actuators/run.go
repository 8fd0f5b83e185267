package actuators

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/schemas"
)

// Deps are what Run needs besides its configuration.
type Deps struct {
	// Kafka is the connection section.
	Kafka kafkax.Config
	// Cluster is the cluster this actuator acts on; decisions for other
	// clusters are left to their actuators.
	Cluster string
	// Kube is the client, authenticated as the ebbflow-actuator service
	// account (deploy/rbac).
	Kube kubernetes.Interface
	// JetStream receives failed actions as alerts; nil = no alerts.
	JetStream jetstream.JetStream
	// Clock checks decision TTLs; nil = wall clock.
	Clock Clock
	// Handlers carry out the decision kinds, by CloudEvents type
	// (required; the list is wire.Handlers in cmd/ebbflow/internal/wire).
	Handlers *Registry
	// Verifier checks each decision's signature before any handler sees
	// it (wire builds it from the signing section); nil acts on every
	// decision unverified, for tests and tools only.
	Verifier *decisionsig.Verifier
	// Log and Registerer default to slog.Default() and a private registry.
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// Leading, when set, is called with true when this replica starts
	// acting and false when it stops.
	Leading func(bool)
}

// Run acts on decisions until ctx ends. With leader election on, it joins
// the consumer group only while it holds the Lease, so two replicas never
// both act.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("actuate: %w", err)
	}
	if deps.Kube == nil {
		return errors.New("actuate: a Kubernetes client is required")
	}
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	identity := cfg.Identity
	if identity == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("actuate: identity: %w", err)
		}
		identity = h
	}
	act, err := NewActuator(cfg, deps.Cluster, identity, deps.Kube, deps.Handlers, deps.Clock, log, deps.Registerer)
	if err != nil {
		return err
	}
	act.verifier = deps.Verifier
	topics := deps.Kafka.Topics()
	in, out, dead := topics.Name(schemas.TopicDecisions), topics.Name(schemas.TopicActions), topics.Name(schemas.TopicDeadLetter)
	if err := kafkax.EnsureTopics(ctx, deps.Kafka, in, out, dead); err != nil {
		return fmt.Errorf("actuate: %w", err)
	}
	if deps.JetStream != nil {
		if err := natsbus.EnsureStreams(ctx, deps.JetStream, 7*24*time.Hour); err != nil {
			return fmt.Errorf("actuate: %w", err)
		}
	}
	consume := func(ctx context.Context) error {
		act.m.leader.Set(1)
		defer act.m.leader.Set(0)
		if deps.Leading != nil {
			deps.Leading(true)
			defer deps.Leading(false)
		}
		return consumeDecisions(ctx, cfg, deps, act, log, in, out, dead)
	}
	if !cfg.LeaderElection.Enabled {
		return consume(ctx)
	}
	return LeadAndRun(ctx, deps.Kube, cfg.LeaderElection, identity, log, consume)
}

// LeadAndRun campaigns for the Lease and runs fn while leading; fn's
// context ends when leadership is lost or ctx ends (fn is started again
// after a re-election). It returns when ctx ends, or with fn's error.
//
// Handover is ordered: on shutdown the Lease is released only after fn has
// returned, so the next leader cannot start while this one still acts.
// When renewal fails, fn's context is cancelled at RenewDeadline, before
// the Lease can expire for the others at LeaseDuration.
func LeadAndRun(ctx context.Context, kube kubernetes.Interface, le LeaderElectionConfig, identity string, log *slog.Logger, fn func(context.Context) error) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.LeaseName},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	for ctx.Err() == nil {
		var (
			fnErr   error
			started atomic.Bool
			fnDone  = make(chan struct{})
			iter    = make(chan struct{})
		)
		// The elector's context outlives ctx until fn has returned.
		ectx, ecancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-ctx.Done():
				if started.Load() {
					<-fnDone
				}
				ecancel()
			case <-iter:
			}
		}()
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   le.LeaseDuration,
			RenewDeadline:   le.RenewDeadline,
			RetryPeriod:     le.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            le.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					started.Store(true)
					defer close(fnDone)
					fctx, cancel := context.WithCancel(lctx)
					defer cancel()
					stop := context.AfterFunc(ctx, cancel)
					defer stop()
					log.Info("leading: acting on decisions", "identity", identity, "lease", le.Namespace+"/"+le.LeaseName)
					if err := fn(fctx); err != nil && fctx.Err() == nil {
						fnErr = err
					}
					// fn is done (error, shutdown or lost lease): stop renewing
					// and release the Lease for the others.
					ecancel()
				},
				OnStoppedLeading: func() { log.Info("stopped leading", "identity", identity) },
			},
		})
		if err != nil {
			close(iter)
			ecancel()
			return fmt.Errorf("actuate: leader election on lease %s/%s: %w", le.Namespace, le.LeaseName, err)
		}
		elector.Run(ectx)
		close(iter)
		if started.Load() {
			<-fnDone
		}
		ecancel()
		if fnErr != nil {
			return fnErr
		}
	}
	return nil
}

func consumeDecisions(ctx context.Context, cfg Config, deps Deps, act *Actuator, log *slog.Logger, in, out, dead string) error {
	sc, err := deps.Kafka.GroupConsumer(cfg.InitialOffset)
	if err != nil {
		return fmt.Errorf("actuate: %w", err)
	}
	kafkax.Idempotent(sc) // actions and dead letters
	prod, err := sarama.NewSyncProducer(deps.Kafka.Brokers, sc)
	if err != nil {
		return fmt.Errorf("actuate: producer to %v: %w", deps.Kafka.Brokers, err)
	}
	defer prod.Close()
	group, err := sarama.NewConsumerGroup(deps.Kafka.Brokers, cfg.Group(deps.Cluster), sc)
	if err != nil {
		return fmt.Errorf("actuate: consumer group %s on %v: %w", cfg.Group(deps.Cluster), deps.Kafka.Brokers, err)
	}
	defer group.Close()
	h := &claimHandler{act: act, prod: prod, js: deps.JetStream, log: log, actions: out, deadletter: dead, source: cfg.Source}
	if act.verifier == nil {
		log.Warn("decision signatures are not verified: anyone who can write to the decisions topic can act through this actuator", "topic", in)
	}
	log.Info("actuator consuming", "topic", in, "group", cfg.Group(deps.Cluster), "cluster", deps.Cluster, "dry_run", cfg.DryRun)
	for {
		if err := group.Consume(ctx, []string{in}, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("actuate: consume %s: %w", in, err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

type claimHandler struct {
	act                 *Actuator
	prod                sarama.SyncProducer
	js                  jetstream.JetStream
	log                 *slog.Logger
	actions, deadletter string
	source              string
}

func (h *claimHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *claimHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *claimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if err := h.handle(sess.Context(), msg); err != nil {
				return err
			}
			sess.MarkMessage(msg, "")
			sess.Commit()
		}
	}
}

func (h *claimHandler) handle(ctx context.Context, msg *sarama.ConsumerMessage) error {
	rec := decisionsig.RecordOf(msg)
	if err := h.act.Verify(rec); err != nil {
		reason := "signature"
		if se := (*decisionsig.Error)(nil); errors.As(err, &se) {
			reason = string(se.Reason)
		}
		h.log.Warn("decision refused, sent to dead letter", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "id", rec.ID, "reason", reason, "err", err)
		return h.deadLetter(msg, reason, err)
	}
	act, ok, err := h.act.Process(ctx, rec.Type, msg.Value)
	if bad := (*BadDecisionError)(nil); errors.As(err, &bad) {
		h.log.Warn("bad decision sent to dead letter", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "reason", bad.Reason, "err", err)
		return h.deadLetter(msg, bad.Reason, err)
	}
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	pm, err := kafkax.NewMessage(h.actions, h.source, act)
	if err != nil {
		return fmt.Errorf("actuate: action for %s violates its schema: %w", act.DecisionID, err)
	}
	if _, _, err := h.prod.SendMessage(pm); err != nil {
		return fmt.Errorf("actuate: produce action %s to %s: %w", act.ID, h.actions, err)
	}
	if act.Outcome == schemas.OutcomeFailed && h.js != nil {
		t := act.Target
		alert := schemas.Alert{
			ID: act.ID, Severity: schemas.SeverityCritical, Kind: schemas.AlertActionFailed,
			Summary: fmt.Sprintf("%s: decision %s failed after %d attempts: %s", t.Key(), act.DecisionID, act.Attempts, act.Error),
			Target:  &t, DecisionID: act.DecisionID, AtMs: act.AtMs, Source: h.source,
			Values: map[string]float64{"attempts": float64(act.Attempts)},
		}
		if err := natsbus.PublishAlert(ctx, h.js, alert); err != nil {
			h.log.Warn("publish failed-action alert", "id", alert.ID, "err", err)
		}
	}
	return nil
}

func (h *claimHandler) deadLetter(msg *sarama.ConsumerMessage, reason string, cause error) error {
	pm, err := kafkax.DeadLetter(h.deadletter, h.source, msg, reason, cause.Error(), msg.Value)
	if err != nil {
		return fmt.Errorf("actuate: %w", err)
	}
	if _, _, err := h.prod.SendMessage(pm); err != nil {
		return fmt.Errorf("actuate: produce dead letter for %s/%d@%d to %s: %w", msg.Topic, msg.Partition, msg.Offset, h.deadletter, err)
	}
	return nil
}
