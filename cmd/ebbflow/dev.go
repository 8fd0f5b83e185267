package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/dev"
)

func init() { subcommands = append(subcommands, newDevCmd) }

func newDevCmd(g *globals) *cobra.Command {
	var opts dev.Options
	var start string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole pipeline in one process on embedded parts against a simulated cluster",
		Long: `ebbflow dev runs every component — ingest, window processors, history,
forecaster, scaling decider, actuators — in one process, each the same code
its own subcommand runs, wired to embedded infrastructure and a simulated
cluster.

Real: the components' code; the Kafka protocol (sarama clients against kfake,
franz-go's in-process Kafka cluster, with idempotent producers, transactions
and consumer groups); NATS (an in-process nats-server with JetStream); the
history (Parquet files in a local directory); Prometheus scraping (real HTTP
/metrics endpoints in the text exposition format); the Kubernetes client
(client-go, the same calls as against an API server).

Simulated: the Kubernetes API (client-go's fake clientset holding Nodes,
Deployments, ReplicaSets and Pods, with the scale subresource); the
inference services (each pod serves Triton, cAdvisor and DCGM metrics, a
kube-state-metrics pod describes the workloads; load per pod = service load /
ready replicas, latency rises M/M/1-like as utilisation nears 1, new
replicas become ready after dev.startup_delay); the traffic (a generated
daily/weekly pattern with noise and bursts, reproducible with dev.seed, or a
real trace given with --trace); and time: the simulation runs --speed times
faster than real time and every sample carries its simulated timestamp in
the exposition, so every component works in event time.

Where each part listens is printed at start (kcat/nats commands included).
With --for, the run stops after that much simulated time and prints a
summary computed from the events on the topics: replica-minutes, minutes
over the latency SLO, decisions, scale-ups/downs and forecast error.`,
		Example: `  ebbflow dev                                  # 60x, live view, until Ctrl-C
  ebbflow dev --speed max --for 6h --headless  # six simulated hours, then a summary
  ebbflow dev --trace ../shared/traces/nasa_requests_per_minute.csv --trace-offset 8h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return err
				}
				opts.Start = t
			}
			_, err = dev.Run(cmd.Context(), cfg, opts, cmd.OutOrStdout())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Speed, "speed", "60x", "simulated time per real time: 1x, 60x, … or max (as fast as the pipeline keeps up)")
	f.DurationVar(&opts.For, "for", 0, "stop after this much simulated time and print the summary (0: run until Ctrl-C)")
	f.BoolVar(&opts.Headless, "headless", false, "plain log lines instead of the refreshing terminal view")
	f.StringVar(&opts.Trace, "trace", "", "CSV trace (time, value…) driving every service's load instead of the generated pattern")
	f.StringVar(&opts.TraceColumn, "trace-column", "", "the trace's value column (default: number_of_requests, active, value, cpu_usage, … or the second)")
	f.DurationVar(&opts.TraceOffset, "trace-offset", 0, "start the replay this far into the trace")
	f.StringVar(&start, "start", "", "simulated start time, RFC 3339 (default: now)")
	return cmd
}
