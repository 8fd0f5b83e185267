// Package actuators carries out decisions against the Kubernetes API:
// a consumer group on the decisions topic dispatching each kind to its
// handler, idempotently, within safety limits, with dry-run and leader
// election, reporting every outcome on the actions topic and as a
// Kubernetes Event.
package actuators

// Config is the `actuators` section of the configuration file.
type Config struct {
	// Enabled is reserved; fields are added as the component grows.
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config { return Config{Enabled: true} }

// Validate names the first bad field.
func (c Config) Validate() error { return nil }
