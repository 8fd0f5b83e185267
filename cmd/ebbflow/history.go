package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

func init() { subcommands = append(subcommands, newHistoryCmd) }

func newHistoryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "history", Short: "Work with the metric history (Parquet windows on HDFS or a local directory)"}
	cmd.AddCommand(newHistoryImportCmd(g))
	return cmd
}

func newHistoryImportCmd(g *globals) *cobra.Command {
	var o trace.Options
	var csvPath, root, start, tz string
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import a CSV load trace as history windows (the same Parquet the window processors write)",
		Long: `Each CSV row becomes one gauge window of the trace's step (inferred: 60 s for
per-minute traces, 300 s for 5-minute ones; the step is kept, not resampled),
aligned down to a multiple of the step. Missing rows stay gaps. Rows must be in
time order and every value a number (an error names the line), unless --sort
(sort the rows) or --empty-is-gap (an empty value cell is a gap).

Timestamps: "YYYY-MM-DD HH:MM:SS" (read in --tz, default UTC), RFC 3339, Unix
seconds or milliseconds, or seconds from --start (the Azure trace):
  ebbflow history import --csv nasa_requests_per_minute.csv --entity svc/trace/nasa/web --signal qps --value-col number_of_requests
  ebbflow history import --csv vm_cpu_readings_month_aggregated_cpu_mem.csv --entity svc/trace/azure/vms --signal cpu \
      --value-col cpu_usage --time-format offset --start 2019-01-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if csvPath == "" {
				return errors.New("--csv: a file is required")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if root == "" {
				root = cfg.History.Root
			}
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return fmt.Errorf("--start: %w", err)
				}
				o.Start = t
			}
			if tz != "" {
				loc, err := time.LoadLocation(tz)
				if err != nil {
					return fmt.Errorf("--tz: %w", err)
				}
				o.Location = loc
			}
			f, err := os.Open(csvPath)
			if err != nil {
				return err
			}
			defer f.Close()
			ws, st, err := trace.Read(f, o)
			if err != nil {
				return fmt.Errorf("%s: %w", csvPath, err)
			}
			fsys, err := history.Open(cmd.Context(), cfg.History)
			if err != nil {
				return err
			}
			defer history.Close(fsys)
			name := "import-" + strings.TrimSuffix(filepath.Base(csvPath), filepath.Ext(csvPath)) + "-" + o.Signal + ".parquet"
			paths, err := history.WriteWindows(cmd.Context(), fsys, root, ws, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rows → %d windows of %ds (%d missing steps kept as gaps), %s to %s, %d files under %s\n",
				st.Rows, len(ws), st.StepS, st.Gaps, time.UnixMilli(st.FirstMs).UTC().Format(time.DateTime),
				time.UnixMilli(st.LastMs).UTC().Format(time.DateTime), len(paths), root)
			return nil
		},
	}
	cmd.Flags().StringVar(&csvPath, "csv", "", "CSV trace with a header row")
	cmd.Flags().StringVar(&root, "history", "", "history root (default history.root, on history.backend)")
	cmd.Flags().StringVar(&o.Entity, "entity", "", "entity the trace becomes, e.g. svc/trace/nasa/web")
	cmd.Flags().StringVar(&o.Signal, "signal", "qps", "signal the trace becomes")
	cmd.Flags().StringVar(&o.TimeCol, "time-col", "", "timestamp column name or index (default: first)")
	cmd.Flags().StringVar(&o.ValueCol, "value-col", "", "value column name or index (default: second)")
	cmd.Flags().StringVar(&o.TimeFormat, "time-format", "auto", "auto, datetime, rfc3339, unix, unix_ms or offset")
	cmd.Flags().StringVar(&start, "start", "", "RFC 3339 time of offset 0 (time format offset)")
	cmd.Flags().StringVar(&tz, "tz", "", "zone of datetime timestamps (default UTC)")
	cmd.Flags().Int64Var(&o.StepS, "step", 0, "window size in seconds (default: inferred)")
	cmd.Flags().BoolVar(&o.Sort, "sort", false, "sort rows by time instead of refusing a trace out of order")
	cmd.Flags().BoolVar(&o.EmptyIsGap, "empty-is-gap", false, "skip rows with an empty value cell as gaps instead of refusing them")
	_ = cmd.MarkFlagRequired("entity")
	return cmd
}
