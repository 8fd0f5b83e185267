package forecast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/internal/history"
)

// RetrainConfig is the `forecast.retrain` section: the forecaster retrains
// its models on the deployment's own history on a schedule.
type RetrainConfig struct {
	// Interval between retrains; 0 (the default) turns retraining off:
	// training needs Python with XGBoost beside the forecaster and a CPU
	// for minutes, which an operator opts into. `ebbflow forecast train`
	// does the same once, on command.
	Interval time.Duration `yaml:"interval"`
	// Days of history each retrain reads (ending now).
	Days float64 `yaml:"days"`
	// Signals to train; those with no history are skipped.
	Signals []string `yaml:"signals"`
	// Python with xgboost (empty: $EBBFLOW_PYTHON or .venv/bin/python).
	Python string `yaml:"python"`
	// Threads is XGBoost's nthread.
	Threads int `yaml:"threads"`
	// Gate is the promotion rule: lead times the deciders act on and the
	// margin over last value.
	GateFrom    time.Duration `yaml:"gate_from"`
	GateTo      time.Duration `yaml:"gate_to"`
	GateMinGain float64       `yaml:"gate_min_gain"`
}

// DefaultRetrainConfig is retraining off, 30 days, qps/cpu/gpu_util, the
// default gate.
func DefaultRetrainConfig() RetrainConfig {
	g := model.DefaultGate()
	return RetrainConfig{Days: 30, Signals: []string{"qps", "cpu", "gpu_util"}, Threads: 1, GateFrom: g.From, GateTo: g.To, GateMinGain: g.MinGain}
}

// Validate names the first bad field.
func (c RetrainConfig) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("retrain.interval: %s must not be negative", c.Interval)
	case c.Interval == 0:
		return nil
	case c.Interval < time.Minute:
		return fmt.Errorf("retrain.interval: %s is shorter than a minute", c.Interval)
	case c.Days <= 0:
		return fmt.Errorf("retrain.days: %g must be positive", c.Days)
	case len(c.Signals) == 0:
		return errors.New("retrain.signals: at least one signal is required")
	case c.Threads < 1:
		return fmt.Errorf("retrain.threads: %d must be at least 1", c.Threads)
	}
	if err := c.gate().Validate(); err != nil {
		return fmt.Errorf("retrain.%w", err)
	}
	return nil
}

func (c RetrainConfig) gate() model.Gate {
	g := model.DefaultGate()
	g.From, g.To, g.MinGain = c.GateFrom, c.GateTo, c.GateMinGain
	return g
}

// Retrainer trains models on the history on a schedule, publishes them to
// the model store behind the promotion gate, and reloads the registry so
// that promoted models serve at once (the registry's atomic swap).
type Retrainer struct {
	Cfg         Config
	HistoryFS   history.FS
	HistoryRoot string
	ModelFS     history.FS
	Models      *model.Registry
	Log         *slog.Logger
	// Now is the clock (nil: time.Now); ebbflow dev passes its simulated
	// clock.
	Now func() time.Time

	runs   *prometheus.CounterVec
	models *prometheus.CounterVec
	last   prometheus.Gauge
}

// NewRetrainer returns a retrainer whose metrics go to reg.
func NewRetrainer(cfg Config, hfs history.FS, root string, mfs history.FS, models *model.Registry, log *slog.Logger, reg prometheus.Registerer) *Retrainer {
	r := &Retrainer{Cfg: cfg, HistoryFS: hfs, HistoryRoot: root, ModelFS: mfs, Models: models, Log: log}
	r.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_retrains_total", Help: "Scheduled retrains, by outcome (ok, error, no_history)."}, []string{"outcome"})
	r.models = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_trained_models_total", Help: "Models trained by scheduled retrains, by signal and promotion verdict."}, []string{"signal", "verdict"})
	r.last = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_forecast_last_retrain_timestamp_seconds", Help: "When the last scheduled retrain finished (Unix seconds)."})
	if reg != nil {
		reg.MustRegister(r.runs, r.models, r.last)
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	return r
}

// Run retrains every Cfg.Retrain.Interval until ctx ends.
func (r *Retrainer) Run(ctx context.Context) {
	t := time.NewTicker(r.Cfg.Retrain.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Once(ctx); err != nil && ctx.Err() == nil {
				r.Log.Error("forecast: retrain failed; the served models stay", "err", err)
			}
		}
	}
}

