package model

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// AttrGate is the XGBoost attribute holding a model's promotion verdict
// (JSON of [Verdict]). The registry serves only models whose verdict is
// [Promoted].
const AttrGate = "ebbflow_gate"

// Verdicts.
const (
	Promoted = "promoted"
	Rejected = "rejected"
)

// Reason says which guard decided a verdict.
type Reason string

// Reasons of the promotion gate, one per guard.
const (
	ReasonBeatsLastValue    Reason = "beats_last_value"
	ReasonNoTestFigures     Reason = "no_test_figures"
	ReasonTooFewTestRows    Reason = "too_few_test_rows"
	ReasonLosesToLastValue  Reason = "loses_to_last_value"
	ReasonMissingVerdict    Reason = "missing_verdict"
	ReasonUnreadableVerdict Reason = "unreadable_verdict"
)

// HorizonMetric is one horizon's accuracy with the baselines on the same
// rows (those where the actual and the seasonal-naive value exist).
type HorizonMetric struct {
	Horizon       int     `json:"horizon"`
	N             int     `json:"n"`
	MAE           float64 `json:"mae"`
	SMAPE         float64 `json:"smape"`
	MAELast       float64 `json:"mae_last"`
	SMAPELast     float64 `json:"smape_last"`
	MAESeasonal   float64 `json:"mae_seasonal"`
	SMAPESeasonal float64 `json:"smape_seasonal"`
	RatioLast     float64 `json:"ratio_last"`
	RatioSeasonal float64 `json:"ratio_seasonal"`
	// MAEPlain is the plain lag-only XGBoost trained in the same run
	// (test span only; 0 when absent).
	MAEPlain   float64 `json:"mae_plain,omitempty"`
	RatioPlain float64 `json:"ratio_plain,omitempty"`
}

// UnmarshalJSON accepts null for the float fields (Python writes NaN as
// null), reading them as NaN.
func (h *HorizonMetric) UnmarshalJSON(b []byte) error {
	var raw map[string]*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	get := func(k string) float64 {
		if v, ok := raw[k]; ok && v != nil {
			return *v
		}
		if _, ok := raw[k]; ok {
			return math.NaN()
		}
		return 0
	}
	*h = HorizonMetric{Horizon: int(get("horizon")), N: int(get("n")), MAE: get("mae"), SMAPE: get("smape"),
		MAELast: get("mae_last"), SMAPELast: get("smape_last"), MAESeasonal: get("mae_seasonal"), SMAPESeasonal: get("smape_seasonal"),
		RatioLast: get("ratio_last"), RatioSeasonal: get("ratio_seasonal"), MAEPlain: get("mae_plain"), RatioPlain: get("ratio_plain")}
	return nil
}

// MarshalJSON writes NaN and ±Inf (an undefined ratio) as null.
func (h HorizonMetric) MarshalJSON() ([]byte, error) {
	f := func(v float64) any {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return v
	}
	m := map[string]any{"horizon": h.Horizon, "n": h.N, "mae": f(h.MAE), "smape": f(h.SMAPE),
		"mae_last": f(h.MAELast), "smape_last": f(h.SMAPELast), "mae_seasonal": f(h.MAESeasonal), "smape_seasonal": f(h.SMAPESeasonal),
		"ratio_last": f(h.RatioLast), "ratio_seasonal": f(h.RatioSeasonal)}
	if h.MAEPlain != 0 {
		m["mae_plain"], m["ratio_plain"] = f(h.MAEPlain), f(h.RatioPlain)
	}
	return json.Marshal(m)
}

// Gate is the promotion rule: on the test span (never used to fit or to
// choose), the model's MAE must be at most (1 − MinGain) × last value's at
// every horizon whose lead time the deciders use.
type Gate struct {
	// From and To bound the lead times the deciders act on (3–5 min).
	From, To time.Duration
	// MinGain is the margin by which the model must beat last value; a
	// model within it of last value is noise, not skill.
	MinGain float64
	// MinRows is the fewest test rows per gate horizon to judge on.
	MinRows int
}

// DefaultGate is 3–5 minutes, a 1 % margin and 100 test rows.
func DefaultGate() Gate {
	return Gate{From: 3 * time.Minute, To: 5 * time.Minute, MinGain: 0.01, MinRows: 100}
}

// Validate names the first bad field.
func (g Gate) Validate() error {
	switch {
	case g.From <= 0 || g.To < g.From:
		return fmt.Errorf("gate: from %s and to %s must be positive and ordered", g.From, g.To)
	case g.MinGain < 0 || g.MinGain >= 1:
		return fmt.Errorf("gate: min_gain %g must be in [0,1)", g.MinGain)
	case g.MinRows < 1:
		return fmt.Errorf("gate: min_rows %d must be at least 1", g.MinRows)
	}
	return nil
}

