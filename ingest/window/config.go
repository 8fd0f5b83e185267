// Package window runs the event-time window processors: a Kafka consumer group
// on metrics.raw that aggregates each entity's signals into tumbling windows,
// produces them exactly once to metrics.windows in Kafka transactions, and
// writes them to the Parquet history.
package window

// Config is the `window` section of the configuration file.
type Config struct {
	// Enabled is reserved; fields are added as the component grows.
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config { return Config{Enabled: true} }

// Validate names the first bad field.
func (c Config) Validate() error { return nil }
