package xgb

import (
	"errors"
	"math"
	"sort"
	"strings"
)

// objective is what the scorer needs to know about an XGBoost objective: how
// a margin becomes a prediction, and how base_score (stored in output space
// since XGBoost 1.0) becomes the starting margin (XGBoost's ProbToMargin).
type objective struct {
	name         string
	transform    func(margin float64) float64
	probToMargin func(base float64) (float64, error)
}

func identity(x float64) float64 { return x }

func identityMargin(x float64) (float64, error) { return x, nil }

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// logMargin is ProbToMargin for the log-link objectives (poisson, gamma,
// tweedie).
func logMargin(x float64) (float64, error) {
	if !(x > 0) {
		return 0, errors.New("must be positive for a log-link objective")
	}
	return math.Log(x), nil
}

// logitMargin is ProbToMargin for the logistic objectives. XGBoost computes
// -log(1/x - 1) in float32; doing the same keeps margins bit-identical.
func logitMargin(x float64) (float64, error) {
	if !(x > 0 && x < 1) {
		return 0, errors.New("must be in (0,1) for a logistic objective")
	}
	odds := 1/float32(x) - 1
	return -float64(float32(math.Log(float64(odds)))), nil
}

var objectives = map[string]*objective{}

func init() {
	for _, o := range []objective{
		{"reg:squarederror", identity, identityMargin},
		{"reg:linear", identity, identityMargin}, // the pre-1.0 name of reg:squarederror
		{"reg:squaredlogerror", identity, identityMargin},
		{"reg:absoluteerror", identity, identityMargin},
		{"reg:pseudohubererror", identity, identityMargin},
		{"count:poisson", math.Exp, logMargin},
		{"reg:tweedie", math.Exp, logMargin},
		{"reg:gamma", math.Exp, logMargin},
		{"reg:logistic", sigmoid, logitMargin},
		{"binary:logistic", sigmoid, logitMargin},
	} {
		objectives[o.name] = &o
	}
}

func supportedObjectives() string {
	names := make([]string, 0, len(objectives))
	for n := range objectives {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
