package main

import (
	"context"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ebbflow/ebbflow/ingest/window"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/telemetry"
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
			log := telemetry.NewLogger(cfg.Telemetry, cmd.ErrOrStderr())
			reg := telemetry.NewRegistry()
			var fsys history.FS
			if cfg.Window.History {
				fsys, err = history.Open(cmd.Context(), cfg.History)
				if err != nil {
					return err
				}
				defer history.Close(fsys)
			}
			eg, ctx := errgroup.WithContext(cmd.Context())
			eg.Go(func() error {
				return telemetry.Serve(ctx, cfg.Telemetry.Listen, telemetry.Handler(reg, &telemetry.Readiness{}), log)
			})
			eg.Go(func() error {
				err := window.Run(ctx, cfg.Window, window.Deps{
					Kafka: cfg.Kafka, History: fsys, HistoryRoot: cfg.History.Root, Logger: log, Registerer: reg,
				})
				if err != nil {
					return err
				}
				return context.Canceled
			})
			if err := eg.Wait(); err != nil && err != context.Canceled {
				return err
			}
			return nil
		},
	}
}
