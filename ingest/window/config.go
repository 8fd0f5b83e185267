package window

import (
	"errors"
	"fmt"
	"time"
)

// Rebalance strategies.
const (
	RebalanceCooperativeSticky = "cooperative-sticky"
	RebalanceSticky            = "sticky"
	RebalanceRange             = "range"
)

// Config is the `window` section of the configuration file.
type Config struct {
	// Enabled runs the window processor in `ebbflow dev`.
	Enabled bool `yaml:"enabled"`
	// Group is the Kafka consumer group id; also the prefix of the
	// transactional ids (<group>-<topic>-<partition>).
	Group string `yaml:"group"`
	// Sizes are the tumbling window sizes (whole seconds), e.g. [15s, 60s].
	Sizes []time.Duration `yaml:"sizes"`
	// Delay is how far the watermark trails the largest event time seen in
	// a partition: the out-of-orderness absorbed before a window is emitted.
	Delay time.Duration `yaml:"delay"`
	// AllowedLateness is how long after its first emission a window still
	// accepts samples, each update emitted as a new revision; later samples
	// go to the dead-letter topic with reason "late".
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// IdleTimeout is the wall-clock time without records after which a
	// partition's watermark advances with the wall clock (0 disables).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Staleness is the largest gap between two samples of one counter series
	// across which the increase is counted (Prometheus' lookback, 5m).
	Staleness time.Duration `yaml:"staleness"`
	// CommitInterval bounds the time between transactions.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// MaxBatchRecords cuts a transaction after this many input records.
	MaxBatchRecords int `yaml:"max_batch_records"`
	// SketchAccuracy is the relative accuracy of the p50/p95/p99 sketch.
	SketchAccuracy float64 `yaml:"sketch_accuracy"`
	// Rebalance is cooperative-sticky, sticky or range.
	Rebalance string `yaml:"rebalance"`
	// StartFrom is where a partition without a committed offset starts:
	// oldest or newest.
	StartFrom string `yaml:"start_from"`
	// History writes every emitted window to the Parquet history.
	History bool `yaml:"history"`
	// MaxFuture rejects samples whose timestamp is more than this after
	// their record was produced (dead letter, reason invalid): one
	// far-future sample would move the watermark so far that every later
	// good sample is late. 0 turns the check off (`ebbflow dev` does: its
	// simulated clock runs ahead of the wall clock).
	MaxFuture time.Duration `yaml:"max_future"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{
		Enabled:         true,
		Group:           "ebbflow-window",
		Sizes:           []time.Duration{60 * time.Second},
		Delay:           5 * time.Second,
		AllowedLateness: 60 * time.Second,
		IdleTimeout:     30 * time.Second,
		Staleness:       5 * time.Minute,
		CommitInterval:  time.Second,
		MaxBatchRecords: 5000,
		SketchAccuracy:  0.01,
		Rebalance:       RebalanceCooperativeSticky,
		StartFrom:       "oldest",
		History:         true,
		MaxFuture:       time.Hour,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Group == "" {
		return errors.New("group: must not be empty")
	}
	if len(c.Sizes) == 0 {
		return errors.New("sizes: at least one window size is required")
	}
	seen := map[time.Duration]bool{}
	for _, s := range c.Sizes {
		if s < time.Second || s%time.Second != 0 {
			return fmt.Errorf("sizes: %s is not a whole number of seconds ≥ 1s", s)
		}
		if seen[s] {
			return fmt.Errorf("sizes: %s is listed twice", s)
		}
		seen[s] = true
	}
	if c.Delay < 0 {
		return fmt.Errorf("delay: %s is negative", c.Delay)
	}
	if c.MaxFuture < 0 {
		return fmt.Errorf("max_future: %s is negative (0 turns the check off)", c.MaxFuture)
	}
	if c.AllowedLateness < 0 {
		return fmt.Errorf("allowed_lateness: %s is negative", c.AllowedLateness)
	}
	if c.IdleTimeout < 0 {
		return fmt.Errorf("idle_timeout: %s is negative", c.IdleTimeout)
	}
	if c.Staleness <= 0 {
		return fmt.Errorf("staleness: %s must be positive", c.Staleness)
	}
	if c.CommitInterval <= 0 {
		return fmt.Errorf("commit_interval: %s must be positive", c.CommitInterval)
	}
	if c.MaxBatchRecords < 1 {
		return fmt.Errorf("max_batch_records: %d must be at least 1", c.MaxBatchRecords)
	}
	if c.SketchAccuracy <= 0 || c.SketchAccuracy >= 1 {
		return fmt.Errorf("sketch_accuracy: %g must be in (0, 1)", c.SketchAccuracy)
	}
	switch c.Rebalance {
	case RebalanceCooperativeSticky, RebalanceSticky, RebalanceRange:
	default:
		return fmt.Errorf("rebalance: %q is not cooperative-sticky, sticky or range", c.Rebalance)
	}
	if c.StartFrom != "oldest" && c.StartFrom != "newest" {
		return fmt.Errorf("start_from: %q is not oldest or newest", c.StartFrom)
	}
	return nil
}

// Settings converts the configuration to the aggregation settings.
func (c Config) Settings() Settings {
	s := Settings{
		DelayMs:        c.Delay.Milliseconds(),
		LatenessMs:     c.AllowedLateness.Milliseconds(),
		StalenessMs:    c.Staleness.Milliseconds(),
		IdleMs:         c.IdleTimeout.Milliseconds(),
		SketchAccuracy: c.SketchAccuracy,
	}
	for _, d := range c.Sizes {
		s.SizesMs = append(s.SizesMs, d.Milliseconds())
	}
	return s
}
