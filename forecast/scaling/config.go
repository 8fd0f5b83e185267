// Package scaling is the elastic-scaling decider: pure functions from a
// service's forecasts, current windows and policy to a replica count with
// its reason, and the service that consumes forecasts and publishes scale
// decisions to Kafka and NATS.
package scaling

// Config is the `scaling` section of the configuration file.
type Config struct {
	// Enabled is reserved; fields are added as the component grows.
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config { return Config{Enabled: true} }

// Validate names the first bad field.
func (c Config) Validate() error { return nil }
