package forecast

import "math"

// Score is one forecast judged when the window it forecast closed: the
// absolute error of the forecast and of the last value known at its origin
// (the baseline every forecast must beat). Summed over time, the ratio of
// the two is the forecaster's error relative to last value (below 1: better).
type Score struct {
	Entity, Signal string
	// Horizon is how many steps ahead the forecast was made (1…Horizons).
	Horizon int
	// Method is how the forecast was made: "model" or the baseline's name.
	Method          string
	AbsErr          float64
	LastValueAbsErr float64
}

// issued holds the forecasts of one series for its last Horizons+1 origins.
type issued struct {
	origin []int64 // step of the window each slot's forecast was made from; -1 empty
	last   []float64
	method []string
	vals   [][]float64
	scored int64 // newest step whose actual value was scored
}

func newIssued(h int) *issued {
	is := &issued{origin: make([]int64, h+1), last: make([]float64, h+1), method: make([]string, h+1),
		vals: make([][]float64, h+1), scored: math.MinInt64}
	for i := range is.origin {
		is.origin[i] = -1
		is.vals[i] = make([]float64, h)
	}
	return is
}

func slot(step int64, n int) int { return int(((step % int64(n)) + int64(n)) % int64(n)) }

// score judges, once per step, the forecasts issued for step from the
// origins step-1 … step-H, against actual.
func (p *Processor) score(key string, entity, signal string, step int64, actual float64) {
	if p.OnScore == nil {
		return
	}
	is := p.issued[key]
	if is == nil || step <= is.scored {
		return
	}
	is.scored = step
	n := len(is.origin)
	for k := 1; k < n; k++ {
		i := slot(step-int64(k), n)
		if is.origin[i] != step-int64(k) {
			continue
		}
		pred, lv := is.vals[i][k-1], is.last[i]
		if math.IsNaN(pred) || math.IsInf(pred, 0) {
			continue
		}
		p.OnScore(Score{Entity: entity, Signal: signal, Horizon: k, Method: is.method[i],
			AbsErr: math.Abs(pred - actual), LastValueAbsErr: math.Abs(lv - actual)})
	}
}

// remember keeps the forecast made from step so that later windows score it.
func (p *Processor) remember(key string, step int64, last float64, method string, vals []float64) {
	if p.OnScore == nil {
		return
	}
	is := p.issued[key]
	if is == nil {
		is = newIssued(len(vals))
		p.issued[key] = is
	}
	i := slot(step, len(is.origin))
	is.origin[i], is.last[i], is.method[i] = step, last, method
	copy(is.vals[i], vals)
}
