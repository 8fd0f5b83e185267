package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/ingest/replay"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/telemetry"
)

func init() { subcommands = append(subcommands, newReplayCmd) }

// parseTime accepts RFC 3339 or a UTC date (YYYY-MM-DD).
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("--%s %q: want RFC 3339 (2026-03-01T10:00:00Z) or a date (2026-03-01)", flag, s)
}

func newReplayCmd(g *globals) *cobra.Command {
	var from, to, speed, topic string
	var size time.Duration
	var entities, signals []string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-publish windows from the history to Kafka in event-time order, at any speed",
		Long: `replay reads windows from the Parquet history (history.backend local or
hdfs, history.root) and produces them to Kafka in event-time order (window
end), with their original timestamps and event ids, paced at --speed: a
multiple of real time (60x plays an hour in a minute) or max. The default
topic is <prefix>.metrics.windows.v1; pass --topic to keep replayed data
apart (for a backtest, point a forecaster's topic prefix at it).

A progress bar is drawn on stderr when it is a terminal; a summary (rows,
entities, time span) is printed at the end.`,
		Example: `  ebbflow replay --from 2026-03-01 --to 2026-03-02 --speed max --topic backtest.metrics.windows.v1
  ebbflow replay --from 2026-03-01T10:00:00Z --to 2026-03-01T12:00:00Z --speed 60x --entity svc/c1/prod/web`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			rc := replay.Config{Speed: speed, SizeS: int64(size / time.Second), Entities: entities, Signals: signals, Topic: topic}
			if rc.From, err = parseTime("from", from); err != nil {
				return err
			}
			if rc.To, err = parseTime("to", to); err != nil {
				return err
			}
			if err := rc.Validate(); err != nil {
				return err
			}
			log := telemetry.NewLogger(cfg.Telemetry, cmd.ErrOrStderr())
			fsys, err := history.Open(cmd.Context(), cfg.History)
			if err != nil {
				return err
			}
			defer history.Close(fsys)
			deps := replay.Deps{History: fsys, HistoryRoot: cfg.History.Root, Kafka: cfg.Kafka, Logger: log}
			if replay.IsTerminal(os.Stderr) {
				deps.Progress = os.Stderr
			}
			sum, err := replay.Run(cmd.Context(), rc, deps)
			fmt.Fprintln(cmd.OutOrStdout(), sum.String())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "first window start to replay (RFC 3339 or YYYY-MM-DD, UTC)")
	f.StringVar(&to, "to", "", "replay windows starting before this (RFC 3339 or YYYY-MM-DD); empty = to the end")
	f.StringVar(&speed, "speed", "max", "60x (a multiple of real time) or max")
	f.DurationVar(&size, "size", 0, "window size to replay, e.g. 60s (0 = every size)")
	f.StringSliceVar(&entities, "entity", nil, "replay only these entities (repeatable)")
	f.StringSliceVar(&signals, "signal", nil, "replay only these signals (repeatable)")
	f.StringVar(&topic, "topic", "", "destination topic (full name; default <prefix>.metrics.windows.v1)")
	return cmd
}
