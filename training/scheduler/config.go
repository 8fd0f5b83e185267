package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/ebbflow/ebbflow/training/killbudget"
)

// Config is the `training` section of the configuration file.
type Config struct {
	// Departments are the tenants: each gets a Kueue ClusterQueue with a
	// nominal quota per GPU model and a LocalQueue in its namespace.
	Departments []Department `yaml:"departments"`
	// GPUModels are the GPU models (Kueue ResourceFlavors) jobs may ask for.
	GPUModels []GPUModel `yaml:"gpu_models"`
	// Sizing sets how jobs are sized from their family's history.
	Sizing SizingConfig `yaml:"sizing"`
	// Score sets the terms of WPAI's score.
	Score ScoreConfig `yaml:"score"`
	// MinRuntime protects a running job from pre-emption until it has run
	// this long.
	MinRuntime time.Duration `yaml:"min_runtime"`
	// KillBudget bounds pre-emptions (the same notion node mixing uses).
	KillBudget killbudget.Config `yaml:"kill_budget"`
	// FixedPoolAfter sends jobs expected to run longer than this to the
	// fixed pool; shorter ones go to the mixed pool.
	FixedPoolAfter time.Duration `yaml:"fixed_pool_after"`
	// Pools names the node pools and the node label that carries them.
	Pools PoolConfig `yaml:"pools"`
	// Kueue names the Kueue objects ebbflow renders and reads.
	Kueue KueueConfig `yaml:"kueue"`
	// Cluster is written into decision targets ("" = kubernetes.cluster).
	Cluster string `yaml:"cluster"`
	// Source is the CloudEvents source and decided_by of training decisions.
	Source string `yaml:"source"`
}

// Department is one tenant of the training cluster.
type Department struct {
	Name string `yaml:"name"`
	// Namespace holds the department's jobs and LocalQueue ("" = Name).
	Namespace string `yaml:"namespace"`
	// Quota is the nominal quota in GPUs per GPU model name.
	Quota map[string]int `yaml:"quota"`
	// LocalQueue is the department's LocalQueue ("" = kueue.local_queue);
	// set it when departments share a namespace.
	LocalQueue string `yaml:"local_queue,omitempty"`
}

// Queue returns the department's LocalQueue name given the default.
func (d Department) Queue(def string) string {
	if d.LocalQueue != "" {
		return d.LocalQueue
	}
	return def
}

// Ns returns the department's namespace.
func (d Department) Ns() string {
	if d.Namespace != "" {
		return d.Namespace
	}
	return d.Name
}

// GPUModel is one GPU model, a Kueue ResourceFlavor.
type GPUModel struct {
	Name string `yaml:"name"`
	// MemoryMiB is the memory of one GPU.
	MemoryMiB int `yaml:"memory_mib"`
	// NodeLabelValue is the value of the GPU-model node label
	// (pools.gpu_model_label) on nodes with this GPU ("" = Name).
	NodeLabelValue string `yaml:"node_label_value"`
}

// LabelValue returns the node label value of the model.
func (g GPUModel) LabelValue() string {
	if g.NodeLabelValue != "" {
		return g.NodeLabelValue
	}
	return g.Name
}

// SizingConfig sets how jobs are sized from history.
type SizingConfig struct {
	// Runs is how many of the family's most recent runs are read (3).
	Runs int `yaml:"runs"`
	// MemoryFraction is the usable share of a GPU's memory (0.9).
	MemoryFraction float64 `yaml:"memory_fraction"`
	// CPURequestHeadroom multiplies the recent mean CPU by 1+headroom for
	// the request (0.5: the seed's "50 % of recent averages").
	CPURequestHeadroom float64 `yaml:"cpu_request_headroom"`
	// CPULimitHeadroom multiplies the recent peak CPU by 1+headroom for the
	// limit (0.5).
	CPULimitHeadroom float64 `yaml:"cpu_limit_headroom"`
	// Lookback bounds how far back the history is read (30 days).
	Lookback time.Duration `yaml:"lookback"`
	// WindowSizeS reads windows of this size (60).
	WindowSizeS int64 `yaml:"window_size_s"`
	// ScrapeInterval is the DCGM scrape interval: a run's GPU count is the
	// number of gpu_util samples per window ÷ (window size ÷ interval).
	ScrapeInterval time.Duration `yaml:"scrape_interval"`
	// NeverGrow keeps the sized GPU count at or below the request.
	NeverGrow bool `yaml:"never_grow"`
}

