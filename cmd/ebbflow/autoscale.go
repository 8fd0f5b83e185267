package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

func init() { subcommands = append(subcommands, newAutoscaleCmd) }

func newAutoscaleCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "autoscale",
		Aliases: []string{"decide"},
		Short:   "Elastic-scaling decider: forecasts + windows → scale decisions on Kafka and NATS",
		Long: `autoscale consumes the forecasts and metrics.windows topics (read_committed), decides
each inference service's replica count — expansion ceil(y/expectRate × N), contraction
to the count that holds y at expectRate × (1 − scale_down_band) and only when that is
below N (hysteresis; band 0 is WPAI's floor(y/expectRate × N)), guarded by latency/error
SLOs, scale-down stabilization, cooldowns, max step and min/max replicas — and publishes
every decision with its
reason to the decisions topic and to NATS ebbflow.decisions.scale.<cluster>.<namespace>.

N and per-service annotations (ebbflow.io/min-replicas, ebbflow.io/expect-rate-<signal>,
…) come from the Deployments/StatefulSets through an informer (autoscale.watch_workloads),
otherwise N is the service's latest 'replicas' window. Configuration: section 'autoscale'.
'ebbflow decide' is a deprecated alias of this command.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.Autoscale)
		},
	}
}
