package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

func init() { subcommands = append(subcommands, newActuateCmd) }

func newActuateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "actuate",
		Short: "Actuator: carry out decisions on Kubernetes, report each as an action",
		Long: `actuate consumes the decisions topic (read_committed) for this cluster
(kubernetes.cluster), dispatches each decision kind to its handler — scale:
Deployments/StatefulSets through the scale subresource; inference: model servers'
ConfigMap, Deployment and Service by server-side apply, as the identity in
servers.impersonate (docs/servers.md) — idempotently (decision id and
sequence recorded as ebbflow.io/last-decision-id / -seq annotations), skipping stale,
duplicate and expired decisions, with per-cluster rate limits, retries on conflicts and
5xx, and dry-run (actuate.dry_run). Every decision ends as an event on the actions topic
and a Kubernetes Event on the target; failures are also alerts on NATS.

Replicas elect one leader through a coordination.k8s.io Lease
(actuate.leader_election); only the leader consumes. The identity needs the roles in
deploy/rbac/actuator.yaml and deploy/rbac/inference.yaml. Configuration: section 'actuate'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.Actuate)
		},
	}
}
