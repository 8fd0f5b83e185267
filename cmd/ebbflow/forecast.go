package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim/synth"
)

func init() { subcommands = append(subcommands, newForecastCmd) }

func newForecastCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "forecast", Short: "Forecast each service's load 1–5 steps ahead: serve, train, evaluate"}
	cmd.AddCommand(newForecastServeCmd(g), newForecastTrainCmd(g), newForecastEvaluateCmd(g), newForecastSynthCmd(g))
	return cmd
}

func newForecastServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Consume metrics.windows, publish forecasts (models hot-reload from forecast.model_dir)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.Forecast)
		},
	}
}

// historyFlags select the history a training or evaluation reads.
type historyFlags struct {
	root  string
	step  int64
	days  float64
	upto  string
	lastN bool
}

func (h *historyFlags) add(cmd *cobra.Command, days float64) {
	cmd.Flags().StringVar(&h.root, "history", "", "history root (default: history.root of the configuration, on history.backend)")
	cmd.Flags().Int64Var(&h.step, "step", 60, "window size in seconds (300 for 5-minute traces)")
	cmd.Flags().Float64Var(&h.days, "days", days, "days of history to use, ending at the newest window (or --until)")
	cmd.Flags().StringVar(&h.upto, "until", "", "use history before this time (RFC 3339); default: all")
}

func (h *historyFlags) read(cmd *cobra.Command, g *globals) (*features.History, int64, int64, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, 0, 0, err
	}
	root := h.root
	if root == "" {
		root = cfg.History.Root
	}
	fsys, err := history.Open(cmd.Context(), cfg.History)
	if err != nil {
		return nil, 0, 0, err
	}
	defer history.Close(fsys)
	q := history.Query{SizeS: h.step}
	if h.upto != "" {
		t, err := time.Parse(time.RFC3339, h.upto)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("--until: %w", err)
		}
		q.ToMs = t.UnixMilli()
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "reading %ds windows from %s (%s)\n", h.step, root, cfg.History.Backend)
	ws, err := history.ReadWindows(cmd.Context(), fsys, root, q)
	if err != nil {
		return nil, 0, 0, err
	}
	hist, err := features.FromWindows(ws, h.step)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w under %s", err, root)
	}
	from := hist.First
	if h.days > 0 {
		from = max(hist.First, hist.Last-int64(h.days*86400)/h.step+1)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d windows, %d entities, %s to %s\n", len(ws), len(hist.Entities),
		stepTime(hist.First, h.step), stepTime(hist.Last, h.step))
	return hist, from, hist.Last, nil
}

func stepTime(step, stepS int64) string {
	return time.UnixMilli(step * stepS * 1000).UTC().Format("2006-01-02 15:04")
}

func parseHorizons(s string) (int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		lo, hi = "1", s
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a != 1 || b < 1 || b > 60 {
		return 0, fmt.Errorf("--horizons %q: want 1-N (N ≤ 60)", s)
	}
	return b, nil
}

