package main

import (
	"errors"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/inference"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

func init() { subcommands = append(subcommands, newActuateCmd) }

func newActuateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "actuate",
		Short: "Actuator: carry out decisions on Kubernetes, report each as an action",
		Long: `actuate consumes the decisions topic (read_committed) for this cluster
(kubernetes.cluster), dispatches each decision kind to its handler — scale:
Deployments/StatefulSets through the scale subresource; inference: model servers'
ConfigMap, Deployment and Service by server-side apply (docs/servers.md) — idempotently (decision id and
sequence recorded as ebbflow.io/last-decision-id / -seq annotations), skipping stale,
duplicate and expired decisions, with per-cluster rate limits, retries on conflicts and
5xx, and dry-run (actuate.dry_run). Every decision ends as an event on the actions topic
and a Kubernetes Event on the target; failures are also alerts on NATS.

Replicas elect one leader through a coordination.k8s.io Lease
(actuate.leader_election); only the leader consumes. The identity needs the role in
deploy/rbac/actuator.yaml. Configuration: section 'actuate'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			log := telemetry.NewLogger(c.Telemetry, nil).With("component", "actuate")
			reg := telemetry.NewRegistry()
			cs, err := c.Kubernetes.Clientset()
			if err != nil {
				return err
			}
			// Handlers, one per decision kind. The inference handler acts
			// as its own least-privilege identity (servers.impersonate).
			rc, err := c.Kubernetes.RESTConfig()
			if err != nil {
				return err
			}
			infKube, err := inference.Client(rc, c.Servers.Impersonate)
			if err != nil {
				return err
			}
			handlers := actuators.DefaultRegistry(cs, c.Actuate)
			handlers.Register(schemas.InferenceDecision{}.EventType(), inference.New(infKube, c.Servers))
			var leading atomic.Bool
			deps := actuators.Deps{Kafka: c.Kafka, Cluster: c.Kubernetes.Cluster, Kube: cs, Log: log, Registerer: reg,
				Clock: actuators.WallClock{}, Leading: leading.Store, Handlers: handlers}
			if c.NATS.URL != "" {
				nc, js, err := natsbus.ConnectJetStream(c.NATS, "ebbflow-actuate")
				if err != nil {
					return err
				}
				defer nc.Close()
				deps.JetStream = js
			}
			ready := &telemetry.Readiness{}
			// A follower is ready (it is waiting for the lease by design);
			// liveness of the leader shows in ebbflow_actuate_* metrics.
			ready.Add("kubernetes", func() error {
				if _, err := cs.Discovery().ServerVersion(); err != nil {
					return errors.New("kubernetes API unreachable: " + err.Error())
				}
				return nil
			})
			go func() {
				if err := telemetry.Serve(ctx, c.Telemetry.Listen, telemetry.Handler(reg, ready), log); err != nil {
					log.Error("telemetry", "err", err)
				}
			}()
			return actuators.Run(ctx, c.Actuate, deps)
		},
	}
}
