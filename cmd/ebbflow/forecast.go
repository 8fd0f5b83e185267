package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim/synth"
)

func init() { subcommands = append(subcommands, newForecastCmd) }

func newForecastCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "forecast", Short: "Forecast each service's load 1–5 steps ahead: serve, train, evaluate"}
	cmd.AddCommand(newForecastServeCmd(g), newForecastTrainCmd(g), newForecastEvaluateCmd(g), newForecastSynthCmd(g), newForecastCompareCmd(g))
	return cmd
}

func newForecastServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Consume metrics.windows, publish forecasts (promoted models hot-reload from forecast.model_dir; forecast.retrain.interval retrains them on the history)",
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
	var horizons, signals, candidates string
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train forecast models on the history with real XGBoost, judge them on a held-out test span, publish the ones that beat last value",
		Long: `Reads the Parquet history, builds the feature matrix with the forecaster's own
feature builder, and fits XGBoost with forecast/python/train.py (python from --python,
$EBBFLOW_PYTHON or .venv/bin/python). Time is split three ways: train, validation
(early stopping, candidate choice) and test, the newest --test-frac of the span, which
is only reported. On the test span each model is compared with last value, seasonal
naive and a plain lag-only XGBoost trained on the same rows.

The promotion gate: a model whose test MAE is not at most (1 − --gate-min-gain) × last
value's at every horizon between --gate-from and --gate-to is rejected: written aside
to <store>/rejected/<version>/ with its report, never served. A promoted model replaces
<store>/<signal>.model.json (the forecaster hot-reloads it) and is archived under
<store>/versions/<version>/. The store is --out, or forecast.model_dir on
forecast.model_backend (HDFS or local).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseHorizons(horizons)
			if err != nil {
				return err
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if o.Out == "" {
				o.Out = cfg.Forecast.ModelDir
				if cfg.Forecast.ModelBackend == forecast.ModelsHistory {
					fsys, err := history.Open(cmd.Context(), cfg.History)
					if err != nil {
						return err
					}
					defer history.Close(fsys)
					o.Store = fsys
				}
			}
			h, from, to, err := hf.read(cmd, g)
			if err != nil {
				return err
			}
			o.Horizons, o.FromStep, o.ToStep, o.Progress = n, from, to, cmd.ErrOrStderr()
			o.Signals = strings.Split(signals, ",")
			if candidates != "" {
				o.Candidates = strings.Split(candidates, ",")
			}
			if o.Version == "" {
				o.Version = time.Now().UTC().Format("20060102T150405Z")
			}
			metas, err := train.Train(cmd.Context(), h, o)
			if err != nil {
				return err
			}
			rejected := 0
			for _, m := range metas {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s: %s (%s, %d rounds), test span %s to %s\n", m.Signal, m.Gate.Verdict, m.ModelPath, m.Candidate, m.Rounds,
					time.UnixMilli(m.TestFromMs).UTC().Format(time.DateTime), time.UnixMilli(m.TestToMs).UTC().Format(time.DateTime))
				printMetrics(cmd, m.Test)
				fmt.Fprintf(cmd.OutOrStdout(), "  gate: %s (%s): %s\n", m.Gate.Verdict, m.Gate.Reason, m.Gate.Detail)
				if !m.Gate.Promoted() {
					rejected++
				}
			}
			if rejected > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d model(s) rejected by the promotion gate: the served models (or baselines) stay\n", rejected)
			}
			return nil
		},
	}
	hf.add(cmd, 30)
	cmd.Flags().StringVar(&horizons, "horizons", "1-5", "horizons in steps, 1-N")
	cmd.Flags().StringVar(&signals, "signals", "qps,cpu,gpu_util", "signals to train, comma separated")
	cmd.Flags().StringVar(&o.Out, "out", "", "model store directory, local (default: forecast.model_dir on forecast.model_backend)")
	cmd.Flags().StringVar(&o.Python, "python", "", "python with xgboost (default $EBBFLOW_PYTHON or .venv/bin/python)")
	cmd.Flags().StringVar(&o.Script, "script", "", "train.py (default forecast/python/train.py above the working directory)")
	cmd.Flags().Float64Var(&o.ValFrac, "val-frac", 0.15, "share of the span, before the test span, used for validation (early stopping, candidate choice)")
	cmd.Flags().Float64Var(&o.TestFrac, "test-frac", 0.15, "newest share of the span held out as the test span (reported and gated on only)")
	cmd.Flags().StringVar(&o.Features, "features", train.DefaultFeatures, "feature set: v1, lags, lags+stats or all (see docs/forecast.md)")
	cmd.Flags().StringVar(&candidates, "candidates", "", "train.py candidate configurations validation chooses from (default: abs-w; see forecast/python/train.py)")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 300, "maximum boosting rounds (early stopping on validation picks the best)")
	cmd.Flags().IntVar(&o.MaxDepth, "max-depth", 5, "tree depth")
	cmd.Flags().IntVar(&o.Threads, "threads", 1, "XGBoost threads")
	cmd.Flags().DurationVar(&o.Gate.From, "gate-from", model.DefaultGate().From, "shortest lead time the promotion gate checks")
	cmd.Flags().DurationVar(&o.Gate.To, "gate-to", model.DefaultGate().To, "longest lead time the promotion gate checks")
	cmd.Flags().Float64Var(&o.Gate.MinGain, "gate-min-gain", model.DefaultGate().MinGain, "margin by which the model must beat last value at every gate horizon")
	cmd.Flags().IntVar(&o.Gate.MinRows, "gate-min-rows", model.DefaultGate().MinRows, "fewest test rows per gate horizon")
	cmd.Flags().StringVar(&o.Version, "version", "", "model version (default: the training time)")
	return cmd
}

func printMetrics(cmd *cobra.Command, hs []train.HorizonMetric) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "  %-3s %8s %12s %12s %12s %12s %8s %8s %8s %8s\n", "h", "n", "MAE", "MAE last", "MAE seas.", "MAE plain", "×last", "×seas.", "×plain", "sMAPE%")
	for _, h := range hs {
		plain, rp := "—", "—"
		if h.MAEPlain != 0 {
			plain, rp = fmt.Sprintf("%.5g", h.MAEPlain), fmt.Sprintf("%.3f", h.RatioPlain)
		}
		fmt.Fprintf(w, "  %-3d %8d %12.5g %12.5g %12.5g %12s %8.3f %8.3f %8s %8.2f\n", h.Horizon, h.N, h.MAE, h.MAELast, h.MAESeasonal, plain, h.RatioLast, h.RatioSeasonal, rp, h.SMAPE)
	}
}

func newForecastEvaluateCmd(g *globals) *cobra.Command {
	var hf historyFlags
	var models, out, span string
	var plotSteps int
	cmd := &cobra.Command{
		Use:   "evaluate",
		Short: "Backtest models on history, on their held-out test span: MAE, sMAPE and ratios to baselines (JSON + PNG plots)",
		Long: `Forecasts every origin of the span from the history up to it, exactly as the
