package mixing

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Config is the `mixing` section of the configuration file. The zero value
// is not valid; start from DefaultConfig.
type Config struct {
	// GroupLabel is the node label whose value names the node's group
	// (cpu, t4, a100, …). Default ebbflow.io/node-group.
	GroupLabel string `yaml:"group_label"`
	// Groups lists the groups the decider manages; a node whose group is
	// not listed is left alone. Empty manages every value of GroupLabel.
	Groups []string `yaml:"groups"`
	// Interval is how often the decider evaluates each group.
	Interval time.Duration `yaml:"interval"`
	// Policy is the policy of every group, unless overridden.
	Policy Policy `yaml:"policy"`
	// GroupPolicies overrides the policy of one group; every key must be
	// listed in Groups (when Groups is set).
	GroupPolicies map[string]Policy `yaml:"group_policies"`
	// DryRun marks every decision dry_run.
	DryRun bool `yaml:"dry_run"`
	// DecisionTTL sets expires_ms = at_ms + DecisionTTL.
	DecisionTTL time.Duration `yaml:"decision_ttl"`
	// Source is the CloudEvents source and decided_by of decisions.
	Source string `yaml:"source"`
	// Utilisation is the node signal that measures a group's inference
	// utilisation; GroupUtilisation overrides it per group (e.g. cpu for
	// the cpu group).
	Utilisation      UtilisationSignal            `yaml:"utilisation"`
	GroupUtilisation map[string]UtilisationSignal `yaml:"group_utilisation"`
	// StaleAfter ignores a node's window or forecast older than this.
	StaleAfter time.Duration `yaml:"stale_after"`
	// MaxFuture dead-letters a window or forecast stamped more than this
	// after the clock (reason out_of_range): it would stay the node's
	// newest input, never stale, hiding every later one. 0 turns the check
	// off (`ebbflow dev` does: its simulation runs ahead of the wall clock).
	MaxFuture time.Duration `yaml:"max_future"`
	// ConsumerGroup reads metrics.windows and forecasts. Run one decider
	// per cluster: it must see every node's windows.
	ConsumerGroup string `yaml:"consumer_group"`
	// Actuator bounds the node actuator (actuators/nodes, in `ebbflow
	// actuate`) whatever the decisions ask.
	Actuator ActuatorConfig `yaml:"actuator"`
}

// ActuatorConfig is the node actuator's own bounds.
type ActuatorConfig struct {
	// Enabled registers the nodes handler in `ebbflow actuate`.
	Enabled bool `yaml:"enabled"`
	// MaxNodesPerDecision: flips beyond it in one decision are refused.
	MaxNodesPerDecision int `yaml:"max_nodes_per_decision"`
	// MaxTrainingEvictionsPerHour bounds evicted training pods per hour
	// (0 = no bound beyond the decider's kill budget).
	MaxTrainingEvictionsPerHour int `yaml:"max_training_evictions_per_hour"`
	// ReconcileInterval is how often handovers in progress are advanced.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// Impersonate is the identity the nodes handler and its reconciler act
	// as (Kubernetes impersonation; deploy/rbac/node-actuator.yaml grants
	// it the node work and the actuator the right to impersonate it, and
	// only it). "" acts as the actuator's own identity (ebbflow dev's
	// simulated cluster has no identities).
	Impersonate string `yaml:"impersonate"`
}

// DefaultNodeActuatorIdentity is the default of actuator.impersonate: the
// service account of deploy/rbac/node-actuator.yaml.
const DefaultNodeActuatorIdentity = "system:serviceaccount:ebbflow:ebbflow-node-actuator"