// Once retrains every configured signal that has history, publishes the
// models behind the gate, and reloads the registry.
func (r *Retrainer) Once(ctx context.Context) ([]train.Meta, error) {
	rc := r.Cfg.Retrain
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	end := now()
	from := end.Add(-time.Duration(rc.Days * float64(24*time.Hour)))
	ws, err := history.ReadWindows(ctx, r.HistoryFS, r.HistoryRoot, history.Query{SizeS: r.Cfg.StepS, FromMs: from.UnixMilli(), ToMs: end.UnixMilli()})
	if err != nil {
		r.runs.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("forecast: retrain: read history: %w", err)
	}
	h, err := features.FromWindows(ws, r.Cfg.StepS)
	if err != nil {
		r.runs.WithLabelValues("no_history").Inc()
		return nil, fmt.Errorf("forecast: retrain: %w", err)
	}
	var sigs []string
	for _, s := range rc.Signals {
		for _, e := range h.Entities {
			if e[s] != nil {
				sigs = append(sigs, s)
				break
			}
		}
	}
	if len(sigs) == 0 {
		r.runs.WithLabelValues("no_history").Inc()
		return nil, fmt.Errorf("forecast: retrain: no history of %v", rc.Signals)
	}
	version := end.UTC().Format("20060102T150405Z")
	r.Log.Info("forecast: retraining", "signals", sigs, "entities", len(h.Entities), "windows", len(ws), "from", from.UTC(), "to", end.UTC(), "version", version)
	metas, err := train.Train(ctx, h, train.Options{
		Python: rc.Python, Out: r.Cfg.ModelDir, Store: r.ModelFS, Signals: sigs, Horizons: r.Cfg.Horizons,
		FromStep: h.First, ToStep: h.Last, Threads: rc.Threads, Gate: rc.gate(), Version: version, ModelPrefix: "ebbflow",
	})
	for _, m := range metas {
		r.models.WithLabelValues(m.Signal, m.Gate.Verdict).Inc()
		ratios := make([]float64, len(m.Gate.RatiosLast))
		for i, v := range m.Gate.RatiosLast {
			ratios[i] = float64(v)
		}
		r.Log.Info("forecast: retrained model", "signal", m.Signal, "version", m.Version, "verdict", m.Gate.Verdict, "reason", m.Gate.Reason,
			"gate_horizons", m.Gate.Horizons, "test_ratio_to_last_value", ratios, "path", m.ModelPath)
	}
	if err != nil {
		r.runs.WithLabelValues("error").Inc()
		return metas, fmt.Errorf("forecast: retrain: %w", err)
	}
	r.runs.WithLabelValues("ok").Inc()
	r.last.Set(float64(time.Now().Unix()))
	if r.Models != nil && slices.ContainsFunc(metas, func(m train.Meta) bool { return m.Gate.Promoted() }) {
		if err := r.Models.Reload(ctx); err != nil {
			r.Log.Warn("forecast: reload after retrain", "err", err)
		}
	}
	return metas, nil
}

// startRetrainer starts the scheduled retrainer when cfg.Retrain.Interval
// is set.
func startRetrainer(ctx context.Context, cfg Config, deps Deps, reg *model.Registry, log *slog.Logger) error {
	if cfg.Retrain.Interval == 0 {
		return nil
	}
	if deps.HistoryFS == nil || deps.HistoryRoot == "" {
		return errors.New("forecast: retrain.interval is set but no history store was given to read from")
	}
	mfs := deps.ModelFS
	if mfs == nil {
		mfs = history.LocalFS{}
	}
	r := NewRetrainer(cfg, deps.HistoryFS, deps.HistoryRoot, mfs, reg, log, deps.Registerer)
	log.Info("forecast: scheduled retraining on", "interval", cfg.Retrain.Interval, "days", cfg.Retrain.Days, "signals", cfg.Retrain.Signals, "store", cfg.ModelDir)
	go r.Run(ctx)
	return nil
}
