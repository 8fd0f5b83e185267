package features

import (
	"errors"
	"math"
)

// ErrNoValue is returned by [Builder.Row] when the target has no value at
// the origin, so there is nothing to forecast from.
var ErrNoValue = errors.New("features: no value at the origin")

// Row is what a feature row needs to turn model outputs back into values.
type Row struct {
	// Origin is the step of the last closed window.
	Origin int64
	// Current is y at the origin; Scale is the divisor of every target
	// feature and label.
	Current, Scale float64
}

// Value turns a model output (a scaled change) into a forecast value. Load
// signals are never negative, so the result is clamped at zero.
func (r Row) Value(pred float64) float64 { return max(r.Current+r.Scale*pred, 0) }

// Label is the training target for a future value.
func (r Row) Label(future float64) float64 { return (future - r.Current) / r.Scale }

// Builder builds rows for one spec. It keeps scratch space, so it is not
// safe for concurrent use: make one per goroutine (they are cheap).
type Builder struct {
	spec    Spec
	n       int
	recent  []float64 // recent[i] = y[origin−i]
	maxBack int
}

// NewBuilder returns a builder for a valid spec.
func NewBuilder(s Spec) (*Builder, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	mb := s.ScaleSteps
	for _, l := range [][]int{s.Lags, s.Rolling, s.Deltas} {
		for _, k := range l {
			mb = max(mb, k+1)
		}
	}
	return &Builder{spec: s, n: s.NumFeatures(), recent: make([]float64, mb), maxBack: mb}, nil
}

// Spec returns the builder's spec.
func (b *Builder) Spec() Spec { return b.spec }

// NumFeatures is the row length.
func (b *Builder) NumFeatures() int { return b.n }

var nan = math.NaN()

// Row writes the features of src at origin (a step index: window start /
// step) into dst, which must have NumFeatures elements. Missing inputs are
// NaN, XGBoost's missing value.
func (b *Builder) Row(src Source, origin int64, dst []float64) (Row, error) {
	s := &b.spec
	if len(dst) != b.n {
		panic("features: dst has the wrong length")
	}
	y := src.Ring(s.Signal)
	cur := y.At(origin)
	if math.IsNaN(cur) {
		return Row{Origin: origin}, ErrNoValue
	}
	for i := range b.recent {
		b.recent[i] = y.At(origin - int64(i))
	}
	scale := meanOf(b.recent[:s.ScaleSteps])
	if !(scale > 1e-9) {
		scale = 1
	}
	inv := 1 / scale
	row := Row{Origin: origin, Current: cur, Scale: scale}
	j := 0
	put := func(v float64) { dst[j] = v; j++ }

	put(cur * inv)
	for _, k := range s.Lags {
		put(b.recent[k] * inv)
	}
	for _, w := range s.Rolling {
		m, mx, sd := stats(b.recent[:w])
		put(m * inv)
		put(mx * inv)
		put(sd * inv)
	}
	for _, k := range s.Deltas {
		put((cur - b.recent[k]) * inv)
	}
	// Time of the origin window's start, UTC.
	sec := origin * s.StepS
	tod := float64(((sec % 86400) + 86400) % 86400)
	dow := float64((((sec/86400)+3)%7+7)%7) + tod/86400 // 1970-01-01 was a Thursday: Monday = 0
	put(math.Sin(2 * math.Pi * tod / 86400))
	put(math.Cos(2 * math.Pi * tod / 86400))
	put(math.Sin(2 * math.Pi * dow / 7))
	put(math.Cos(2 * math.Pi * dow / 7))
	if s.Seasonal {
		for _, p := range [2]int64{s.DaySteps(), s.WeekSteps()} {
			base := smoothed(y, origin-p, s.SeasonalSmooth)
			put(base * inv)
			for h := 1; h <= s.Horizons; h++ {
				put((smoothed(y, origin-p+int64(h), s.SeasonalSmooth) - base) * inv)
			}
		}
	}
	for _, o := range s.Others {
		r := src.Ring(o)
		oc := r.At(origin)
		osc := 0.0
		cnt := 0
		for i := 0; i < s.ScaleSteps; i++ {
			if v := r.At(origin - int64(i)); !math.IsNaN(v) {
				osc += v
				cnt++
			}
		}
		if cnt == 0 || !(osc/float64(cnt) > 1e-9) {
			put(nan)
			put(nan)
			continue
		}
		osc /= float64(cnt)
		put(oc / osc)
		put((oc - r.At(origin-5)) / osc)
	}
	return row, nil
}

// SeasonalNaive is the baseline that repeats yesterday: y[origin+h−day].
func SeasonalNaive(r *Ring, origin int64, h int, daySteps int64) float64 {
	return r.At(origin + int64(h) - daySteps)
}

func meanOf(xs []float64) float64 {
	sum, n := 0.0, 0
	for _, v := range xs {
		if !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return nan
	}
	return sum / float64(n)
}

func stats(xs []float64) (mean, mx, sd float64) {
	sum, sq, n := 0.0, 0.0, 0
	mx = math.Inf(-1)
	for _, v := range xs {
		if math.IsNaN(v) {
			continue
		}
		sum += v
		sq += v * v
		mx = max(mx, v)
		n++
	}
	if n == 0 {
		return nan, nan, nan
	}
	mean = sum / float64(n)
	sd = math.Sqrt(max(sq/float64(n)-mean*mean, 0))
	return mean, mx, sd
}

func smoothed(r *Ring, center int64, half int) float64 {
	sum, n := 0.0, 0
	for i := center - int64(half); i <= center+int64(half); i++ {
		if v := r.At(i); !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return nan
	}
	return sum / float64(n)
}
