// Package dev runs the whole pipeline in one process on embedded parts
// (kfake, in-process nats-server, a local history directory) against a
// simulated cluster: what `ebbflow dev` and `make run` start.
package dev

// Config is the `dev` section of the configuration file.
type Config struct {
	// Enabled is reserved; fields are added as the component grows.
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config { return Config{Enabled: true} }

// Validate names the first bad field.
func (c Config) Validate() error { return nil }
