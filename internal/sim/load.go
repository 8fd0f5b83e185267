package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"time"

	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

// LoadFunc gives a service's offered load in requests per second at a
// simulated time since the start of the run. It must be deterministic.
type LoadFunc func(elapsed time.Duration) float64

// Pattern shapes a generated load: a daily profile of two peaks over a
// valley, a weekly shape (quieter weekends), smooth noise and sudden bursts.
// The same Pattern and Seed always give the same load.
type Pattern struct {
	// Peak is the load at the busiest time of a weekday, before noise and bursts.
	Peak float64
	// Valley is the night-time load as a fraction of Peak.
	Valley float64
	// MorningHour and EveningHour place the two daily peaks; EveningWeight
	// scales the evening peak relative to the morning one.
	MorningHour, EveningHour float64
	EveningWeight            float64
	// WidthHours is the standard deviation of each peak.
	WidthHours float64
	// StartHour is the time of day (in the pattern's week, which starts
	// on Monday 00:00) at elapsed zero.
	StartHour float64
	// Noise is the relative amplitude of the smooth noise.
	Noise float64
	// BurstsPerDay is the mean number of sudden bursts a day; each adds
	// BurstSize×Peak that decays over about BurstMinutes.
	BurstsPerDay float64
	BurstSize    float64
	BurstMinutes float64
	// Seed makes noise and bursts reproducible.
	Seed int64
}

// weekly is the relative load of Monday..Sunday.
var weekly = [7]float64{1, 1.02, 1, 0.98, 0.93, 0.7, 0.62}

// Func returns the pattern as a LoadFunc.
func (p Pattern) Func() LoadFunc {
	return func(elapsed time.Duration) float64 {
		h := p.StartHour + elapsed.Hours()
		day := int(math.Floor(h/24)) % 7
		hod := math.Mod(h, 24)
		bump := func(center float64) float64 {
			d := math.Abs(hod - center)
			d = math.Min(d, 24-d)
			return math.Exp(-d * d / (2 * p.WidthHours * p.WidthHours))
		}
		prof := bump(p.MorningHour) + p.EveningWeight*bump(p.EveningHour)
		prof /= math.Max(1, p.EveningWeight)
		base := p.Peak * (p.Valley + (1-p.Valley)*math.Min(prof, 1)) * weekly[day]
		noise := 1 + p.Noise*p.smoothNoise(elapsed)
		return math.Max(0, base*noise+p.Peak*p.bursts(elapsed))
	}
}

// smoothNoise is a sum of incommensurate sinusoids with seeded phases,
// in [-1, 1]: wiggly at minute scale, never white.
func (p Pattern) smoothNoise(elapsed time.Duration) float64 {
	m := elapsed.Minutes()
	periods := []float64{3.7, 11.3, 29.9, 71.1}
	var s float64
	for i, per := range periods {
		ph := unit(p.Seed, "phase", int64(i)) * 2 * math.Pi
		s += math.Sin(2*math.Pi*m/per + ph)
	}
	return s / float64(len(periods))
}

// bursts adds the bursts that started in this hour or the previous two.
// Whether an hour has a burst, when and how big, comes from a hash of the
// seed and the hour, so the load needs no state.
func (p Pattern) bursts(elapsed time.Duration) float64 {
	if p.BurstsPerDay <= 0 || p.BurstSize <= 0 {
		return 0
	}
	hour := int64(math.Floor(elapsed.Hours()))
	var s float64
	for h := hour - 2; h <= hour; h++ {
		if h < 0 || unit(p.Seed, "burst?", h) >= p.BurstsPerDay/24 {
			continue
		}
		startMin := float64(h)*60 + unit(p.Seed, "burst-at", h)*60
		size := p.BurstSize * (0.5 + unit(p.Seed, "burst-size", h))
		dt := elapsed.Minutes() - startMin
		if dt < 0 {
			continue
		}
		// A quick ramp (2 minutes) and an exponential decay.
		ramp := math.Min(1, dt/2)
		s += size * ramp * math.Exp(-dt/math.Max(1, p.BurstMinutes))
	}
	return s
}

// unit hashes (seed, what, i) to [0, 1).
func unit(seed int64, what string, i int64) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%d", seed, what, i)
	// FNV alone barely moves its high bits when only the last byte
	// changes; the splitmix64 finaliser spreads them.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / float64(1<<53)
}

// Trace is a load series read from a CSV file: offsets from the first row
// and values, sorted by time.
type Trace struct {
	// Column is the value column used.
	Column string
	// Offsets are seconds since the first row.
	Offsets []float64
	Values  []float64
}

// preferredColumns are value columns picked by name, in order, when no
// column is named: NASA, Philly (active GPUs), ELB, Azure VM CPU.
var preferredColumns = []string{"number_of_requests", "requests", "qps", "active", "value", "cpu_usage", "count"}

// LoadTrace reads a CSV trace with the one trace reader (trace.ReadPoints,
// whose package doc states the rules: time column first, rows in time
// order, every value a finite number) for replay. The value column is
// column (a name or index; empty: the first of number_of_requests,
// requests, qps, active, value, cpu_usage, count, else the second column).
// Negative values replay as 0. A replay needs two rows or more, spanning
// some time.
func LoadTrace(path, column string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sim: trace: %w", err)
	}
	defer f.Close()
	pts, st, err := trace.ReadPoints(f, trace.Options{ValueCol: column, PreferValueCols: preferredColumns})
	if err != nil {
		return nil, fmt.Errorf("sim: trace %s: %w", path, err)
	}
	if len(pts) < 2 {
		return nil, fmt.Errorf("sim: trace %s: fewer than two rows", path)
	}
	if st.LastMs <= st.FirstMs {
		return nil, fmt.Errorf("sim: trace %s: all rows have the same time", path)
	}
	t := &Trace{Column: st.ValueCol, Offsets: make([]float64, len(pts)), Values: make([]float64, len(pts))}
	for i, p := range pts {
		t.Offsets[i] = float64(p.Ms-st.FirstMs) / 1000
		t.Values[i] = math.Max(0, p.V)
	}
	return t, nil
}

// Duration is the time the trace covers.
func (t *Trace) Duration() time.Duration {
	return time.Duration(t.Offsets[len(t.Offsets)-1] * float64(time.Second))
}

// Quantile returns the q-quantile of the values.
func (t *Trace) Quantile(q float64) float64 {
	v := slices.Clone(t.Values)
	slices.Sort(v)
	return v[int(math.Round(q*float64(len(v)-1)))]
}

// At interpolates linearly at an offset, wrapping around at the end so a
// run longer than the trace replays it again.
func (t *Trace) At(offset time.Duration) float64 {
	d := t.Offsets[len(t.Offsets)-1]
	x := math.Mod(offset.Seconds(), d)
	if x < 0 {
		x += d
	}
	i, found := slices.BinarySearch(t.Offsets, x)
	if found {
		return t.Values[i]
	}
	if i == 0 {
		return t.Values[0]
	}
	if i >= len(t.Offsets) {
		return t.Values[len(t.Values)-1]
	}
	a, b := t.Offsets[i-1], t.Offsets[i]
	f := (x - a) / (b - a)
	return t.Values[i-1]*(1-f) + t.Values[i]*f
}

// Func replays the trace from offset, scaled so that its 99th percentile
// becomes peak requests per second.
func (t *Trace) Func(offset time.Duration, peak float64) LoadFunc {
	q := t.Quantile(0.99)
	if q <= 0 {
		q = 1
	}
	scale := peak / q
	return func(elapsed time.Duration) float64 { return t.At(offset+elapsed) * scale }
}
