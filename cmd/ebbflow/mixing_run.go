package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

func newMixingRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "The node-mixing decider: node windows + forecasts + nodes and pods → nodes decisions",
		Long: `run reads the nodes and pods of the cluster through informers and each node's
utilisation windows and forecasts from Kafka (mixing.utilisation: gpu_util by default,
cpu for the cpu group), evaluates every node group each mixing.interval and publishes
each decision that moves nodes, with its reason, to the decisions topic (key
<cluster>//NodeGroup/<group>) and NATS ebbflow.decisions.nodes.<cluster>.<group>. The
node actuator in 'ebbflow actuate' carries them out. Run one per cluster; its identity
needs deploy/rbac/mixing.yaml. Configuration: section 'mixing'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.Mixing)
		},
	}
}