// ScoreConfig sets the terms of the score. Validate enforces the ordering
// invariant: the lowest within-quota score is above the highest borrower's.
type ScoreConfig struct {
	// WithinQuota is the base of a job within its department's quota (1,000,000).
	WithinQuota int64 `yaml:"within_quota"`
	// Borrowing is the base of a job that borrows from the cohort (1,000).
	Borrowing int64 `yaml:"borrowing"`
	// WaitCreditPerMinute is added for every minute waited (10).
	WaitCreditPerMinute float64 `yaml:"wait_credit_per_minute"`
	// WaitCreditMax caps the wait credit (100,000).
	WaitCreditMax int64 `yaml:"wait_credit_max"`
	// UtilTarget is the department utilisation below which it is penalised (0.6).
	UtilTarget float64 `yaml:"util_target"`
	// UtilPenaltyMax is the penalty at 0 % utilisation, scaled linearly to 0
	// at UtilTarget (10,000).
	UtilPenaltyMax int64 `yaml:"util_penalty_max"`
	// UtilWindow is how far back the department's utilisation is read from
	// the history (1h).
	UtilWindow time.Duration `yaml:"util_window"`
}

// PoolConfig names node pools.
type PoolConfig struct {
	// Label is the node label whose value is the pool ("ebbflow.io/pool").
	Label string `yaml:"label"`
	// Fixed is the pool of long jobs ("fixed").
	Fixed string `yaml:"fixed"`
	// Mixed is the pool node mixing shares with inference ("offline").
	Mixed string `yaml:"mixed"`
	// GPUModelLabel is the node label naming the GPU model
	// ("nvidia.com/gpu.product").
	GPUModelLabel string `yaml:"gpu_model_label"`
	// GPUResource is the extended resource of a GPU ("nvidia.com/gpu").
	GPUResource string `yaml:"gpu_resource"`
	// MixedFlavors are the GPU models (ResourceFlavors) whose nodes are in
	// the mixed pool: their nominal GPU quota follows the GPUs node mixing
	// has handed to training (nodes in the mixed pool, not in handover),
	// shared among the departments in proportion to their configured quota
	// of the model. Empty: every quota stays as configured. The other
	// flavors (the fixed pool's) are never touched.
	MixedFlavors []string `yaml:"mixed_flavors"`
	// NodeSelector is an extra label selector on the nodes counted for the
	// mixed pool's capacity ("" = every node with the pool label).
	NodeSelector string `yaml:"node_selector"`
}

// IsMixedFlavor reports whether a GPU model's quota follows the mixed pool.
func (p PoolConfig) IsMixedFlavor(model string) bool {
	for _, m := range p.MixedFlavors {
		if m == model {
			return true
		}
	}
	return false
}

// KueueConfig names the Kueue objects.
type KueueConfig struct {
	// LocalQueue is the LocalQueue name in each department namespace ("training").
	LocalQueue string `yaml:"local_queue"`
	// PriorityClass is the WorkloadPriorityClass jobs are labelled with
	// ("ebbflow-training"); ebbflow then writes the score into the
	// Workload's spec.priority, which Kueue allows for workloads whose
	// priority comes from a WorkloadPriorityClass.
	PriorityClass string `yaml:"priority_class"`
	// Cohort joins the departments' ClusterQueues for borrowing ("training").
	Cohort string `yaml:"cohort"`
	// APIVersion of Kueue's objects ("kueue.x-k8s.io/v1beta2").
	APIVersion string `yaml:"api_version"`
	// RefreshInterval is how often waiting workloads' scores are refreshed (1m).
	RefreshInterval time.Duration `yaml:"refresh_interval"`
}

