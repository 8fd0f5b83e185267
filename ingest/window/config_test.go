package window

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(c *Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"two sizes", func(c *Config) { c.Sizes = []time.Duration{15 * time.Second, time.Minute} }, ""},
		{"no sizes", func(c *Config) { c.Sizes = nil }, "sizes"},
		{"fractional size", func(c *Config) { c.Sizes = []time.Duration{1500 * time.Millisecond} }, "sizes"},
		{"duplicate size", func(c *Config) { c.Sizes = []time.Duration{time.Minute, time.Minute} }, "twice"},
		{"empty group", func(c *Config) { c.Group = "" }, "group"},
		{"negative delay", func(c *Config) { c.Delay = -time.Second }, "delay"},
		{"negative lateness", func(c *Config) { c.AllowedLateness = -time.Second }, "allowed_lateness"},
		{"negative idle", func(c *Config) { c.IdleTimeout = -time.Second }, "idle_timeout"},
		{"zero staleness", func(c *Config) { c.Staleness = 0 }, "staleness"},
		{"zero commit interval", func(c *Config) { c.CommitInterval = 0 }, "commit_interval"},
		{"zero batch", func(c *Config) { c.MaxBatchRecords = 0 }, "max_batch_records"},
		{"accuracy", func(c *Config) { c.SketchAccuracy = 1 }, "sketch_accuracy"},
		{"rebalance", func(c *Config) { c.Rebalance = "eager" }, "rebalance"},
		{"start", func(c *Config) { c.StartFrom = "middle" }, "start_from"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.mut(&cfg)
			err := cfg.Validate()
			if (c.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), c.want) && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("want %q, got %v", c.want, err)
			}
		})
	}
	s := DefaultConfig().Settings()
	if len(s.SizesMs) != 1 || s.SizesMs[0] != 60_000 || s.DelayMs != 5_000 || s.LatenessMs != 60_000 {
		t.Fatalf("settings %+v", s)
	}
}
