package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/inference/backtest"
	"github.com/ebbflow/ebbflow/ingest/replay"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

func init() { subcommands = append(subcommands, newBacktestCmd) }

// Backtest modes: what is replayed. Node mixing will add its own.
const backtestModeScale = "scale"

func newBacktestCmd(g *globals) *cobra.Command {
	var (
		mode, tracePath, histRoot, entity, signal, column, timeFormat, startAt, tz string
		policies, models, pngDir, from, to, name                                   string
		step                                                                       int64
		capacity, peakReplicas                                                     float64
		asJSON                                                                     bool
	)
	cfg := backtest.DefaultConfig(1)
	hpa := backtest.DefaultHPAConfig()
	band := autoscale.DefaultPolicy().ScaleDownBand
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Replay a trace or the history through scaling policies (ebbflow, last-value, HPA, static) on a simulated service",
		Long: `backtest replays one service's load — a CSV trace (--trace) or the Parquet history
(--history with --entity) — through scaling policies side by side against a simulated
service, in event time, without Kafka or Kubernetes. Every policy gets the same
demand, capacity per replica, start-up delay and replica bounds.

Policies: ebbflow (the autoscale decider fed by the forecast model in --models),
last-value (the same decider fed last-value forecasts), hpa (the Kubernetes HPA v2
algorithm: 15 s sync, tolerance 0.1, default scale-up policy, 300 s scale-down
stabilization) and static (the span's peak, known in advance).

Per policy: replica-minutes, under-provisioned minutes (demand above ready capacity
at the target utilisation), minutes over the latency SLO, scale events, reversals
within 10 minutes, and the ratios to HPA. The forecast model must not have seen the
scored span in training: pass --from after its training data.

  ebbflow backtest --trace ../shared/traces/nasa_requests_per_minute.csv \
      --models testdata/models --policies ebbflow,last-value,hpa,static --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mode != backtestModeScale {
				return fmt.Errorf("--mode %q: known modes: %s", mode, backtestModeScale)
			}
			names, err := backtest.ParsePolicies(policies)
			if err != nil {
				return fmt.Errorf("--%w", err)
			}
			s, err := backtestSeries(cmd, g, tracePath, histRoot, entity, signal, column, timeFormat, startAt, tz, name, step)
			if err != nil {
				return err
			}
			if from != "" {
				t, err := time.Parse(time.RFC3339, from)
				if err != nil {
					return fmt.Errorf("--from: %w", err)
				}
				cfg.FromMs = t.UnixMilli()
			}
			if to != "" {
				t, err := time.Parse(time.RFC3339, to)
				if err != nil {
					return fmt.Errorf("--to: %w", err)
				}
				cfg.ToMs = t.UnixMilli()
			}
			cfg.Capacity = capacity
			if capacity == 0 {
				// Size the service so the span's 99th percentile needs peakReplicas at the target.
				fi, ti := s.Index(max(cfg.FromMs, s.StartMs)), len(s.Values)
				if cfg.ToMs != 0 {
					ti = s.Index(cfg.ToMs-1) + 1
				}
				q := s.Quantile(fi, ti, 0.99)
				if !(q > 0) {
					return fmt.Errorf("--capacity: the span's 99th percentile is %g; give a capacity", q)
				}
				cfg.Capacity = q / (cfg.Target * peakReplicas)
			}
			dpol := backtest.DeciderPolicy(cfg, s.Signal)
			dpol.ScaleDownBand = band
			su := backtest.Setup{Series: s, Config: cfg, HPA: hpa, Decider: &dpol}
			for _, n := range names {
				if n != backtest.PolicyEbbflow {
					continue
				}
				if models == "" {
					return errors.New("--models: the ebbflow policy needs a model directory")
				}
				m, seen, err := backtest.LoadModel(cmd.Context(), models, s.Signal, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))
				if err != nil {
					return fmt.Errorf("--models: %w", err)
				}
				su.Model, su.ModelSeen = m, seen
			}
			ps, notes, err := backtest.Build(names, su)
			if err != nil {
				return err
			}
			var progress backtest.Progress
			if replay.IsTerminal(os.Stdout) && replay.IsTerminal(os.Stderr) {
				progress = backtest.ProgressBar(cmd.ErrOrStderr(), s.Name)
			}
			res, err := backtest.Run(s, cfg, ps, progress)
			if err != nil {
				return err
			}
			res.Notes = append(res.Notes, notes...)
			if pngDir != "" {
				if err := os.MkdirAll(pngDir, 0o755); err != nil {
					return fmt.Errorf("--png: %w", err)
				}
				p, err := backtest.WritePNG(res, pngDir)
				if err != nil {
					return err
				}
				res.Notes = append(res.Notes, "plot: "+p)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(backtest.NewReport(res))
			}
			return backtest.WriteTable(out, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", backtestModeScale, "what to backtest: scale (inference autoscaling)")
	f.StringVar(&tracePath, "trace", "", "CSV trace: a time column and a value column")
	f.StringVar(&column, "column", "", "value column of the trace (name or index; default: the second column)")
	f.StringVar(&timeFormat, "time-format", "auto", "trace timestamps: auto, datetime, rfc3339, unix, unix_ms or offset")
	f.StringVar(&startAt, "start", "", "RFC 3339 time of offset 0 (traces timed in seconds from their start, e.g. the Azure trace)")
	f.StringVar(&tz, "tz", "", "zone of datetime timestamps (default UTC)")
	f.StringVar(&histRoot, "history", "", "read the Parquet history under this root instead of a trace (with --entity)")
	f.StringVar(&entity, "entity", "", "entity to read from the history")
	f.StringVar(&signal, "signal", "qps", "signal of the series (the model forecasts it)")
	f.Int64Var(&step, "step", 0, "window size in seconds (default: inferred from the trace; 60 for the history)")
	f.StringVar(&name, "name", "", "service name in the results (default: the trace file name or the entity)")
	f.StringVar(&policies, "policies", "ebbflow,last-value,hpa,static", "policies, comma separated: "+strings.Join(backtest.PolicyNames, ", "))
	f.StringVar(&models, "models", "", "forecast model directory (<signal>.model.json[.gz]) for the ebbflow policy")
	f.StringVar(&from, "from", "", "start of the scored span (RFC 3339); earlier values are history only")
	f.StringVar(&to, "to", "", "end of the scored span (RFC 3339)")
	f.Float64Var(&capacity, "capacity", 0, "load one replica serves at utilisation 1, in the series' unit (default: the span's p99 needs --peak-replicas at the target)")
	f.Float64Var(&peakReplicas, "peak-replicas", 20, "with no --capacity: replicas the span's 99th percentile needs at the target")
	f.Float64Var(&cfg.Target, "target", cfg.Target, "target utilisation in (0, 1]; demand above ready × capacity × target is under-provisioned")
	f.DurationVar(&cfg.StartupDelay, "startup-delay", cfg.StartupDelay, "time a new replica takes to become ready (every policy)")
	f.DurationVar(&cfg.Tick, "tick", cfg.Tick, "simulation step (and the HPA sync period)")
	f.Int32Var(&cfg.MinReplicas, "min-replicas", cfg.MinReplicas, "minimum replicas (every policy)")
	f.Int32Var(&cfg.MaxReplicas, "max-replicas", cfg.MaxReplicas, "maximum replicas (every policy)")
	f.Float64Var(&cfg.BaseLatencyMs, "base-latency-ms", cfg.BaseLatencyMs, "service time without queueing (latency model base/(1−ρ))")
	f.Float64Var(&cfg.LatencySLOMs, "latency-slo-ms", cfg.LatencySLOMs, "latency SLO the minutes over are counted against")
	f.DurationVar(&hpa.ScaleDownStabilization, "hpa-stabilization", hpa.ScaleDownStabilization, "HPA scale-down stabilization window")
	f.Float64Var(&hpa.Tolerance, "hpa-tolerance", hpa.Tolerance, "HPA tolerance")
	f.Float64Var(&band, "scale-down-band", band, "the autoscale decider's scale_down_band (hysteresis) for ebbflow and last-value; 0 is WPAI's floor contraction")
	f.StringVar(&pngDir, "png", "", "write <service>.png (demand and each policy's ready capacity) to this directory")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

// backtestSeries reads the series from a trace or the history.
func backtestSeries(cmd *cobra.Command, g *globals, tracePath, root, entity, signal, column, timeFormat, startAt, tz, name string, step int64) (*backtest.Series, error) {
	switch {
	case tracePath != "" && root != "":
		return nil, errors.New("--trace and --history: give one")
	case tracePath != "":
		o := trace.Options{Signal: signal, ValueCol: column, TimeFormat: timeFormat, StepS: step}
		if startAt != "" {
			t, err := time.Parse(time.RFC3339, startAt)
			if err != nil {
				return nil, fmt.Errorf("--start: %w", err)
			}
			o.Start = t
		}
		if tz != "" {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return nil, fmt.Errorf("--tz: %w", err)
			}
			o.Location = loc
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(tracePath), filepath.Ext(tracePath))
		}
		return backtest.ReadTraceFile(tracePath, name, o)
	case root != "":
		if entity == "" {
			return nil, errors.New("--entity: required with --history")
		}
		cfg, err := g.load()
		if err != nil {
			return nil, err
		}
		fsys, err := history.Open(cmd.Context(), cfg.History)
		if err != nil {
			return nil, err
		}
		defer history.Close(fsys)
		if step == 0 {
			step = 60
		}
		ws, err := history.ReadWindows(cmd.Context(), fsys, root, history.Query{SizeS: step, Entities: []string{entity}, Signals: []string{signal}})
		if err != nil {
			return nil, fmt.Errorf("--history %s: %w", root, err)
		}
		if len(ws) == 0 {
			return nil, fmt.Errorf("--history %s: no %d s windows of %s %s", root, step, entity, signal)
		}
		if name == "" {
			name = entity
		}
		return backtest.FromWindows(name, ws)
	}
	return nil, errors.New("--trace or --history: one is required")
}