forecaster would, and compares with last value and seasonal naive. --span test (the
default) evaluates each model on the test span its trainer held out (never used to fit
or choose) and also prints the trainer's figures there, with the plain lag XGBoost;
--span days evaluates on the newest --days of the history (or up to --until), which
may overlap the model's training data. Models are read from --models whether or not
the promotion gate promoted them (the verdict is printed); forecast serve loads only
promoted ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if models == "" {
				return errors.New("--models: a model directory is required")
			}
			if span != "test" && span != "days" {
				return fmt.Errorf("--span %q: want test or days", span)
			}
			h, from, to, err := hf.read(cmd, g)
			if err != nil {
				return err
			}
			ms, err := loadModelDir(models)
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
			}
			var evs []*train.Evaluation
			for _, m := range ms {
				sig := m.Signal()
				if !anyEntityHas(h, sig) {
					continue
				}
				f, t := from, to
				if span == "test" {
					if m.TestFromMs == 0 {
						return fmt.Errorf("model %s has no test span (trained before the three-way split): use --span days", m.Name)
					}
					f, t = features.Step(m.TestFromMs, h.StepS), features.Step(m.TestToMs, h.StepS)
				}
				ev, err := train.Evaluate(h, m, f, t, plotSteps)
				if err != nil {
					return err
				}
				verdict := m.Gate.Verdict
				if m.GateErr != nil {
					verdict = string(m.GateReason)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: model %s %s (%s; gate: %s), origins %s to %s\n", sig, m.ID, m.Version, m.Name, verdict,
					time.UnixMilli(ev.FromMs).UTC().Format(time.DateTime), time.UnixMilli(ev.ToMs).UTC().Format(time.DateTime))
				printMetrics(cmd, ev.Horizons)
				if span == "test" && len(m.Test) > 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "  the trainer's figures on the same test span (with the plain lag XGBoost):")
					printMetrics(cmd, m.Test)
				}
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
	hf.add(cmd, 0)
	cmd.Flags().StringVar(&models, "models", "", "model directory (*.model.json, *.model.json.gz)")
	cmd.Flags().StringVar(&span, "span", "test", "test: each model's held-out test span; days: the newest --days (or up to --until)")
	cmd.Flags().StringVar(&out, "out", "", "directory for evaluation.json and <signal>_h<k>.png")
	cmd.Flags().IntVar(&plotSteps, "plot-steps", 1440, "steps of the newest origins plotted")
	return cmd
}