// Policy holds the thresholds and bounds of one group's decisions.
// Utilisations are fractions of the online nodes' inference capacity.
type Policy struct {
	// MinRate: online → offline only while utilisation stays under it, now
	// and across the forecast horizon, for Dwell.
	MinRate float64 `yaml:"min_rate"`
	// MaxRate: offline → online as soon as utilisation exceeds it, now or
	// within the lead time in the forecast.
	MaxRate float64 `yaml:"max_rate"`
	// ExpectRate is the utilisation a flip aims at: nodes kept online =
	// ceil(peak demand / ExpectRate) + SpareNodes. MinRate < ExpectRate <
	// MaxRate gives the hysteresis that keeps a constant load from
	// oscillating.
	ExpectRate float64 `yaml:"expect_rate"`
	// SpareNodes online nodes are kept beyond what the forecast needs.
	SpareNodes int `yaml:"spare_nodes"`
	// Dwell is how long utilisation must stay under MinRate before nodes
	// go offline.
	Dwell time.Duration `yaml:"dwell"`
	// ForecastHorizon is how far ahead the forecast must stay low for a
	// node to go offline.
	ForecastHorizon time.Duration `yaml:"forecast_horizon"`
	// DrainGrace is the eviction grace period given to training pods to
	// write a checkpoint.
	DrainGrace time.Duration `yaml:"drain_grace"`
	// PodStartup is how long an inference pod needs to become ready on a
	// returned node. Lead time = DrainGrace + PodStartup.
	PodStartup time.Duration `yaml:"pod_startup"`
	// MaxFlips nodes at most change pool per FlipInterval.
	MaxFlips     int           `yaml:"max_flips"`
	FlipInterval time.Duration `yaml:"flip_interval"`
	// KillBudgetPerHour bounds the training pods evicted from mixed nodes
	// in any hour. The default 0 lets only empty mixed nodes (and nodes
	// still on their way offline) return: inference waits for a node to
	// empty rather than kill a job. Raise it to trade kills for Pending
	// minutes.
	KillBudgetPerHour int `yaml:"kill_budget_per_hour"`
}

// LeadTime is how long before inference needs a node the handover must
// start: the drain grace plus pod start-up.
func (p Policy) LeadTime() time.Duration { return p.DrainGrace + p.PodStartup }

// DefaultPolicy returns the documented default policy.
func DefaultPolicy() Policy {
	return Policy{
		MinRate:           0.35,
		MaxRate:           0.85,
		ExpectRate:        0.65,
		SpareNodes:        1,
		Dwell:             60 * time.Minute,
		ForecastHorizon:   60 * time.Minute,
		DrainGrace:        2 * time.Minute,
		PodStartup:        2 * time.Minute,
		MaxFlips:          4,
		FlipInterval:      5 * time.Minute,
		KillBudgetPerHour: 0,
	}
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		GroupLabel:       LabelNodeGroup,
		Interval:         time.Minute,
		Policy:           DefaultPolicy(),
		DecisionTTL:      5 * time.Minute,
		Source:           "/ebbflow/mixing",
		Utilisation:      UtilisationSignal{Signal: "gpu_util", FullScale: 100},
		GroupUtilisation: map[string]UtilisationSignal{"cpu": {Signal: "cpu", FullScale: 0}},
		StaleAfter:       3 * time.Minute,
		MaxFuture:        time.Hour,
		ConsumerGroup:    "ebbflow-mixing",
		Actuator: ActuatorConfig{
			Enabled: true, MaxNodesPerDecision: 4, MaxTrainingEvictionsPerHour: 4,
			ReconcileInterval: 10 * time.Second, Impersonate: DefaultNodeActuatorIdentity,
		},
	}
}

// PolicyFor returns the policy of a group: its override or the default.
func (c Config) PolicyFor(group string) Policy {
	if p, ok := c.GroupPolicies[group]; ok {
		return p
	}
	return c.Policy
}

// SignalFor returns the utilisation signal of a group.
func (c Config) SignalFor(group string) UtilisationSignal {
	if u, ok := c.GroupUtilisation[group]; ok {
		return u
	}
	return c.Utilisation
}

// Manages reports whether the decider manages a group.
func (c Config) Manages(group string) bool {
	if len(c.Groups) == 0 {
		return group != ""
	}
	for _, g := range c.Groups {
		if g == group {
			return true
		}
	}
	return false
}

// labelKey is a Kubernetes qualified name with an optional DNS prefix.
var (
	labelKey   = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValue = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
)

