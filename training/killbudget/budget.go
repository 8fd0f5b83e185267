// Package killbudget bounds how many running jobs a decider may kill (pre-empt,
// evict, drain) within a sliding window of time. The training scheduler
// spends it on pre-emptions and node mixing on evictions when it flips a node;
// both read the same small type so "how many kills may we still afford" has
// one meaning across ebbflow.
package killbudget

import (
	"errors"
	"fmt"
	"time"
)

// Config is the budget as it appears in a configuration section:
// at most Max kills in any Window.
type Config struct {
	// Max is the number of kills allowed within Window. 0 forbids every kill.
	Max int `yaml:"max"`
	// Window is the length of the sliding window, e.g. 1h.
	Window time.Duration `yaml:"window"`
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Max < 0 {
		return fmt.Errorf("max: %d is negative", c.Max)
	}
	if c.Window <= 0 {
		return errors.New("window: must be positive (e.g. 1h)")
	}
	return nil
}

// Budget is a sliding-window kill budget. The zero value forbids every kill;
// build one with New. Not safe for concurrent use: the decider that owns it
// calls it from its one decision loop.
type Budget struct {
	cfg   Config
	kills []time.Time // ascending
}

// New returns an empty budget.
func New(cfg Config) *Budget { return &Budget{cfg: cfg} }

// Config returns the budget's configuration.
func (b *Budget) Config() Config { return b.cfg }

func (b *Budget) prune(now time.Time) {
	cut := now.Add(-b.cfg.Window)
	i := 0
	for i < len(b.kills) && !b.kills[i].After(cut) {
		i++
	}
	b.kills = b.kills[i:]
}

// Used returns the kills recorded within the window ending at now.
func (b *Budget) Used(now time.Time) int {
	b.prune(now)
	return len(b.kills)
}

// Remaining returns how many kills the budget still allows at now.
func (b *Budget) Remaining(now time.Time) int {
	return max(0, b.cfg.Max-b.Used(now))
}

// Allow reports whether one more kill fits at now. It records nothing.
func (b *Budget) Allow(now time.Time) bool { return b.Remaining(now) > 0 }

// Record spends one kill at now. Callers record only kills they carried
// out; Record does not refuse, so check Allow first.
func (b *Budget) Record(now time.Time) {
	b.prune(now)
	// Keep the slice ascending even if a caller's clock steps back.
	i := len(b.kills)
	for i > 0 && b.kills[i-1].After(now) {
		i--
	}
	b.kills = append(b.kills, time.Time{})
	copy(b.kills[i+1:], b.kills[i:])
	b.kills[i] = now
}
