package autoscale

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Aggregation says how a signal's window value relates to one replica.
type Aggregation string

const (
	// AggSum: the window value is the service total (qps, cpu): per-replica
	// utilisation is value / (N × capacity).
	AggSum Aggregation = "sum"
	// AggMean: the window value is already per pod/GPU (gpu_util, memory):
	// per-replica utilisation is value / capacity.
	AggMean Aggregation = "mean"
)

// SignalAggregation returns how a canonical signal aggregates (see the
// shared signal table): counters summed over the service's series are sums,
// per-pod and per-GPU gauges are means.
func SignalAggregation(signal string) Aggregation {
	switch signal {
	case schemas.SignalQPS, schemas.SignalCPU, schemas.SignalErrorRate:
		return AggSum
	default:
		return AggMean
	}
}

// SignalPolicy is the target of one demand signal.
type SignalPolicy struct {
	// ExpectRate is the target utilisation in (0, 1]: 0.7 keeps replicas
	// 70% busy.
	ExpectRate float64 `yaml:"expect_rate"`
	// Capacity is what one replica can give at 100%: requests/s per replica
	// for qps, cores for cpu, bytes for memory, 100 for gpu_util (percent),
	// MiB for gpu_memory.
	Capacity float64 `yaml:"capacity"`
}

// Policy is the scaling policy of one service. All durations are in event
// time. Safe to copy.
type Policy struct {
	// MinReplicas and MaxReplicas bound every decision.
	MinReplicas int32 `yaml:"min_replicas"`
	MaxReplicas int32 `yaml:"max_replicas"`
	// MaxStepUp and MaxStepDown bound the change of one decision.
	MaxStepUp   int32 `yaml:"max_step_up"`
	MaxStepDown int32 `yaml:"max_step_down"`
	// StartupTime is how long a new replica takes to serve; the forecast
	// is read over every horizon whose window starts within StartupTime
	// plus one forecast step.
	StartupTime time.Duration `yaml:"startup_time"`
	// Signals are the demand signals with their targets; the largest
	// demand wins.
	Signals map[string]SignalPolicy `yaml:"signals"`
	// Tolerance is the dead band around the target: expansion fires when
	// the demand exceeds N × (1 + Tolerance); contraction goes to the
	// smallest count at which expansion would not fire again.
	Tolerance float64 `yaml:"tolerance"`
	// ScaleDownBand is the hysteresis of contraction, in [0, 1): contract
	// only to the count that holds the demand at expect_rate × (1 −
	// band), and hold while that count is not below N. 0 restores WPAI's
	// floor contraction (which runs the service above its target).
	ScaleDownBand float64 `yaml:"scale_down_band"`
	// ScaleDownStabilization keeps the highest recommendation of this
	// window of event time when contracting (HPA's 300 s).
	ScaleDownStabilization time.Duration `yaml:"scale_down_stabilization"`
	// ScaleUpCooldown is the least event time between two expansions;
	// ScaleDownCooldown the least time after any scaling before a
	// contraction.
	ScaleUpCooldown   time.Duration `yaml:"scale_up_cooldown"`
	ScaleDownCooldown time.Duration `yaml:"scale_down_cooldown"`
	// LatencySLOMs is the p99 latency SLO; above it contraction is
	// forbidden and, with BreachScaleRatio > 0, expansion forced. 0 = off.
	LatencySLOMs float64 `yaml:"latency_slo_ms"`
	// ErrorRatioLimit is the highest error_rate/qps tolerated; above it
	// contraction is forbidden. 0 = off.
	ErrorRatioLimit float64 `yaml:"error_ratio_limit"`
	// BreachScaleRatio forces at least N × ratio more replicas (at least
	// one) while the latency SLO is breached. 0 disables forcing.
	BreachScaleRatio float64 `yaml:"breach_scale_ratio"`
	// ExpandOnErrors also forces expansion on an error-ratio breach
	// (errors are not always load; off by default).
	ExpandOnErrors bool `yaml:"expand_on_errors"`
}