// Validate checks the section and names the first bad field.
func (c Config) Validate() error {
	if c.GroupLabel == "" || !labelKey.MatchString(c.GroupLabel) {
		return fmt.Errorf("group_label: %q is not a Kubernetes label key", c.GroupLabel)
	}
	switch c.GroupLabel {
	case LabelPool, LabelHandover:
		return fmt.Errorf("group_label: %q is ebbflow's own pool state label, not a node group label", c.GroupLabel)
	}
	seen := map[string]bool{}
	for i, g := range c.Groups {
		if !labelValue.MatchString(g) {
			return fmt.Errorf("groups[%d]: %q is not a label value", i, g)
		}
		if seen[g] {
			return fmt.Errorf("groups[%d]: %q is listed twice", i, g)
		}
		seen[g] = true
	}
	if c.Interval <= 0 {
		return errors.New("interval: must be positive")
	}
	if c.DecisionTTL <= 0 {
		return errors.New("decision_ttl: must be positive")
	}
	if c.Source == "" {
		return errors.New("source: must not be empty")
	}
	if c.ConsumerGroup == "" {
		return errors.New("consumer_group: must not be empty")
	}
	if c.StaleAfter <= 0 {
		return errors.New("stale_after: must be positive")
	}
	if c.MaxFuture < 0 {
		return errors.New("max_future: must not be negative (0 turns the check off)")
	}
	if c.Utilisation.Signal == "" || c.Utilisation.FullScale < 0 {
		return fmt.Errorf("utilisation: signal %q must be set and full_scale %v not negative", c.Utilisation.Signal, c.Utilisation.FullScale)
	}
	for g, u := range c.GroupUtilisation {
		if u.Signal == "" || u.FullScale < 0 {
			return fmt.Errorf("group_utilisation.%s: signal %q must be set and full_scale %v not negative", g, u.Signal, u.FullScale)
		}
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("policy.%w", err)
	}
	switch a := c.Actuator; {
	case a.MaxNodesPerDecision < 1:
		return fmt.Errorf("actuator.max_nodes_per_decision: %d must be at least 1", a.MaxNodesPerDecision)
	case a.MaxTrainingEvictionsPerHour < 0:
		return fmt.Errorf("actuator.max_training_evictions_per_hour: %d must not be negative", a.MaxTrainingEvictionsPerHour)
	case a.ReconcileInterval <= 0:
		return fmt.Errorf("actuator.reconcile_interval: %v must be positive", a.ReconcileInterval)
	}
	if err := validIdentity(c.Actuator.Impersonate); err != nil {
		return fmt.Errorf("actuator.impersonate: %w", err)
	}
	keys := make([]string, 0, len(c.GroupPolicies))
	for g := range c.GroupPolicies {
		keys = append(keys, g)
	}
	sort.Strings(keys)
	for _, g := range keys {
		if len(c.Groups) > 0 && !seen[g] {
			return fmt.Errorf("group_policies.%s: unknown group (not in groups %v)", g, c.Groups)
		}
		if err := c.GroupPolicies[g].Validate(); err != nil {
			return fmt.Errorf("group_policies.%s.%w", g, err)
		}
	}
	return nil
}

// serviceAccountPrefix starts the user name of a Kubernetes service account.
const serviceAccountPrefix = "system:serviceaccount:"

// validIdentity checks a user name to impersonate: "" (none), or one
// without blanks; a service account's must be
// system:serviceaccount:<namespace>:<name> with a DNS label namespace and
// a DNS subdomain name, as the API server would authenticate it.
func validIdentity(user string) error {
	if user == "" {
		return nil
	}
	if strings.ContainsFunc(user, unicode.IsSpace) {
		return fmt.Errorf("%q must not contain blanks", user)
	}
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	if !ok {
		return nil
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return fmt.Errorf("%q is not %s<namespace>:<name> of a service account", user, serviceAccountPrefix)
	}
	return nil
}

// Validate checks a policy and names the first bad field.
func (p Policy) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"min_rate", p.MinRate}, {"max_rate", p.MaxRate}, {"expect_rate", p.ExpectRate}} {
		if !(r.v > 0 && r.v <= 1) {
			return fmt.Errorf("%s: %v is not in (0, 1]", r.name, r.v)
		}
	}
	if p.MinRate >= p.MaxRate {
		return fmt.Errorf("min_rate: %v must be below max_rate %v", p.MinRate, p.MaxRate)
	}
	if !(p.MinRate < p.ExpectRate && p.ExpectRate < p.MaxRate) {
		return fmt.Errorf("expect_rate: %v must lie between min_rate %v and max_rate %v", p.ExpectRate, p.MinRate, p.MaxRate)
	}
	if p.SpareNodes < 0 {
		return fmt.Errorf("spare_nodes: %d must not be negative", p.SpareNodes)
	}
	if p.KillBudgetPerHour < 0 {
		return fmt.Errorf("kill_budget_per_hour: %d must not be negative", p.KillBudgetPerHour)
	}
	if p.MaxFlips < 1 {
		return fmt.Errorf("max_flips: %d must be at least 1", p.MaxFlips)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dwell", p.Dwell}, {"forecast_horizon", p.ForecastHorizon}, {"drain_grace", p.DrainGrace}, {"pod_startup", p.PodStartup}} {
		if d.v < 0 {
			return fmt.Errorf("%s: %v must not be negative", d.name, d.v)
		}
	}
	if p.FlipInterval <= 0 {
		return fmt.Errorf("flip_interval: %v must be positive", p.FlipInterval)
	}
	return nil
}