// DefaultConfig returns the documented defaults: two departments and two GPU
// models, enough for `ebbflow training submit --dry-run` to work out of the box.
func DefaultConfig() Config {
	return Config{
		Departments: []Department{
			{Name: "research", Quota: map[string]int{"a100": 8, "v100": 8}},
			{Name: "product", Quota: map[string]int{"a100": 8, "v100": 8}},
		},
		GPUModels: []GPUModel{
			{Name: "a100", MemoryMiB: 81920, NodeLabelValue: "NVIDIA-A100-SXM4-80GB"},
			{Name: "v100", MemoryMiB: 32768, NodeLabelValue: "Tesla-V100-SXM2-32GB"},
		},
		Sizing: SizingConfig{Runs: 3, MemoryFraction: 0.9, CPURequestHeadroom: 0.5, CPULimitHeadroom: 0.5,
			Lookback: 30 * 24 * time.Hour, WindowSizeS: 60, ScrapeInterval: 15 * time.Second, NeverGrow: false},
		Score:          DefaultScoreConfig(),
		MinRuntime:     10 * time.Minute,
		KillBudget:     killbudget.Config{Max: 10, Window: time.Hour},
		FixedPoolAfter: 12 * time.Hour,
		Pools: PoolConfig{Label: "ebbflow.io/pool", Fixed: "fixed", Mixed: "offline",
			GPUModelLabel: "nvidia.com/gpu.product", GPUResource: "nvidia.com/gpu"},
		Kueue: KueueConfig{LocalQueue: "training", PriorityClass: "ebbflow-training", Cohort: "training",
			APIVersion: "kueue.x-k8s.io/v1beta2", RefreshInterval: time.Minute},
		Source: "/ebbflow/training",
	}
}

// DefaultScoreConfig returns WPAI's score constants.
func DefaultScoreConfig() ScoreConfig {
	return ScoreConfig{WithinQuota: 1_000_000, Borrowing: 1_000, WaitCreditPerMinute: 10, WaitCreditMax: 100_000,
		UtilTarget: 0.6, UtilPenaltyMax: 10_000, UtilWindow: time.Hour}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	models := map[string]bool{}
	for i, g := range c.GPUModels {
		if g.Name == "" {
			return fmt.Errorf("gpu_models[%d].name: must not be empty", i)
		}
		if models[g.Name] {
			return fmt.Errorf("gpu_models[%d].name: %q appears twice", i, g.Name)
		}
		if g.MemoryMiB <= 0 {
			return fmt.Errorf("gpu_models[%d].memory_mib: must be positive", i)
		}
		models[g.Name] = true
	}
	if len(c.GPUModels) == 0 {
		return errors.New("gpu_models: at least one GPU model is required")
	}
	depts := map[string]bool{}
	for i, d := range c.Departments {
		if d.Name == "" {
			return fmt.Errorf("departments[%d].name: must not be empty", i)
		}
		if depts[d.Name] {
			return fmt.Errorf("departments[%d].name: %q appears twice", i, d.Name)
		}
		depts[d.Name] = true
		for m, q := range d.Quota {
			if !models[m] {
				return fmt.Errorf("departments[%d].quota.%s: unknown GPU model (known: %v)", i, m, c.ModelNames())
			}
			if q < 0 {
				return fmt.Errorf("departments[%d].quota.%s: %d is negative", i, m, q)
			}
		}
	}
	if len(c.Departments) == 0 {
		return errors.New("departments: at least one department is required")
	}
	s := c.Sizing
	switch {
	case s.Runs < 1:
		return errors.New("sizing.runs: must be at least 1")
	case s.MemoryFraction <= 0 || s.MemoryFraction > 1:
		return fmt.Errorf("sizing.memory_fraction: %v is not in (0, 1]", s.MemoryFraction)
	case s.CPURequestHeadroom < 0:
		return errors.New("sizing.cpu_request_headroom: must not be negative")
	case s.CPULimitHeadroom < 0:
		return errors.New("sizing.cpu_limit_headroom: must not be negative")
	case s.Lookback <= 0:
		return errors.New("sizing.lookback: must be positive")
	case s.WindowSizeS <= 0:
		return errors.New("sizing.window_size_s: must be positive")
	case s.ScrapeInterval <= 0:
		return errors.New("sizing.scrape_interval: must be positive")
	}
	if err := c.Score.Validate(); err != nil {
		return fmt.Errorf("score.%w", err)
	}
	if c.MinRuntime < 0 {
		return errors.New("min_runtime: must not be negative")
	}
	if err := c.KillBudget.Validate(); err != nil {
		return fmt.Errorf("kill_budget.%w", err)
	}
	if c.FixedPoolAfter <= 0 {
		return errors.New("fixed_pool_after: must be positive (e.g. 12h)")
	}
	p := c.Pools
	for _, f := range []struct{ name, v string }{{"label", p.Label}, {"fixed", p.Fixed}, {"mixed", p.Mixed},
		{"gpu_model_label", p.GPUModelLabel}, {"gpu_resource", p.GPUResource}} {
		if f.v == "" {
			return fmt.Errorf("pools.%s: must not be empty", f.name)
		}
	}
	for i, m := range p.MixedFlavors {
		if !models[m] {
			return fmt.Errorf("pools.mixed_flavors[%d]: %q is not a GPU model (known: %v)", i, m, c.ModelNames())
		}
	}
	k := c.Kueue
	for _, f := range []struct{ name, v string }{{"local_queue", k.LocalQueue}, {"priority_class", k.PriorityClass},
		{"cohort", k.Cohort}, {"api_version", k.APIVersion}} {
		if f.v == "" {
			return fmt.Errorf("kueue.%s: must not be empty", f.name)
		}
	}
	if k.RefreshInterval <= 0 {
		return errors.New("kueue.refresh_interval: must be positive")
	}
	return nil
}

