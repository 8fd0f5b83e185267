// Package actuators carries out decisions against the Kubernetes API: a
// consumer group on the decisions topic dispatching each kind (ce_type) to
// its Handler, idempotently (decision id and per-target sequence recorded
// on the object), within safety limits (TTL, per-cluster rate limit,
// replica cap), with dry-run and leader election (one active replica per
// cluster), reporting every outcome on the actions topic, as a Kubernetes
// Event on the target, and failures as NATS alerts.
package actuators

import (
	"errors"
	"fmt"
	"time"
)

// Config is the `actuate` section of the configuration file.
type Config struct {
	// ConsumerGroup reads the decisions topic (read_committed). Each
	// cluster's actuator needs its own group; "" = ebbflow-actuate-<cluster>.
	ConsumerGroup string `yaml:"consumer_group"`
	// InitialOffset is "newest" or "oldest": where a new group starts.
	InitialOffset string `yaml:"initial_offset"`
	// Source is the CloudEvents source of actions.
	Source string `yaml:"source"`
	// Identity names this replica in actions and the leader Lease; "" =
	// the host name.
	Identity string `yaml:"identity"`
	// DryRun reads and reports but changes nothing.
	DryRun bool `yaml:"dry_run"`
	// RateLimit is the most write operations per second per cluster, with
	// RateBurst.
	RateLimit float64 `yaml:"rate_limit"`
	RateBurst int     `yaml:"rate_burst"`
	// Retry bounds retries of conflicts, 429s and 5xx answers.
	Retry RetryConfig `yaml:"retry"`
	// MaxReplicas is a safety cap no scale decision may exceed.
	MaxReplicas int32 `yaml:"max_replicas"`
	// Events records a Kubernetes Event on the target for every decision.
	Events bool `yaml:"events"`
	// LeaderElection keeps one active actuator per cluster.
	LeaderElection LeaderElectionConfig `yaml:"leader_election"`
	// MaxFuture dead-letters a decision stamped (at_ms) more than this
	// after the clock: it cannot come from a real decider, and with its
	// far expiry it would never expire. 0 turns the check off (`ebbflow
	// dev` does: its simulation runs ahead of the wall clock).
	MaxFuture time.Duration `yaml:"max_future"`
}

// RetryConfig is exponential backoff between attempts.
type RetryConfig struct {
	Attempts       int           `yaml:"attempts"`
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
}

// LeaderElectionConfig is the coordination.k8s.io Lease the replicas
// compete for.
type LeaderElectionConfig struct {
	Enabled       bool          `yaml:"enabled"`
	Namespace     string        `yaml:"namespace"`
	LeaseName     string        `yaml:"lease_name"`
	LeaseDuration time.Duration `yaml:"lease_duration"`
	RenewDeadline time.Duration `yaml:"renew_deadline"`
	RetryPeriod   time.Duration `yaml:"retry_period"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{
		InitialOffset: "newest",
		Source:        "/ebbflow/actuate",
		RateLimit:     10,
		RateBurst:     20,
		Retry:         RetryConfig{Attempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second},
		MaxReplicas:   500,
		Events:        true,
		MaxFuture:     time.Hour,
		LeaderElection: LeaderElectionConfig{
			Enabled: true, Namespace: "ebbflow", LeaseName: "ebbflow-actuator",
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		},
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.InitialOffset != "newest" && c.InitialOffset != "oldest" {
		return fmt.Errorf("initial_offset: %q is not newest or oldest", c.InitialOffset)
	}
	if c.Source == "" {
		return errors.New("source: must not be empty")
	}
	if c.RateLimit <= 0 || c.RateBurst < 1 {
		return errors.New("rate_limit and rate_burst: must be positive")
	}
	if c.MaxFuture < 0 {
		return errors.New("max_future: must not be negative (0 turns the check off)")
	}
	if c.Retry.Attempts < 1 {
		return errors.New("retry.attempts: must be at least 1")
	}
	if c.Retry.InitialBackoff <= 0 || c.Retry.MaxBackoff < c.Retry.InitialBackoff {
		return errors.New("retry.initial_backoff and retry.max_backoff: need 0 < initial ≤ max")
	}
	if c.MaxReplicas < 1 {
		return errors.New("max_replicas: must be at least 1")
	}
	le := c.LeaderElection
	if le.Enabled {
		if le.Namespace == "" || le.LeaseName == "" {
			return errors.New("leader_election.namespace and lease_name: required when enabled")
		}
		if !(le.LeaseDuration > le.RenewDeadline && le.RenewDeadline > le.RetryPeriod && le.RetryPeriod > 0) {
			return errors.New("leader_election: need lease_duration > renew_deadline > retry_period > 0")
		}
	}
	return nil
}

// Group returns the consumer group for a cluster.
func (c Config) Group(cluster string) string {
	if c.ConsumerGroup != "" {
		return c.ConsumerGroup
	}
	return "ebbflow-actuate-" + cluster
}
