package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

func init() { subcommands = append(subcommands, newAutoscaleCmd, newDecideCmd) }

func newAutoscaleCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "autoscale",
		Short: "Elastic-scaling decider: forecasts + windows → scale decisions on Kafka and NATS",
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
		RunE: runAutoscale(g),
	}
}

// newDecideCmd is the old name of autoscale: hidden from help, and cobra
// prints a deprecation notice before running autoscale.
func newDecideCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:        "decide",
		Short:      "Deprecated: use 'ebbflow autoscale'",
		Hidden:     true,
		Deprecated: "use 'ebbflow autoscale' (same flags, configuration section 'autoscale')",
		Args:       cobra.NoArgs,
		RunE:       runAutoscale(g),
	}
}

func runAutoscale(g *globals) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cfg, err := g.load()
		if err != nil {
			return err
		}
		return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.Autoscale)
	}
}