// loadModelDir loads every model file of a local directory, promoted or
// not.
func loadModelDir(dir string) ([]*model.Model, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--models: %w", err)
	}
	var ms []*model.Model
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, model.Suffix) || strings.HasSuffix(n, model.SuffixGz)) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		m, err := model.LoadBytes(b, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("--models %s: no *.model.json files", dir)
	}
	return ms, nil
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

func newForecastCompareCmd(_ *globals) *cobra.Command {
	var o train.CompareOptions
	var traces, variants string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Compare learner variants (objectives, feature sets, per-horizon vs multi-output) on the test spans of the shared traces",
		Long: `Builds one feature matrix per trace and feature set with the forecaster's own
feature builder, then fits every variant with real XGBoost (forecast/python/compare.py):
train, validation (early stopping) and test spans, rolling-origin folds where a trace
is long enough. Prints the MAE ratio to last value per horizon on the test spans,
beside seasonal naive and a plain lag-only XGBoost trained on the same rows.
Results are cached under --work: a rerun only fits what is missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if traces != "" {
				o.Traces = strings.Split(traces, ",")
			}
			if variants != "" {
				o.Variants = strings.Split(variants, ",")
			}
			if o.TracesDir == "" {
				d, err := trace.Dir()
				if err != nil {
					return fmt.Errorf("--traces: %w", err)
				}
				o.TracesDir = d
			}
			o.Progress = cmd.ErrOrStderr()
			c, err := train.Compare(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.MarshalIndent(c, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			names := o.Variants
			if len(names) == 0 {
				names = train.CompareVariants
			}
			c.Markdown(cmd.OutOrStdout(), names)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.TracesDir, "traces", "", "directory of the shared traces (SOURCES.md; default $"+trace.EnvDir+", else the first shared/traces above the working directory)")
	cmd.Flags().StringVar(&o.Work, "work", ".cache/forecast-compare", "directory for matrices and cached results")
	cmd.Flags().StringVar(&traces, "trace", "", "comma-separated trace names (default: all)")
	cmd.Flags().StringVar(&variants, "variants", "", "comma-separated variants (default: all)")
	cmd.Flags().StringVar(&o.Python, "python", "", "python with xgboost (default $EBBFLOW_PYTHON or .venv/bin/python)")
	cmd.Flags().StringVar(&o.Script, "script", "", "forecast/python/train.py (compare.py is beside it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures as JSON")
	return cmd
}
