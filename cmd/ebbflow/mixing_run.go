package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/training/mixing"
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
			c, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			log := telemetry.NewLogger(c.Telemetry, nil).With("component", "mixing")
			reg := telemetry.NewRegistry()
			cs, err := c.Kubernetes.Clientset()
			if err != nil {
				return err
			}
			deps := mixing.Deps{Kafka: c.Kafka, Cluster: c.Kubernetes.Cluster, Kube: cs, Log: log, Registerer: reg}
			if c.NATS.URL != "" {
				nc, js, err := natsbus.ConnectJetStream(c.NATS, "ebbflow-mixing")
				if err != nil {
					return err
				}
				defer nc.Close()
				deps.JetStream = js
			}
			go func() {
				if err := telemetry.Serve(ctx, c.Telemetry.Listen, telemetry.Handler(reg, &telemetry.Readiness{}), log); err != nil {
					log.Error("telemetry", "err", err)
				}
			}()
			return mixing.Run(ctx, c.Mixing, deps)
		},
	}
}
