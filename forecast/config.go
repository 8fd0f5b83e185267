// Package forecast predicts each entity's signals 1–5 steps ahead. The
// forecaster service ([Run]) consumes closed windows from metrics.windows
// (a sarama consumer group, read_committed), keeps each entity's recent
// history in memory (rebuilt after a rebalance by reading back the assigned
// partitions), scores the XGBoost models of forecast/model with the feature
// builder of forecast/features, and publishes schemas.Forecast events to
// forecasts. Without a model, or with too little history, it publishes a
// transparent baseline (last value or seasonal naive) and says so.
//
// Sub-packages: features (one feature builder for training and serving),
// xgb (the scorer), model (model files, spec checks, hot reload), train
// (training matrix, real XGBoost fit, backtest), trace (CSV traces as
// history), synth (synthetic traffic for the bundled models).
package forecast

import (
	"errors"
	"fmt"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Model directory backends.
const (
	ModelsLocal   = "local"   // a local directory
	ModelsHistory = "history" // the history store's filesystem (HDFS in production)
)

// Config is the `forecast` section of the configuration file.
type Config struct {
	// Enabled runs the forecaster inside `ebbflow dev`.
	Enabled bool `yaml:"enabled"`
	// Group is the Kafka consumer group.
	Group string `yaml:"group"`
	// StepS is the window size forecast (windows of other sizes are skipped).
	StepS int64 `yaml:"step_s"`
	// Horizons is how many steps ahead each forecast covers.
	Horizons int `yaml:"horizons"`
	// Signals are forecast (by model or baseline); other signals are kept
	// as model inputs only.
	Signals []string `yaml:"signals"`
	// ModelDir holds <signal>.model.json files; ModelBackend says whether it
	// is a local directory or a path on the history filesystem (HDFS).
	ModelDir     string `yaml:"model_dir"`
	ModelBackend string `yaml:"model_backend"`
	// ReloadInterval is how often ModelDir is checked for new models.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// HistorySteps is the per-series memory in steps (4 bytes each); a week
	// plus a little is what the seasonal features read. A series' ring
	// grows to it as history arrives, so a short history costs little.
	HistorySteps int `yaml:"history_steps"`
	// MinHistorySteps is the history a model needs before it is trusted;
	// below it the forecaster falls back to a baseline.
	MinHistorySteps int `yaml:"min_history_steps"`
	// Rebuild is how far back (in event time) the history is read back
	// from metrics.windows when partitions are assigned.
	Rebuild time.Duration `yaml:"rebuild"`
	// Retrain schedules training on the deployment's own history (off by
	// default).
	Retrain RetrainConfig `yaml:"retrain"`
	// MaxFuture rejects windows ending more than this after the wall clock
	// (dead letter, reason out_of_range): one far-future window would make
	// every later window of its entity "not newest" and stop its forecasts.
	// 0 turns the check off (`ebbflow dev` does: its simulation runs ahead
	// of the wall clock).
	MaxFuture time.Duration `yaml:"max_future"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`, docs/forecast.md).
func DefaultConfig() Config {
	return Config{
		Enabled:         true,
		Group:           "ebbflow-forecast",
		StepS:           60,
		Horizons:        5,
		Signals:         []string{schemas.SignalQPS, schemas.SignalCPU, schemas.SignalGPUUtil, schemas.SignalMemory, schemas.SignalGPUMemory, schemas.SignalLatencyP99},
		ModelDir:        "testdata/models",
		ModelBackend:    ModelsLocal,
		ReloadInterval:  30 * time.Second,
		HistorySteps:    7*1440 + 16,
		MinHistorySteps: 5,
		Rebuild:         7*24*time.Hour + time.Hour,
		Retrain:         DefaultRetrainConfig(),
		MaxFuture:       time.Hour,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Group == "":
		return errors.New("group: must not be empty")
	case c.StepS <= 0:
		return fmt.Errorf("step_s: %d must be positive", c.StepS)
	case c.Horizons < 1 || c.Horizons > 60:
		return fmt.Errorf("horizons: %d must be 1..60", c.Horizons)
	case len(c.Signals) == 0:
		return errors.New("signals: at least one signal is required")
	case c.ModelBackend != ModelsLocal && c.ModelBackend != ModelsHistory:
		return fmt.Errorf("model_backend: %q is not local or history", c.ModelBackend)
	case c.ReloadInterval <= 0:
		return fmt.Errorf("reload_interval: %s must be positive", c.ReloadInterval)
	case c.HistorySteps < c.Horizons+1:
		return fmt.Errorf("history_steps: %d is too small", c.HistorySteps)
	case c.MinHistorySteps < 1:
		return fmt.Errorf("min_history_steps: %d must be at least 1", c.MinHistorySteps)
	case c.Rebuild < 0:
		return fmt.Errorf("rebuild: %s must not be negative", c.Rebuild)
	case c.MaxFuture < 0:
		return fmt.Errorf("max_future: %s must not be negative (0 turns the check off)", c.MaxFuture)
	}
	return c.Retrain.Validate()
}
