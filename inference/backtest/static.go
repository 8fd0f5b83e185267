package backtest

import "math"

// Static holds the replicas the span's peak needs at the target: the
// provisioning a team without an autoscaler buys. It knows the peak in
// advance (an oracle), which no real static sizing does.
type Static struct {
	n int32
}

// NewStatic returns the static policy for a peak load.
func NewStatic(peak, capacity, target float64) *Static {
	return &Static{n: int32(math.Ceil(peak / (capacity * target)))}
}

// StaticFor returns the static policy for the peak of the series in the
// span cfg scores.
func StaticFor(s *Series, cfg Config) (*Static, error) {
	from, to, err := cfg.span(s)
	if err != nil {
		return nil, err
	}
	return NewStatic(s.Quantile(s.Index(from), s.Index(to-1)+1, 1), cfg.Capacity, cfg.Target), nil
}

// Name implements Policy.
func (s *Static) Name() string { return "static" }

// Decide implements Policy.
func (s *Static) Decide(View) Decision { return Decision{Replicas: s.n, Reason: "static_peak"} }