// DefaultPolicy is the policy a service gets unless configured or annotated.
func DefaultPolicy() Policy {
	return Policy{
		MinReplicas:            1,
		MaxReplicas:            50,
		MaxStepUp:              10,
		MaxStepDown:            2,
		StartupTime:            150 * time.Second,
		Tolerance:              0.05,
		ScaleDownBand:          0.1,
		ScaleDownStabilization: 300 * time.Second,
		ScaleUpCooldown:        0,
		ScaleDownCooldown:      120 * time.Second,
		LatencySLOMs:           0,
		ErrorRatioLimit:        0.05,
		BreachScaleRatio:       0.2,
		Signals: map[string]SignalPolicy{
			schemas.SignalCPU:     {ExpectRate: 0.7, Capacity: 1},
			schemas.SignalGPUUtil: {ExpectRate: 0.7, Capacity: 100},
		},
	}
}

// HorizonMinutes is the forecast horizon one-minute forecasts are read
// to: start-up plus one step (the replicas decided now serve until those
// decided on the next forecast are ready), 150 s → 4 min. At least 1.
// Decide reports the horizon it actually used (five-minute forecasts
// reach further).
func (p Policy) HorizonMinutes() int {
	m := int(math.Ceil(p.StartupTime.Minutes() + 1 - 1e-9))
	if m < 1 {
		m = 1
	}
	return m
}

// Validate names the first bad field.
func (p Policy) Validate() error {
	if p.MinReplicas < 0 {
		return errors.New("min_replicas: must not be negative")
	}
	if p.MaxReplicas < 1 || p.MaxReplicas < p.MinReplicas {
		return fmt.Errorf("max_replicas: %d must be ≥ 1 and ≥ min_replicas %d", p.MaxReplicas, p.MinReplicas)
	}
	if p.MaxStepUp < 1 || p.MaxStepDown < 1 {
		return errors.New("max_step_up and max_step_down: must be at least 1")
	}
	if p.StartupTime < 0 || p.ScaleDownStabilization < 0 || p.ScaleUpCooldown < 0 || p.ScaleDownCooldown < 0 {
		return errors.New("startup_time, scale_down_stabilization and cooldowns: must not be negative")
	}
	if p.Tolerance < 0 || p.Tolerance >= 1 {
		return fmt.Errorf("tolerance: %g must be in [0, 1)", p.Tolerance)
	}
	if p.ScaleDownBand < 0 || p.ScaleDownBand >= 1 {
		return fmt.Errorf("scale_down_band: %g must be in [0, 1)", p.ScaleDownBand)
	}
	if p.LatencySLOMs < 0 || p.ErrorRatioLimit < 0 || p.BreachScaleRatio < 0 {
		return errors.New("latency_slo_ms, error_ratio_limit and breach_scale_ratio: must not be negative")
	}
	if len(p.Signals) == 0 {
		return errors.New("signals: at least one demand signal is required")
	}
	for _, name := range sortedKeys(p.Signals) {
		s := p.Signals[name]
		if s.ExpectRate <= 0 || s.ExpectRate > 1 {
			return fmt.Errorf("signals.%s.expect_rate: %g must be in (0, 1]", name, s.ExpectRate)
		}
		if s.Capacity <= 0 {
			return fmt.Errorf("signals.%s.capacity: %g must be positive", name, s.Capacity)
		}
	}
	return nil
}

// Clone returns a deep copy (Signals is a map).
func (p Policy) Clone() Policy {
	q := p
	q.Signals = make(map[string]SignalPolicy, len(p.Signals))
	for k, v := range p.Signals {
		q.Signals[k] = v
	}
	return q
}

