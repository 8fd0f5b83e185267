package features

import (
	"math"
	"math/rand/v2"
	"testing"
)

// fixedRing is the ring as it was before it grew on demand: the whole
// capacity allocated up front, NaN-filled on a restart. The growing ring
// must hold and return exactly what it did.
type fixedRing struct {
	buf  []float32
	last int64
	n    int
}

func newFixedRing(capacity int) *fixedRing { return &fixedRing{buf: make([]float32, max(capacity, 1))} }

func (r *fixedRing) slot(step int64) int {
	c := int64(len(r.buf))
	return int(((step % c) + c) % c)
}

func (r *fixedRing) Set(step int64, v float64) bool {
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

func (r *fixedRing) At(step int64) float64 {
	if r.n == 0 || step > r.last || r.last-step >= int64(r.n) {
		return math.NaN()
	}
	return float64(r.buf[r.slot(step)])
}

func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// compareRings checks that g holds what f holds: newest, held span and
// every value in and around the span.
func compareRings(t *testing.T, what string, f *fixedRing, g *Ring) {
	t.Helper()
	newest, ok := g.Newest()
	if ok != (f.n > 0) || g.Held() != f.n || (ok && newest != f.last) {
		t.Fatalf("%s: growing ring newest=%d,%v held=%d, fixed ring newest=%d held=%d", what, newest, ok, g.Held(), f.last, f.n)
	}
	if !ok {
		return
	}
	for s := f.last - int64(len(f.buf)) - 3; s <= f.last+3; s++ {
		if a, b := f.At(s), g.At(s); !same(a, b) {
			t.Fatalf("%s: At(%d) = %v, fixed ring %v", what, s, b, a)
		}
	}
	if g.BufLen() > g.Cap() || g.BufLen() < g.Held() {
		t.Fatalf("%s: buffer %d for %d held of capacity %d", what, g.BufLen(), g.Held(), g.Cap())
	}
}

// TestRingGrowsLikeFixedRing drives a growing ring, a fully allocated one
// and the old fixed ring with the same random steps (in order, gaps,
// revisions, too-old steps, jumps past the capacity, negative steps) and
// checks after every Set that all three hold the same values, including
// after the span wraps around a full ring.
func TestRingGrowsLikeFixedRing(t *testing.T) {
	for _, capacity := range []int{1, 2, 7, 16, 17, 100, 1000} {
		rng := rand.New(rand.NewPCG(uint64(capacity), 42))
		f, g, full := newFixedRing(capacity), NewRing(capacity), NewRingFull(capacity)
		step := int64(rng.IntN(50)) - 25
		for i := range 4000 {
			switch k := rng.IntN(100); {
			case k < 70: // the next step
				step++
			case k < 80: // a gap
				step += int64(1 + rng.IntN(max(capacity/3, 2)))
			case k < 83: // a jump past the capacity
				step += int64(capacity + rng.IntN(capacity+5))
			case k < 95: // a revision or a too-old step
				step -= int64(rng.IntN(capacity + 3))
			default: // stay
			}
			v := float64(rng.IntN(1000)) / 4
			okF, okG, okFull := f.Set(step, v), g.Set(step, v), full.Set(step, v)
			if okF != okG || okF != okFull {
				t.Fatalf("capacity %d, op %d: Set(%d) = %v, full %v, fixed ring %v", capacity, i, step, okG, okFull, okF)
			}
			compareRings(t, "grown", f, g)
			compareRings(t, "full", f, full)
			if nw, ok := g.Newest(); ok {
				step = max(step, nw-int64(capacity)-2) // keep the walk near the ring
			}
		}
		if g.BufLen() != capacity {
			t.Errorf("capacity %d: buffer %d after the ring was full, want exactly the capacity", capacity, g.BufLen())
		}
	}
}

// TestRingBufferFollowsHistory checks the buffer grows with the span held,
// amortised (doubling, so few reallocations), and is exactly the capacity
// once full.
func TestRingBufferFollowsHistory(t *testing.T) {
	const capacity = 7*1440 + 16
	r := NewRing(capacity)
	if r.BufLen() != 0 {
		t.Fatalf("empty ring holds a buffer of %d", r.BufLen())
	}
	grows, prev := 0, 0
	for s := int64(0); s < 2*capacity; s++ {
		r.Set(s, float64(s))
		if r.BufLen() != prev {
			grows++
			prev = r.BufLen()
		}
		if want := min(int(s)+1, capacity); r.Held() != want {
			t.Fatalf("step %d: held %d, want %d", s, r.Held(), want)
		}
		if r.BufLen() > max(2*r.Held(), ringMinBuf) {
			t.Fatalf("step %d: buffer %d for %d held: more than double", s, r.BufLen(), r.Held())
		}
		if s == 59 && r.BufLen() > 64 {
			t.Fatalf("an hour of history holds a buffer of %d steps", r.BufLen())
		}
	}
	if r.BufLen() != capacity {
		t.Fatalf("full ring: buffer %d, want %d", r.BufLen(), capacity)
	}
	if grows > 12 {
		t.Fatalf("buffer reallocated %d times for %d steps: not amortised", grows, capacity)
	}
	for s := int64(capacity); s < 2*capacity; s++ {
		if r.At(s) != float64(s) {
			t.Fatalf("At(%d) = %v after wrap-around", s, r.At(s))
		}
	}
	if !math.IsNaN(r.At(capacity - 1)) {
		t.Fatalf("a step older than the capacity is still held")
	}
}

// TestBuilderRowsGrownEqualFull builds feature rows from growing rings and
// fully allocated ones fed the same windows (with gaps and revisions,
// through and past a week's capacity) and checks they are identical.
func TestBuilderRowsGrownEqualFull(t *testing.T) {
	spec := DefaultSpec("qps", 60, 15, []string{"cpu"})
	b, err := NewBuilder(spec)
	if err != nil {
		t.Fatal(err)
	}
	capacity := spec.Lookback() + 16
	grown := Entity{"qps": NewRing(capacity), "cpu": NewRing(capacity)}
	full := Entity{"qps": NewRingFull(capacity), "cpu": NewRingFull(capacity)}
	rng := rand.New(rand.NewPCG(7, 7))
	rowG, rowF := make([]float64, b.NumFeatures()), make([]float64, b.NumFeatures())
	compared := 0
	for s := int64(0); s < int64(capacity)+3000; s++ {
		if rng.IntN(50) == 0 {
			continue // a gap
		}
		for _, sig := range []string{"qps", "cpu"} {
			v := 100 + 50*math.Sin(float64(s)*2*math.Pi/1440) + float64(rng.IntN(10))
			grown[sig].Set(s, v)
			full[sig].Set(s, v)
			if rng.IntN(20) == 0 { // a revision of an older window
				back := s - int64(rng.IntN(10))
				grown[sig].Set(back, v/2)
				full[sig].Set(back, v/2)
			}
		}
		if s%17 != 0 && s < int64(capacity)-200 {
			continue
		}
		rg, errG := b.Row(grown, s, rowG)
		rf, errF := b.Row(full, s, rowF)
		if (errG == nil) != (errF == nil) || rg != rf {
			t.Fatalf("step %d: row %+v %v, full ring %+v %v", s, rg, errG, rf, errF)
		}
		for i := range rowG {
			if !same(rowG[i], rowF[i]) {
				t.Fatalf("step %d: feature %s = %v, full ring %v", s, spec.Names()[i], rowG[i], rowF[i])
			}
		}
		compared++
	}
	if compared < 1000 {
		t.Fatalf("only %d rows compared", compared)
	}
	if grown["qps"].BufLen() != capacity {
		t.Fatalf("grown ring buffer %d after the run, want the capacity %d", grown["qps"].BufLen(), capacity)
	}
}