// Horizons are the horizons (steps of stepS, 1..max) whose lead time lies
// in [From, To]; when the step is longer than that range, the first
// horizon at or past From.
func (g Gate) Horizons(stepS int64, maxH int) []int {
	var hs []int
	for k := 1; k <= maxH; k++ {
		lead := time.Duration(int64(k)*stepS) * time.Second
		if lead >= g.From && lead <= g.To {
			hs = append(hs, k)
		}
	}
	if len(hs) == 0 {
		for k := 1; k <= maxH; k++ {
			if time.Duration(int64(k)*stepS)*time.Second >= g.From {
				return []int{k}
			}
		}
		return []int{maxH}
	}
	return hs
}

// Verdict is the gate's judgement of one model, stored in the model
// (attribute ebbflow_gate) and its meta.
type Verdict struct {
	Verdict string `json:"verdict"`
	Reason  Reason `json:"reason"`
	// Horizons are the gate horizons (steps) and RatiosLast the test MAE
	// ratios to last value at them.
	Horizons   []int   `json:"horizons"`
	RatiosLast []Float `json:"ratios_last"`
	MinGain    float64 `json:"min_gain"`
	Detail     string  `json:"detail"`
	JudgedAt   string  `json:"judged_at,omitempty"`
}

// Promoted reports whether the verdict lets the model serve.
func (v Verdict) Promoted() bool { return v.Verdict == Promoted }

// Judge applies the gate to the test figures of a model of horizons
// horizons at step stepS.
func (g Gate) Judge(stepS int64, horizons int, test []HorizonMetric) Verdict {
	hs := g.Horizons(stepS, horizons)
	v := Verdict{Horizons: hs, MinGain: g.MinGain}
	if r, detail := checkFigures(test, hs); r != "" {
		return v.reject(r, detail)
	}
	for _, h := range hs {
		v.RatiosLast = append(v.RatiosLast, Float(test[h-1].RatioLast))
	}
	if r, detail := checkRows(test, hs, g.MinRows); r != "" {
		return v.reject(r, detail)
	}
	if r, detail := checkBeatsLast(test, hs, g.MinGain); r != "" {
		return v.reject(r, detail)
	}
	v.Verdict, v.Reason = Promoted, ReasonBeatsLastValue
	v.Detail = fmt.Sprintf("test MAE ≤ %.3f × last value's at horizons %v: ratios %s", 1-g.MinGain, hs, ratios(v.RatiosLast))
	return v
}

func (v Verdict) reject(r Reason, detail string) Verdict {
	v.Verdict, v.Reason, v.Detail = Rejected, r, detail
	return v
}

// checkFigures: every gate horizon has test figures.
func checkFigures(test []HorizonMetric, hs []int) (Reason, string) {
	for _, h := range hs {
		if h-1 >= len(test) || test[h-1].Horizon != h {
			return ReasonNoTestFigures, fmt.Sprintf("no test figures for horizon %d", h)
		}
	}
	return "", ""
}

// checkRows: enough test rows to tell skill from luck.
func checkRows(test []HorizonMetric, hs []int, minRows int) (Reason, string) {
	for _, h := range hs {
		if test[h-1].N < minRows {
			return ReasonTooFewTestRows, fmt.Sprintf("horizon %d has %d test rows, the gate needs %d", h, test[h-1].N, minRows)
		}
	}
	return "", ""
}

// checkBeatsLast: the model beats last value by the margin at every gate
// horizon (a NaN ratio, a zero last-value error, does not beat it).
func checkBeatsLast(test []HorizonMetric, hs []int, minGain float64) (Reason, string) {
	for _, h := range hs {
		r := test[h-1].RatioLast
		if !(r <= 1-minGain) {
			return ReasonLosesToLastValue, fmt.Sprintf("horizon %d: test MAE %.5g is %.3f × last value's %.5g; the gate needs ≤ %.3f",
				h, test[h-1].MAE, r, test[h-1].MAELast, 1-minGain)
		}
	}
	return "", ""
}

func ratios(rs []Float) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%.3f", r)
	}
	return strings.Join(s, ", ")
}

// ParseVerdict reads a model's ebbflow_gate attribute.
func ParseVerdict(raw string, present bool) (Verdict, Reason, error) {
	if !present {
		return Verdict{}, ReasonMissingVerdict, fmt.Errorf("no %s attribute: the model was not judged by the promotion gate (train it with `ebbflow forecast train`)", AttrGate)
	}
	var v Verdict
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return v, ReasonUnreadableVerdict, fmt.Errorf("%s attribute is not a verdict: %w", AttrGate, err)
	}
	return v, v.Reason, nil
}

// Float is a float64 that encodes NaN and ±Inf (an undefined ratio) as
// JSON null, and reads null back as NaN.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	err := json.Unmarshal(b, &v)
	*f = Float(v)
	return err
}
