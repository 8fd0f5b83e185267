// Package forecast predicts each entity's signals 1–5 minutes ahead: the feature
// builder, the XGBoost scorer (sub-package xgb), the model registry with hot
// reload, the forecaster service that turns metrics.windows into forecasts,
// and the trainer and evaluator that fit and judge models on the history.
package forecast

// Config is the `forecast` section of the configuration file.
type Config struct {
	// Enabled is reserved; fields are added as the component grows.
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config { return Config{Enabled: true} }

// Validate names the first bad field.
func (c Config) Validate() error { return nil }
