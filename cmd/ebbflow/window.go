package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

func init() { subcommands = append(subcommands, newWindowCmd) }

func newWindowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "window",
		Short: "Aggregate metrics.raw into event-time windows: metrics.windows (exactly once) and the Parquet history",
		Long: `window runs the event-time window processors: a Kafka consumer group
(window.group) on <prefix>.metrics.raw.v1 that aggregates each entity's
signals into tumbling windows of window.sizes (default 60s), and

  - produces each closed window to <prefix>.metrics.windows.v1 in a Kafka
    transaction together with the consumed offsets (exactly once; read it
    with isolation.level=read_committed);
  - writes it to the Parquet history (history.backend local or hdfs, under
    history.root/windows/size=<N>s/dt=YYYY-MM-DD/hour=HH/);
  - sends undecodable records and samples later than
    window.allowed_lateness to <prefix>.deadletter.v1 with the reason.

Watermarks come from the data (largest event time minus window.delay);
a partition idle for window.idle_timeout advances with the wall clock.
Run several for more throughput: partitions are shared by the group.
/metrics, /healthz and /readyz are served on telemetry.listen.`,
		Example: `  ebbflow window --config ebbflow.yaml
  ebbflow window --set window.sizes=15s,60s --set history.backend=hdfs --set history.namenodes=nn:8020 --set history.root=/ebbflow/history`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.Window)
		},
	}
}