func newForecastTrainCmd(g *globals) *cobra.Command {
	var hf historyFlags
	var o train.Options
	var horizons, signals string
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train forecast models on the history with real XGBoost (one model per signal, every horizon)",
		Long: `Reads the Parquet history, builds the feature matrix with the forecaster's own
feature builder, writes it as Parquet next to the models, and fits XGBoost with
forecast/python/train.py (python from --python, $EBBFLOW_PYTHON or .venv/bin/python).
The newest --val-frac of the span validates; the models' metadata report MAE and
sMAPE per horizon against last-value and seasonal-naive baselines.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseHorizons(horizons)
			if err != nil {
				return err
			}
			if o.Out == "" {
				return errors.New("--out: a model directory is required")
			}
			h, from, to, err := hf.read(cmd, g)
			if err != nil {
				return err
			}
			o.Horizons, o.FromStep, o.ToStep, o.Progress = n, from, to, cmd.ErrOrStderr()
			o.Signals = strings.Split(signals, ",")
			if o.Version == "" {
				o.Version = time.Now().UTC().Format("20060102T150405Z")
			}
			metas, err := train.Train(cmd.Context(), h, o)
			if err != nil {
				return err
			}
			for _, m := range metas {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%d rounds)\n", m.Signal, m.ModelPath, m.Rounds)
				printMetrics(cmd, m.Validation)
				_ = os.Remove(filepath.Join(o.Out, m.Signal+".matrix.parquet"))
			}
			return nil
		},
	}
	hf.add(cmd, 30)
	cmd.Flags().StringVar(&horizons, "horizons", "1-5", "horizons in steps, 1-N")
	cmd.Flags().StringVar(&signals, "signals", "qps,cpu,gpu_util", "signals to train, comma separated")
	cmd.Flags().StringVar(&o.Out, "out", "", "output directory (<signal>.model.json, <signal>.meta.json)")
	cmd.Flags().StringVar(&o.Python, "python", "", "python with xgboost (default $EBBFLOW_PYTHON or .venv/bin/python)")
	cmd.Flags().StringVar(&o.Script, "script", "", "train.py (default forecast/python/train.py above the working directory)")
	cmd.Flags().Float64Var(&o.ValFrac, "val-frac", 0.2, "newest share of the span used for validation")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 400, "maximum boosting rounds (early stopping picks the best)")
	cmd.Flags().IntVar(&o.MaxDepth, "max-depth", 5, "tree depth")
	cmd.Flags().StringVar(&o.Version, "version", "", "model version (default: the training time)")
	return cmd
}

func printMetrics(cmd *cobra.Command, hs []train.HorizonMetric) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "  %-3s %8s %12s %12s %12s %8s %8s %8s\n", "h", "n", "MAE", "MAE last", "MAE seas.", "×last", "×seas.", "sMAPE%")
	for _, h := range hs {
		fmt.Fprintf(w, "  %-3d %8d %12.5g %12.5g %12.5g %8.3f %8.3f %8.2f\n", h.Horizon, h.N, h.MAE, h.MAELast, h.MAESeasonal, h.RatioLast, h.RatioSeasonal, h.SMAPE)
	}
}

func newForecastEvaluateCmd(g *globals) *cobra.Command {
	var hf historyFlags
	var models, out string
	var plotSteps int
	cmd := &cobra.Command{
		Use:   "evaluate",
		Short: "Rolling-origin backtest of models on history: MAE, sMAPE and ratios to baselines (JSON + PNG plots)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if models == "" {
				return errors.New("--models: a model directory is required")
			}
			h, from, to, err := hf.read(cmd, g)
			if err != nil {
				return err
			}
			reg := model.NewRegistry(history.LocalFS{}, models, nil, nil)
			if err := reg.Reload(cmd.Context()); err != nil {
				return err
			}
			set := reg.Current()
			if len(set.BySignal) == 0 {
				return fmt.Errorf("--models %s: no *.model.json files", models)
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
			}
			var evs []*train.Evaluation
			for sig, m := range set.BySignal {
				if !anyEntityHas(h, sig) {
					continue
				}
				ev, err := train.Evaluate(h, m, from, to, plotSteps)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: model %s %s, origins %s to %s\n", sig, m.ID, m.Version,
					time.UnixMilli(ev.FromMs).UTC().Format(time.DateTime), time.UnixMilli(ev.ToMs).UTC().Format(time.DateTime))
				printMetrics(cmd, ev.Horizons)
				if out != "" {
					paths, err := ev.WritePlots(out)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "  plots: %s\n", strings.Join(paths, " "))
				}
				evs = append(evs, ev)
			}
			if out != "" {
				b, _ := json.MarshalIndent(sanitize(evs), "", "  ")
				p := filepath.Join(out, "evaluation.json")
				if err := os.WriteFile(p, b, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "written %s\n", p)
			}
			return nil
		},
	}
	hf.add(cmd, 7)
	cmd.Flags().StringVar(&models, "models", "", "model directory")
	cmd.Flags().StringVar(&out, "out", "", "directory for evaluation.json and <signal>_h<k>.png")
	cmd.Flags().IntVar(&plotSteps, "plot-steps", 1440, "steps of the newest origins plotted")
	return cmd
}

// sanitize replaces NaN ratios (a zero baseline error) so the JSON encodes.
func sanitize(evs []*train.Evaluation) []*train.Evaluation {
	for _, e := range evs {
		for i := range e.Horizons {
			h := &e.Horizons[i]
			for _, p := range []*float64{&h.RatioLast, &h.RatioSeasonal} {
				if math.IsNaN(*p) || math.IsInf(*p, 0) {
					*p = 0
				}
			}
		}
	}
	return evs
}

func anyEntityHas(h *features.History, sig string) bool {
	for _, e := range h.Entities {
		if e[sig] != nil {
			return true
		}
	}
	return false
}

func newForecastSynthCmd(g *globals) *cobra.Command {
	var root string
	var services, days int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Write deterministic synthetic traffic (daily/weekly shape, noise, bursts) as history, to train the bundled models",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root == "" {
				return errors.New("--history: a directory is required")
			}
			start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC).UnixMilli()
			total := 0
			for i, s := range synth.Services(services, seed) {
				ws := synth.Generate(s, start, days*1440, 60, seed)
				if _, err := history.WriteWindows(cmd.Context(), history.LocalFS{}, root, ws, fmt.Sprintf("synth-%03d.parquet", i)); err != nil {
					return err
				}
				total += len(ws)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d windows of %d services over %d days written under %s\n", total, services, days, root)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "history", "", "history root to write (local directory)")
	cmd.Flags().IntVar(&services, "services", 8, "number of services")
	cmd.Flags().IntVar(&days, "days", 21, "days of traffic")
	cmd.Flags().Uint64Var(&seed, "seed", 42, "random seed")
	return cmd
}