// Annotation keys a Deployment or StatefulSet may carry to override its
// policy. Per-signal keys end in the signal name, e.g.
// ebbflow.io/expect-rate-qps: "0.6", ebbflow.io/capacity-qps: "120".
const (
	AnnotationPrefix           = "ebbflow.io/"
	AnnotationMinReplicas      = AnnotationPrefix + "min-replicas"
	AnnotationMaxReplicas      = AnnotationPrefix + "max-replicas"
	AnnotationMaxStepUp        = AnnotationPrefix + "max-step-up"
	AnnotationMaxStepDown      = AnnotationPrefix + "max-step-down"
	AnnotationStartupTime      = AnnotationPrefix + "startup-time"
	AnnotationLatencySLOMs     = AnnotationPrefix + "latency-slo-ms"
	AnnotationErrorRatioLimit  = AnnotationPrefix + "error-ratio-limit"
	AnnotationStabilization    = AnnotationPrefix + "scale-down-stabilization"
	AnnotationScaleDownBand    = AnnotationPrefix + "scale-down-band"
	AnnotationExpectRatePrefix = AnnotationPrefix + "expect-rate-"
	AnnotationCapacityPrefix   = AnnotationPrefix + "capacity-"
	// AnnotationDisabled "true" turns ebbflow scaling off for the object.
	AnnotationDisabled = AnnotationPrefix + "scaling-disabled"
)

// PolicyFromAnnotations applies an object's ebbflow.io/ annotations on top
// of base. Unknown ebbflow.io/ keys are ignored (the actuator writes its
// own); a malformed value is an error naming the key, and the caller keeps
// base. A signal that gets only an expect-rate inherits base's capacity.
func PolicyFromAnnotations(base Policy, ann map[string]string) (Policy, error) {
	p := base.Clone()
	for _, k := range sortedKeys(ann) {
		v := strings.TrimSpace(ann[k])
		var err error
		switch {
		case k == AnnotationMinReplicas:
			p.MinReplicas, err = parseInt32(v)
		case k == AnnotationMaxReplicas:
			p.MaxReplicas, err = parseInt32(v)
		case k == AnnotationMaxStepUp:
			p.MaxStepUp, err = parseInt32(v)
		case k == AnnotationMaxStepDown:
			p.MaxStepDown, err = parseInt32(v)
		case k == AnnotationStartupTime:
			p.StartupTime, err = time.ParseDuration(v)
		case k == AnnotationStabilization:
			p.ScaleDownStabilization, err = time.ParseDuration(v)
		case k == AnnotationScaleDownBand:
			p.ScaleDownBand, err = strconv.ParseFloat(v, 64)
		case k == AnnotationLatencySLOMs:
			p.LatencySLOMs, err = strconv.ParseFloat(v, 64)
		case k == AnnotationErrorRatioLimit:
			p.ErrorRatioLimit, err = strconv.ParseFloat(v, 64)
		case strings.HasPrefix(k, AnnotationExpectRatePrefix):
			sig := strings.TrimPrefix(k, AnnotationExpectRatePrefix)
			sp := p.Signals[sig]
			sp.ExpectRate, err = strconv.ParseFloat(v, 64)
			if sp.Capacity == 0 {
				sp.Capacity = defaultCapacity(sig)
			}
			p.Signals[sig] = sp
		case strings.HasPrefix(k, AnnotationCapacityPrefix):
			sig := strings.TrimPrefix(k, AnnotationCapacityPrefix)
			sp := p.Signals[sig]
			sp.Capacity, err = strconv.ParseFloat(v, 64)
			if sp.ExpectRate == 0 {
				sp.ExpectRate = 0.7
			}
			p.Signals[sig] = sp
		default:
			continue
		}
		if err != nil {
			return base, fmt.Errorf("annotation %s=%q: %w", k, v, err)
		}
	}
	if err := p.Validate(); err != nil {
		return base, fmt.Errorf("annotations: %w", err)
	}
	return p, nil
}

func defaultCapacity(signal string) float64 {
	if signal == schemas.SignalGPUUtil {
		return 100
	}
	return 1
}

func parseInt32(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	return int32(n), err
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
