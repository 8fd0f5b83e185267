package main

import (
	"encoding/json"
	"fmt"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/training/mixing"
	"github.com/ebbflow/ebbflow/training/mixing/xgbforecast"
)

func init() { subcommands = append(subcommands, newMixingCmd) }

func newMixingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mixing",
		Short: "Node mixing: hand idle inference nodes to training and take them back before the peak",
		Long: `mixing moves whole nodes of a node group (ebbflow.io/node-group: cpu, t4, a100, …)
between the inference pool (online) and the training pool (offline), never touching
fixed nodes. 'mixing backtest' replays shared traces offline; 'mixing run' is the
decider loop. Configuration: section 'mixing'. See docs/mixing.md.`,
	}
	cmd.AddCommand(newMixingBacktestCmd())
	cmd.AddCommand(newMixingRunCmd(g))
	return cmd
}

func newMixingBacktestCmd() *cobra.Command {
	var (
		traces, dir string
		asJSON, xgb bool
		python      string
		base        = mixing.DefaultBacktest("", "nasa")
	)
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Replay inference traces and a Philly-shaped training job stream: ebbflow's policy against WPAI's reactive rule",
		Long: `backtest replays, offline and deterministically, each inference trace (nasa, elb,
vm_cpu from the shared traces directory) as the demand of one node group, and a seeded
training job stream whose busy-node count follows philly_node_sequence.csv. The same
days run under every policy: ebbflow-seasonal (the mixing decider fed by a seasonal-
profile forecaster, with offline windows and the kill budget), ebbflow-seasonal-no-windows
and wpai-reactive; with --xgb also ebbflow-xgb (the first 5 minutes of the forecast from
ebbflow's XGBoost forecaster, trained on the warm-up days only). It prints, per trace and policy: jobs that ran on mixed nodes and the
share that completed, the kill rate, flips per hour, minutes inference pods were Pending.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := strings.Split(traces, ",")
			if traces == "all" {
				names = []string{"nasa", "elb", "vm_cpu"}
			}
			if dir == "" {
				d, err := trace.Dir()
				if err != nil {
					return fmt.Errorf("--traces-dir: %w", err)
				}
				dir = d
			}
			var results []mixing.BacktestResult
			for _, n := range names {
				cfg := base
				cfg.TracesDir, cfg.Inference = dir, strings.TrimSpace(n)
				if xgb {
					cfg.ShortTerm = xgbforecast.Trainer(xgbforecast.Options{Python: python})
				}
				start := time.Now()
				res, err := mixing.BacktestContext(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				results = append(results, res)
				if !asJSON {
					printMixingBacktest(cmd.OutOrStdout(), res, time.Since(start))
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(results)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&traces, "trace", "all", "inference traces, comma-separated: nasa, elb, vm_cpu, or all")
	f.StringVar(&dir, "traces-dir", "", "directory of the shared traces (default $"+trace.EnvDir+", else the first shared/traces above the working directory)")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	f.BoolVar(&xgb, "xgb", false, "add the ebbflow-xgb policy: XGBoost trained on the warm-up days (needs Python with xgboost: --python, $EBBFLOW_PYTHON or .venv)")
	f.StringVar(&python, "python", "", "Python interpreter with xgboost for --xgb")
	f.IntVar(&base.StartDay, "start-day", base.StartDay, "whole days skipped at the start of both traces")
	f.IntVar(&base.WarmupDays, "warmup-days", base.WarmupDays, "days replayed before the measured span (forecaster history, cluster warm-up)")
	f.IntVar(&base.Days, "days", base.Days, "measured days")
	f.IntVar(&base.TailDays, "tail-days", base.TailDays, "days after the span in which jobs started in it may finish")
	f.IntVar(&base.MixableNodes, "mixable-nodes", base.MixableNodes, "nodes that can flip between online and offline")
	f.IntVar(&base.FixedNodes, "fixed-nodes", base.FixedNodes, "training-only nodes (jobs expected over --long-job)")
	f.Float64Var(&base.PeakShare, "peak-share", base.PeakShare, "share of the mixable nodes the 99.5th percentile of inference demand needs")
	f.DurationVar(&base.CheckpointEvery, "checkpoint-every", base.CheckpointEvery, "training checkpoint interval")
	f.DurationVar(&base.LongJob, "long-job", base.LongJob, "jobs expected to run longer go to the fixed pool")
	f.Uint64Var(&base.Jobs.Seed, "seed", base.Jobs.Seed, "seed of the training job stream")
	f.IntVar(&base.Policy.KillBudgetPerHour, "kill-budget", base.Policy.KillBudgetPerHour, "training pods ebbflow may evict per hour (WPAI's rule has none)")
	f.IntVar(&base.Policy.SpareNodes, "spare-nodes", base.Policy.SpareNodes, "online nodes kept beyond the forecast's need")
	f.DurationVar(&base.Policy.Dwell, "dwell", base.Policy.Dwell, "how long utilisation stays under min_rate before nodes go offline")
	f.Float64Var(&base.Policy.MinRate, "min-rate", base.Policy.MinRate, "utilisation under which nodes go offline")
	f.Float64Var(&base.Policy.MaxRate, "max-rate", base.Policy.MaxRate, "utilisation over which nodes come back")
	return cmd
}

func printMixingBacktest(w io.Writer, r mixing.BacktestResult, took time.Duration) {
	fmt.Fprintf(w, "trace %s: %s → %s, %d generated jobs (busy-curve MAE %.2f nodes), %d interpolated minutes, %.1fs\n",
		r.Trace, r.From.Format("2006-01-02"), r.To.Format("2006-01-02"), r.Jobs, r.GeneratorMAE, r.FilledMinutes, took.Seconds())
	fmt.Fprintln(w, "| policy | jobs on mixed | completed | kill rate (killed/started) | flips/h | Pending min | offline node-h | busy mixed node-h | lost node-h | jobs done (all pools) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, p := range r.Policies {
		fmt.Fprintf(w, "| %s | %d | %.1f %% | %.2f %% (%d/%d) | %.2f | %d | %.0f | %.0f | %.1f | %d |\n",
			p.Policy, p.JobsOnMixed, 100*p.CompletedShare, 100*p.KillRate, p.Killed, p.Attempts, p.FlipsPerHour,
			p.PendingMinutes, p.OfflineNodeHours, p.MixedBusyNodeHours, p.LostWorkNodeHours, p.JobsCompleted)
	}
	fmt.Fprintln(w)
}
