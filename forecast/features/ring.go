package features

import "math"

// Ring holds the most recent values of one signal of one entity, one slot
// per step, NaN where a step has no window (a gap stays a gap). It stores
// float32: a week of 60 s steps is about 40 KiB per series. The trainer
// uses a Ring as large as its whole history and the forecaster a Ring of
// [Spec.Lookback] steps, so both read values through the same code.
//
// A Ring is not safe for concurrent use.
type Ring struct {
	buf  []float32
	last int64 // step of the newest slot
	n    int   // slots in use, ≤ len(buf)
}

// NewRing returns an empty ring of capacity steps (at least 1).
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]float32, max(capacity, 1))}
}

func (r *Ring) slot(step int64) int {
	c := int64(len(r.buf))
	return int(((step % c) + c) % c)
}

// Set stores the value of a step. A step newer than the newest moves the
// ring forward, leaving NaN in skipped steps; an older step still held is
// overwritten (a revised window). It returns false for a step too old to
// hold.
func (r *Ring) Set(step int64, v float64) bool {
	c := int64(len(r.buf))
	switch {
	case r.n == 0 || step-r.last >= c:
		for i := range r.buf {
			r.buf[i] = float32(math.NaN())
		}
		r.n = 1
		r.last = step
	case step > r.last:
		for s := r.last + 1; s < step; s++ {
			r.buf[r.slot(s)] = float32(math.NaN())
		}
		r.n = int(min(int64(r.n)+step-r.last, c))
		r.last = step
	case r.last-step >= int64(r.n):
		return false
	}
	r.buf[r.slot(step)] = float32(v)
	return true
}

// At returns the value at a step, NaN when the ring does not hold it.
func (r *Ring) At(step int64) float64 {
	if r == nil || r.n == 0 || step > r.last || r.last-step >= int64(r.n) {
		return math.NaN()
	}
	return float64(r.buf[r.slot(step)])
}

// Newest returns the newest step held and whether the ring holds any.
func (r *Ring) Newest() (int64, bool) {
	if r == nil || r.n == 0 {
		return 0, false
	}
	return r.last, true
}

// Held is how many steps, gaps included, the ring spans.
func (r *Ring) Held() int {
	if r == nil {
		return 0
	}
	return r.n
}

// Source gives the ring of each signal of one entity (nil when the
// entity has none).
type Source interface {
	Ring(signal string) *Ring
}

// Entity is a Source: the rings of one entity's signals.
type Entity map[string]*Ring

// Ring implements Source.
func (e Entity) Ring(signal string) *Ring { return e[signal] }
