package features

import "math"

// Ring holds the most recent values of one signal of one entity, one slot
// per step, NaN where a step has no window (a gap stays a gap). It stores
// float32: a week of 60 s steps is about 40 KiB per series. The trainer
// uses a Ring as large as its whole history and the forecaster a Ring of
// [Spec.Lookback] steps, so both read values through the same code.
//
// A Ring made by [NewRing] grows on demand: its buffer starts small and
// doubles (up to the capacity) when the span of steps it must hold outgrows
// it, so a series with an hour of history costs an hour of slots, not a
// week's. Once the span reaches the capacity the buffer is exactly the
// capacity long and the ring behaves as a fixed ring of that capacity;
// what it holds and returns never depends on the buffer's length.
//
// A Ring is not safe for concurrent use.
type Ring struct {
	buf  []float32
	cap  int   // most steps held; len(buf) grows up to it
	last int64 // step of the newest slot
	n    int   // slots in use, ≤ len(buf) ≤ cap
}

// ringMinBuf is the first buffer length of a growing ring.
const ringMinBuf = 16

// NewRing returns an empty ring of capacity steps (at least 1). Its buffer
// is allocated at the first value and grows with the span held.
func NewRing(capacity int) *Ring {
	return &Ring{cap: max(capacity, 1)}
}

// NewRingFull returns an empty ring of capacity steps (at least 1) with its
// whole buffer allocated up front: for a span known in advance (the
// trainer's history), where growing would only copy.
func NewRingFull(capacity int) *Ring {
	c := max(capacity, 1)
	return &Ring{cap: c, buf: make([]float32, c)}
}

// Cap is the most steps the ring holds.
func (r *Ring) Cap() int { return r.cap }

// BufLen is the length of the ring's buffer, in steps (4 bytes each): what
// the ring costs in memory now.
func (r *Ring) BufLen() int { return len(r.buf) }

func (r *Ring) slot(step int64) int {
	c := int64(len(r.buf))
	return int(((step % c) + c) % c)
}

// reserve makes the buffer at least need (≤ cap) slots long, keeping the
// steps held at their slots in the longer buffer.
func (r *Ring) reserve(need int) {
	if need <= len(r.buf) {
		return
	}
	l := min(max(2*len(r.buf), need, ringMinBuf), r.cap)
	nb := make([]float32, l)
	if r.n > 0 {
		old := r.buf
		for s := r.last - int64(r.n) + 1; s <= r.last; s++ {
			c := int64(len(old))
			nb[int(((s%int64(l))+int64(l))%int64(l))] = old[int(((s%c)+c)%c)]
		}
	}
	r.buf = nb
}

// Set stores the value of a step. A step newer than the newest moves the
// ring forward, leaving NaN in skipped steps; an older step still held is
// overwritten (a revised window). It returns false for a step too old to
// hold.
func (r *Ring) Set(step int64, v float64) bool {
	c := int64(r.cap)
	switch {
	case r.n == 0 || step-r.last >= c:
		// Start over: only the new step is held (slots outside the
		// held span are never read).
		r.n = 0
		r.reserve(1)
		r.n = 1
		r.last = step
	case step > r.last:
		n := int(min(int64(r.n)+step-r.last, c))
		r.reserve(n)
		for s := r.last + 1; s < step; s++ {
			r.buf[r.slot(s)] = float32(math.NaN())
		}
		r.n = n
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
