package mixing

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"min_rate not below max_rate", func(c *Config) { c.Policy.MinRate, c.Policy.MaxRate = 0.9, 0.8 }, "policy.min_rate"},
		{"min_rate equal to max_rate", func(c *Config) { c.Policy.MinRate, c.Policy.MaxRate = 0.8, 0.8 }, "policy.min_rate"},
		{"expect_rate outside the band", func(c *Config) { c.Policy.ExpectRate = 0.9 }, "policy.expect_rate"},
		{"negative kill budget", func(c *Config) { c.Policy.KillBudgetPerHour = -1 }, "policy.kill_budget_per_hour"},
		{"negative spare", func(c *Config) { c.Policy.SpareNodes = -2 }, "policy.spare_nodes"},
		{"negative drain grace", func(c *Config) { c.Policy.DrainGrace = -time.Second }, "policy.drain_grace"},
		{"zero max flips", func(c *Config) { c.Policy.MaxFlips = 0 }, "policy.max_flips"},
		{"group label not a label key", func(c *Config) { c.GroupLabel = "not a label!" }, "group_label"},
		{"group label is the pool label", func(c *Config) { c.GroupLabel = LabelPool }, "group_label"},
		{"group policy for an unknown group", func(c *Config) {
			c.Groups = []string{"t4", "a100"}
			c.GroupPolicies = map[string]Policy{"v100": DefaultPolicy()}
		}, "group_policies.v100"},
		{"bad group policy", func(c *Config) {
			c.Groups = []string{"t4"}
			p := DefaultPolicy()
			p.KillBudgetPerHour = -3
			c.GroupPolicies = map[string]Policy{"t4": p}
		}, "group_policies.t4.kill_budget_per_hour"},
		{"group listed twice", func(c *Config) { c.Groups = []string{"t4", "t4"} }, "groups[1]"},
		{"zero interval", func(c *Config) { c.Interval = 0 }, "interval"},
		{"negative eviction bound", func(c *Config) { c.Actuator.MaxTrainingEvictionsPerHour = -1 }, "actuator.max_training_evictions_per_hour"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
				t.Fatalf("got %v, want an error naming %s", err, c.field)
			}
		})
	}
}

func TestPolicyForAndManages(t *testing.T) {
	c := DefaultConfig()
	c.Groups = []string{"t4", "a100"}
	p := DefaultPolicy()
	p.SpareNodes = 3
	c.GroupPolicies = map[string]Policy{"a100": p}
	if c.PolicyFor("a100").SpareNodes != 3 || c.PolicyFor("t4").SpareNodes != DefaultPolicy().SpareNodes {
		t.Fatal("group override not applied to its group only")
	}
	if !c.Manages("t4") || c.Manages("cpu") {
		t.Fatal("Manages ignores the groups list")
	}
	c.Groups = nil
	if !c.Manages("cpu") || c.Manages("") {
		t.Fatal("without a list every named group is managed, unnamed ones not")
	}
}

func TestReadNode(t *testing.T) {
	cases := []struct {
		labels map[string]string
		want   NodeState
		ok     bool
		err    string
	}{
		{map[string]string{"x": "y"}, NodeState{}, false, ""},
		{map[string]string{LabelPool: "online", LabelNodeGroup: "t4"}, NodeState{Group: "t4", Pool: PoolOnline}, true, ""},
		{map[string]string{LabelPool: "offline", LabelHandover: "to-online", LabelNodeGroup: "a100"}, NodeState{Group: "a100", Pool: PoolOffline, Handover: HandoverToOnline}, true, ""},
		{map[string]string{LabelPool: "gpu"}, NodeState{}, false, LabelPool},
		{map[string]string{LabelPool: "online", LabelHandover: "sideways"}, NodeState{}, false, LabelHandover},
		{map[string]string{LabelPool: "fixed", LabelHandover: "to-online"}, NodeState{}, false, "fixed"},
	}
	for _, c := range cases {
		st, ok, err := ReadNode(c.labels, LabelNodeGroup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("%v: got %v, want an error naming %s", c.labels, err, c.err)
			}
			continue
		}
		if err != nil || ok != c.ok || st != c.want {
			t.Fatalf("%v: got %+v %v %v, want %+v %v", c.labels, st, ok, err, c.want, c.ok)
		}
	}
	if HandoverTo(PoolOffline).Target() != PoolOffline || HandoverTo(PoolFixed) != HandoverNone {
		t.Fatal("HandoverTo and Target disagree")
	}
}

func TestLostWork(t *testing.T) {
	p := TrainingPod{Started: t0.Add(-90 * time.Minute), LastCheckpoint: t0.Add(-20 * time.Minute)}
	if got := p.LostWork(t0); got != 20*time.Minute {
		t.Fatalf("lost %v since the checkpoint, want 20m", got)
	}
	p.LastCheckpoint = time.Time{}
	if got := p.LostWork(t0); got != 90*time.Minute {
		t.Fatalf("lost %v without a checkpoint, want the whole 90m run", got)
	}
}
