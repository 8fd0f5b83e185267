package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

func init() { subcommands = append(subcommands, newIngestCmd) }

func newIngestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ingest",
		Short: "Scrape Prometheus targets and receive remote_write; publish samples to Kafka metrics.raw",
		Long: `ingest is ebbflow's front door. It runs, from the ingest section of the
configuration:

  - a Prometheus remote_write receiver (protocol 1.0 and 2.0) on
    ingest.remote_write.listen + ingest.remote_write.path (default
    127.0.0.1:9201/api/v1/write).
  - scraping of ingest.scrape.static targets and, with
    ingest.scrape.kubernetes.enabled, of pods annotated prometheus.io/scrape.
  - signal mapping by ingest.rules (plus the default rules for cAdvisor,
    DCGM, Triton, node-exporter and kube-state-metrics).

Samples go to <kafka.topic_prefix>.metrics.raw.v1 as Arrow IPC, keyed by
entity. /metrics, /healthz and /readyz are served on telemetry.listen.
Delivery guarantees (when a request is acknowledged, back-pressure, what
is retried): docs/ingest.md.`,
		Example: `  ebbflow ingest --config ebbflow.yaml
  ebbflow ingest --set kafka.brokers=10.0.0.1:9092 --set ingest.remote_write.listen=0.0.0.0:9201`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.Ingest)
		},
	}
}
