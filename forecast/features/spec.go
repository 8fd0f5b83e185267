// Package features turns a series of windows into the feature rows the
// forecast models read. It is the one implementation both sides use: the
// trainer builds its training matrix with it and the forecaster builds each
// serving row with it, so training and serving cannot disagree.
//
// A model carries the [Spec] it was trained with in its XGBoost attributes
// (key [AttrSpec]); the forecaster refuses a model whose spec this package
// does not build ([ParseSpec]).
//
// Everything about the target signal is divided by a scale (the mean of the
// last ScaleSteps values), and the model predicts the change to each horizon
// divided by the same scale. That makes one model serve services whose load
// differs by orders of magnitude, and a model that predicts zero is exactly
// the last-value forecast.
package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// SpecVersion is the only feature-spec version this package builds.
const SpecVersion = "ebbflow.features/v1"

// TargetDeltaOverScale is the only label form: (y[t+h] − y[t]) / scale.
const TargetDeltaOverScale = "delta_over_scale"

// XGBoost attribute keys a trained model carries (booster.set_attr).
const (
	AttrSpec      = "ebbflow_feature_spec"
	AttrModelID   = "ebbflow_model_id"
	AttrVersion   = "ebbflow_model_version"
	AttrSignal    = "ebbflow_signal"
	AttrTrainFrom = "ebbflow_train_from_ms"
	AttrTrainTo   = "ebbflow_train_to_ms"
	AttrMetrics   = "ebbflow_validation"
)

// Spec is the versioned list of features a model reads. It is stored as
// JSON in the model and decides, with [Spec.Names], the column order.
type Spec struct {
	Version string `json:"version"`
	// StepS is the window size the model works at (60 for ebbflow's own
	// windows, 300 for 5-minute traces). Horizons and lags are in steps.
	StepS int64 `json:"step_s"`
	// Signal is the target signal.
	Signal string `json:"signal"`
	// Horizons is how many steps ahead the model predicts (1..Horizons).
	Horizons int `json:"horizons"`
	// Lags are the past values used, in steps before the origin.
	Lags []int `json:"lags"`
	// Rolling are the window lengths (steps) of rolling mean, max and std.
	Rolling []int `json:"rolling"`
	// Deltas are the steps back of y[t] − y[t−k].
	Deltas []int `json:"deltas"`
	// ScaleSteps is how many recent steps the scale averages.
	ScaleSteps int `json:"scale_steps"`
	// Seasonal adds the value one day and one week earlier (smoothed over
	// ±SeasonalSmooth steps) at the origin and at each horizon.
	Seasonal       bool `json:"seasonal"`
	SeasonalSmooth int  `json:"seasonal_smooth"`
	// Others are other signals of the same entity, used as relative level
	// and recent change.
	Others []string `json:"others"`
	// Target is the label form, TargetDeltaOverScale.
	Target string `json:"target"`
}

// DefaultSpec returns the spec ebbflow trains with for a signal at a step.
func DefaultSpec(signal string, stepS int64, horizons int, others []string) Spec {
	return Spec{
		Version:        SpecVersion,
		StepS:          stepS,
		Signal:         signal,
		Horizons:       horizons,
		Lags:           []int{1, 2, 3, 4, 5, 10, 15, 30, 60},
		Rolling:        []int{5, 15, 60},
		Deltas:         []int{1, 3, 5, 15},
		ScaleSteps:     60,
		Seasonal:       true,
		SeasonalSmooth: 2,
		Others:         slices.DeleteFunc(slices.Clone(others), func(s string) bool { return s == signal }),
		Target:         TargetDeltaOverScale,
	}
}

// Validate reports why this package cannot build a spec.
func (s Spec) Validate() error {
	switch {
	case s.Version != SpecVersion:
		return fmt.Errorf("features: spec version %q is not built by this forecaster (it builds %s)", s.Version, SpecVersion)
	case s.Target != TargetDeltaOverScale:
		return fmt.Errorf("features: target %q is not supported (want %s)", s.Target, TargetDeltaOverScale)
	case s.StepS <= 0:
		return fmt.Errorf("features: step_s %d must be positive", s.StepS)
	case s.Signal == "":
		return errors.New("features: signal is empty")
	case s.Horizons < 1 || s.Horizons > 60:
		return fmt.Errorf("features: horizons %d must be 1..60", s.Horizons)
	case s.ScaleSteps < 1:
		return fmt.Errorf("features: scale_steps %d must be at least 1", s.ScaleSteps)
	case s.SeasonalSmooth < 0:
		return fmt.Errorf("features: seasonal_smooth %d must not be negative", s.SeasonalSmooth)
	}
	for _, l := range [][]int{s.Lags, s.Rolling, s.Deltas} {
		for _, k := range l {
			if k < 1 {
				return fmt.Errorf("features: lag, rolling and delta lengths must be at least 1, got %d", k)
			}
		}
	}
	if s.Seasonal && s.DaySteps() <= int64(s.Horizons+s.SeasonalSmooth) {
		return fmt.Errorf("features: step_s %d is too long for daily seasonality", s.StepS)
	}
	return nil
}

// ParseSpec decodes and validates a spec read from a model's attributes.
func ParseSpec(b []byte) (Spec, error) {
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("features: spec is not valid JSON: %w", err)
	}
	return s, s.Validate()
}

// JSON encodes the spec for a model attribute.
func (s Spec) JSON() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// DaySteps is the number of steps in one day.
func (s Spec) DaySteps() int64 { return 86400 / s.StepS }

// WeekSteps is the number of steps in one week.
func (s Spec) WeekSteps() int64 { return 7 * 86400 / s.StepS }

// Lookback is how many steps of history, origin included, a row can read:
// the ring size a server needs per series for full rows.
func (s Spec) Lookback() int {
	m := max(s.ScaleSteps, 1)
	for _, l := range [][]int{s.Lags, s.Rolling, s.Deltas} {
		for _, k := range l {
			m = max(m, k+1)
		}
	}
	if s.Seasonal {
		m = max(m, int(s.WeekSteps())+s.SeasonalSmooth+1)
	}
	return m
}

// Names returns the feature names in column order.
func (s Spec) Names() []string {
	var n []string
	n = append(n, "y_cur")
	for _, k := range s.Lags {
		n = append(n, "y_lag"+strconv.Itoa(k))
	}
	for _, w := range s.Rolling {
		ws := strconv.Itoa(w)
		n = append(n, "y_mean"+ws, "y_max"+ws, "y_std"+ws)
	}
	for _, k := range s.Deltas {
		n = append(n, "y_delta"+strconv.Itoa(k))
	}
	n = append(n, "tod_sin", "tod_cos", "dow_sin", "dow_cos")
	if s.Seasonal {
		for _, p := range []string{"day", "week"} {
			n = append(n, p+"_lvl")
			for h := 1; h <= s.Horizons; h++ {
				n = append(n, p+"_d"+strconv.Itoa(h))
			}
		}
	}
	for _, o := range s.Others {
		n = append(n, o+"_rel", o+"_d5")
	}
	return n
}

// NumFeatures is len(s.Names()).
func (s Spec) NumFeatures() int { return len(s.Names()) }