// Validate checks the score constants, including the invariant that the
// lowest within-quota score (base minus the full penalty) stays above the
// highest borrower's (base plus the full wait credit).
func (s ScoreConfig) Validate() error {
	switch {
	case s.Borrowing < 0:
		return errors.New("borrowing: must not be negative")
	case s.WaitCreditPerMinute < 0:
		return errors.New("wait_credit_per_minute: must not be negative")
	case s.WaitCreditMax < 0:
		return errors.New("wait_credit_max: must not be negative")
	case s.UtilTarget < 0 || s.UtilTarget > 1:
		return fmt.Errorf("util_target: %v is not in [0, 1]", s.UtilTarget)
	case s.UtilPenaltyMax < 0:
		return errors.New("util_penalty_max: must not be negative")
	case s.UtilWindow < 0:
		return errors.New("util_window: must not be negative")
	}
	if lo, hi := s.WithinQuota-s.UtilPenaltyMax, s.Borrowing+s.WaitCreditMax; lo <= hi {
		return fmt.Errorf("within_quota: %d − util_penalty_max %d = %d must exceed borrowing %d + wait_credit_max %d = %d, so that no borrower outranks a within-quota job",
			s.WithinQuota, s.UtilPenaltyMax, lo, s.Borrowing, s.WaitCreditMax, hi)
	}
	// Kueue priorities are int32.
	if s.WithinQuota+s.WaitCreditMax > 1<<31-1 {
		return errors.New("within_quota: the highest score must fit Kueue's int32 priority")
	}
	return nil
}

// Department returns the department called name.
func (c Config) Department(name string) (Department, bool) {
	for _, d := range c.Departments {
		if d.Name == name {
			return d, true
		}
	}
	return Department{}, false
}

// GPUModel returns the GPU model called name.
func (c Config) GPUModel(name string) (GPUModel, bool) {
	for _, g := range c.GPUModels {
		if g.Name == name {
			return g, true
		}
	}
	return GPUModel{}, false
}

// DepartmentNames lists the departments in configuration order.
func (c Config) DepartmentNames() []string {
	out := make([]string, len(c.Departments))
	for i, d := range c.Departments {
		out[i] = d.Name
	}
	return out
}

// ModelNames lists the GPU models in configuration order.
func (c Config) ModelNames() []string {
	out := make([]string, len(c.GPUModels))
	for i, g := range c.GPUModels {
		out[i] = g.Name
	}
	return out
}
