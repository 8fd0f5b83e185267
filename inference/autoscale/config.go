// Package autoscale is the elastic-scaling decider: pure functions from a
// service's forecasts, current windows and policy to a replica count with
// its reason (Decide), the per-service bookkeeping around them (Decider),
// and the service (Run) that consumes forecasts and windows and publishes
// scale decisions to Kafka and NATS.
package autoscale

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Config is the `decide` section of the configuration file.
type Config struct {
	// ConsumerGroup is the Kafka consumer group reading forecasts and
	// metrics.windows (read_committed, range assignment so one service's
	// windows and forecasts land on the same member).
	ConsumerGroup string `yaml:"consumer_group"`
	// InitialOffset is "newest" or "oldest": where a new group starts.
	InitialOffset string `yaml:"initial_offset"`
	// Source is the CloudEvents source and decided_by of decisions.
	Source string `yaml:"source"`
	// DecisionTTL sets expires_ms = at_ms + DecisionTTL (event time).
	DecisionTTL time.Duration `yaml:"decision_ttl"`
	// StaleAfter ignores a signal's window or forecast older than this,
	// relative to the newest event time seen for the service.
	StaleAfter time.Duration `yaml:"stale_after"`
	// WindowSizeS uses only windows of this size; 0 accepts any.
	WindowSizeS int64 `yaml:"window_size_s"`
	// MaxFuture rejects windows and forecasts whose event time is more
	// than this after the wall clock (dead letter, reason out_of_range):
	// one far-future input would become the service's "now", hide every
	// later input as older and stamp decisions that never expire. 0 turns
	// the check off (`ebbflow dev` does: its simulation runs ahead of the
	// wall clock).
	MaxFuture time.Duration `yaml:"max_future"`
	// RepeatSuppress does not re-emit the same target count within this
	// event time (the replicas signal lags a decision while pods start).
	RepeatSuppress time.Duration `yaml:"repeat_suppress"`
	// DefaultKind is the target kind when the workload is not known from
	// the Kubernetes API or Services: Deployment or StatefulSet.
	DefaultKind string `yaml:"default_kind"`
	// WatchWorkloads reads Deployments and StatefulSets through an
	// informer (N = spec.replicas, policy annotations). Off, or when the
	// object is unknown, N is the latest `replicas` window.
	WatchWorkloads bool `yaml:"watch_workloads"`
	// DryRun marks every decision dry_run (actuators report, do not act).
	DryRun bool `yaml:"dry_run"`
	// AlertScaleRatio alerts when one decision changes the count by at
	// least this fraction of N (0.5 = ±50%). 0 disables it.
	AlertScaleRatio float64 `yaml:"alert_scale_ratio"`
	// Policy is the default policy of every service.
	Policy Policy `yaml:"policy"`
	// Services override the policy per entity (svc/<cluster>/<ns>/<name>)
	// with the same keys as the annotations, with or without the
	// "ebbflow.io/" prefix (min-replicas: "2", expect-rate-qps: "0.6").
	// Annotations on the object override these in turn.
	Services map[string]ServiceConfig `yaml:"services"`
}

// ServiceConfig overrides one service's policy.
type ServiceConfig struct {
	// Kind is Deployment or StatefulSet ("" = default_kind).
	Kind     string            `yaml:"kind"`
	Policy   map[string]string `yaml:"policy"`
	Disabled bool              `yaml:"disabled"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{
		ConsumerGroup:   "ebbflow-autoscale",
		InitialOffset:   "newest",
		Source:          "/ebbflow/autoscale",
		DecisionTTL:     2 * time.Minute,
		StaleAfter:      5 * time.Minute,
		MaxFuture:       time.Hour,
		RepeatSuppress:  5 * time.Minute,
		DefaultKind:     "Deployment",
		WatchWorkloads:  true,
		AlertScaleRatio: 0.5,
		Policy:          DefaultPolicy(),
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.ConsumerGroup == "" {
		return errors.New("consumer_group: must not be empty")
	}
	if c.InitialOffset != "newest" && c.InitialOffset != "oldest" {
		return fmt.Errorf("initial_offset: %q is not newest or oldest", c.InitialOffset)
	}
	if c.Source == "" {
		return errors.New("source: must not be empty")
	}
	if c.DecisionTTL <= 0 {
		return errors.New("decision_ttl: must be positive")
	}
	if c.StaleAfter <= 0 {
		return errors.New("stale_after: must be positive")
	}
	if c.MaxFuture < 0 {
		return errors.New("max_future: must not be negative (0 turns the check off)")
	}
	if c.WindowSizeS < 0 || c.RepeatSuppress < 0 || c.AlertScaleRatio < 0 {
		return errors.New("window_size_s, repeat_suppress and alert_scale_ratio: must not be negative")
	}
	if !validKind(c.DefaultKind) {
		return fmt.Errorf("default_kind: %q is not Deployment or StatefulSet", c.DefaultKind)
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("policy.%w", err)
	}
	for _, e := range sortedKeys(c.Services) {
		s := c.Services[e]
		if _, _, _, err := schemas.ParseServiceEntity(e); err != nil {
			return fmt.Errorf("services.%s: %w", e, err)
		}
		if s.Kind != "" && !validKind(s.Kind) {
			return fmt.Errorf("services.%s.kind: %q is not Deployment or StatefulSet", e, s.Kind)
		}
		if _, err := PolicyFromAnnotations(c.Policy, s.annotations()); err != nil {
			return fmt.Errorf("services.%s.policy: %w", e, err)
		}
	}
	return nil
}

func validKind(k string) bool { return k == "Deployment" || k == "StatefulSet" }

// annotations returns the overrides with the ebbflow.io/ prefix.
func (s ServiceConfig) annotations() map[string]string {
	out := make(map[string]string, len(s.Policy))
	for k, v := range s.Policy {
		if !strings.HasPrefix(k, AnnotationPrefix) {
			k = AnnotationPrefix + k
		}
		out[k] = v
	}
	return out
}
