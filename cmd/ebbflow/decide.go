package main

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/forecast/scaling"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
)

func init() { subcommands = append(subcommands, newDecideCmd) }

func newDecideCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "decide",
		Short: "Elastic-scaling decider: forecasts + windows → scale decisions on Kafka and NATS",
		Long: `decide consumes the forecasts and metrics.windows topics (read_committed), decides
each inference service's replica count — expansion ceil(y/expectRate × N), contraction
floor(y/expectRate × N), guarded by latency/error SLOs, scale-down stabilization,
cooldowns, max step and min/max replicas — and publishes every decision with its
reason to the decisions topic and to NATS ebbflow.decisions.scale.<cluster>.<namespace>.

N and per-service annotations (ebbflow.io/min-replicas, ebbflow.io/expect-rate-<signal>,
…) come from the Deployments/StatefulSets through an informer (decide.watch_workloads),
otherwise N is the service's latest 'replicas' window. Configuration: section 'decide'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			log := telemetry.NewLogger(c.Telemetry, nil).With("component", "decide")
			reg := telemetry.NewRegistry()
			deps := scaling.Deps{Kafka: c.Kafka, Cluster: c.Kubernetes.Cluster, Log: log, Registerer: reg}
			if c.NATS.URL != "" {
				nc, js, err := natsbus.ConnectJetStream(c.NATS, "ebbflow-decide")
				if err != nil {
					return err
				}
				defer nc.Close()
				deps.JetStream = js
			}
			if c.Decide.WatchWorkloads {
				cs, err := c.Kubernetes.Clientset()
				if err != nil {
					return fmt.Errorf("%w (or set decide.watch_workloads=false to take N from the replicas signal)", err)
				}
				if deps.Workloads, err = scaling.NewWorkloadInformer(ctx, cs, 0); err != nil {
					return err
				}
			}
			var joined atomic.Bool
			deps.Ready = func() { joined.Store(true) }
			ready := &telemetry.Readiness{}
			ready.Add("kafka", func() error {
				if !joined.Load() {
					return errors.New("consumer group not joined yet")
				}
				return nil
			})
			go func() {
				if err := telemetry.Serve(ctx, c.Telemetry.Listen, telemetry.Handler(reg, ready), log); err != nil {
					log.Error("telemetry", "err", err)
				}
			}()
			return scaling.Run(ctx, c.Decide, deps)
		},
	}
}
