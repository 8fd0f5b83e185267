package window

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/ebbflow/ebbflow/schemas"
)

// Settings are the aggregation parameters of one partition's state, in
// milliseconds. They come from Config.
type Settings struct {
	// SizesMs are the tumbling window sizes.
	SizesMs []int64
	// DelayMs is how far the watermark trails the largest event time seen:
	// the out-of-orderness tolerated before a window is first emitted.
	DelayMs int64
	// LatenessMs is how long after its first emission a window still
	// accepts samples (each update is emitted as a new revision).
	LatenessMs int64
	// StalenessMs is the largest gap between two samples of one counter
	// series across which their increase is still counted.
	StalenessMs int64
	// IdleMs is the wall-clock time without records after which the
	// partition's watermark starts advancing with the wall clock.
	IdleMs int64
	// SketchAccuracy is the relative accuracy of the p50/p95/p99 sketch.
	SketchAccuracy float64
}

func (s Settings) maxSizeMs() int64 {
	var m int64
	for _, v := range s.SizesMs {
		m = max(m, v)
	}
	return m
}

// wkey identifies one window of one signal of one entity.
type wkey struct {
	entity, signal string
	size, start    int64
}

// winState is an open (or emitted but still revisable) window.
type winState struct {
	kind string
	// firstOffset is the smallest input offset a restart must re-read to
	// rebuild this window: its own samples and, for counters, the sample
	// preceding each of them in its series.
	firstOffset int64
	count       int64
	sum         float64
	min, max    float64
	last        float64
	lastTs      int64
	increase    float64 // counters: sum of per-series increases
	sketch      *ddsketch.DDSketch
	emitted     bool
	dirty       bool
	rev         int
}

// seriesState is what a counter series keeps between its samples: the
// previous sample, to turn the next one into an increase.
type seriesState struct {
	lastTs     int64
	lastV      float64
	lastOffset int64
}

// Outcome of one sample in Add.
type sampleOutcome int

const (
	outcomeAccepted sampleOutcome = iota
	outcomeStale
	outcomeLate
	outcomeInvalid
	outcomeSkipped // rebuild of a record whose effect is already committed
)

// partitionState holds the windows and watermark of one input partition.
// It is a pure function of the records fed to it (plus the wall clock for
// the idle advance) and is not safe for concurrent use.
type partitionState struct {
	set     Settings
	mapping mapping.IndexMapping
	hseed   maphash.Seed

	hasWM bool
	wm    int64 // watermark, event time in ms
	maxTs int64

	windows map[wkey]*winState
	series  map[uint64]*seriesState
	// revFloor is the largest revision emitted for any window still open
	// at the last commit; windows rebuilt after a restart continue above it.
	revFloor int
}

func newPartitionState(set Settings) (*partitionState, error) {
	m, err := mapping.NewLogarithmicMapping(set.SketchAccuracy)
	if err != nil {
		return nil, fmt.Errorf("sketch_accuracy: %w", err)
	}
	return &partitionState{
		set: set, mapping: m, hseed: maphash.MakeSeed(),
		windows: map[wkey]*winState{}, series: map[uint64]*seriesState{},
	}, nil
}

// seriesKey hashes entity, signal, metric and the full label set. Labels
// arrive sorted by name (the metrics.raw contract).
func (p *partitionState) seriesKey(s *schemas.RawSample) uint64 {
	var h maphash.Hash
	h.SetSeed(p.hseed)
	h.WriteString(s.Entity)
	h.WriteByte(0)
	h.WriteString(s.Signal)
	h.WriteByte(0)
	h.WriteString(s.Metric)
	for _, l := range s.Labels {
		h.WriteByte(0)
		h.WriteString(l.Name)
		h.WriteByte(1)
		h.WriteString(l.Value)
	}
	return h.Sum64()
}

// late reports whether a window ending at end no longer accepts samples.
func (p *partitionState) late(end int64) bool {
	return p.hasWM && end+p.set.LatenessMs <= p.wm
}

// add applies one sample read at offset. In rebuild mode (re-reading
// records whose effects were committed before a restart) a sample whose
// window is already closed for good is skipped silently: it was emitted or
// dead-lettered then. Late samples still advance their counter series, in
// both modes, so that the rebuilt state equals the state before the crash.
func (p *partitionState) add(s *schemas.RawSample, offset int64, rebuild bool) sampleOutcome {
	v := s.Value
	if schemas.IsStale(v) {
		return outcomeStale
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || sampleProblem(s) != "" {
		return outcomeInvalid
	}
	ts := s.TimestampMs
	counter := s.Kind == schemas.KindCounter
	var (
		inc     float64
		hasInc  bool
		prevOff int64 = offset
	)
	if counter {
		k := p.seriesKey(s)
		st := p.series[k]
		switch {
		case st == nil:
			p.series[k] = &seriesState{lastTs: ts, lastV: v, lastOffset: offset}
		case ts > st.lastTs:
			if ts-st.lastTs <= p.set.StalenessMs {
				if v >= st.lastV {
					inc = v - st.lastV
				} else {
					inc = v // counter reset: it restarted from zero
				}
				hasInc = true
				prevOff = st.lastOffset
			}
			st.lastTs, st.lastV, st.lastOffset = ts, v, offset
		}
		// ts <= lastTs: out of order within its own series; it counts in
		// the value aggregates but cannot carry an increase.
	}
	out := outcomeAccepted
	if rebuild {
		out = outcomeSkipped
	}
	lateAny := false
	for _, size := range p.set.SizesMs {
		start := floorDiv(ts, size) * size
		end := start + size
		if p.late(end) {
			lateAny = true
			continue
		}
		k := wkey{s.Entity, s.Signal, size, start}
		w := p.windows[k]
		if w == nil {
			kind := schemas.KindGauge
			if counter {
				kind = schemas.KindCounter
			}
			w = &winState{
				kind: kind, firstOffset: offset, min: v, max: v, lastTs: math.MinInt64,
				sketch: ddsketch.NewDDSketchFromStoreProvider(p.mapping, store.BufferedPaginatedStoreConstructor),
			}
			// Decoded strings are views into the Arrow record's buffers;
			// a key kept for the window's lifetime must not pin the record.
			k.entity, k.signal = strings.Clone(k.entity), strings.Clone(k.signal)
			p.windows[k] = w
		}
		w.firstOffset = min(w.firstOffset, offset, prevOff)
		w.count++
		w.sum += v
		w.min = min(w.min, v)
		w.max = max(w.max, v)
		if ts >= w.lastTs {
			w.last, w.lastTs = v, ts
		}
		_ = w.sketch.Add(v)
		if hasInc {
			w.increase += inc
		}
		if w.emitted && !rebuild {
			w.dirty = true
		}
		if !rebuild {
			out = outcomeAccepted
		}
	}
	if lateAny && !rebuild {
		return outcomeLate
	}
	return out
}

// observe advances the watermark with the largest event time of a record.
// Call it after adding the record's samples, so that a record's own
// samples are judged by the watermark before it.
func (p *partitionState) observe(maxTs int64) bool {
	if maxTs == math.MinInt64 {
		return false
	}
	p.maxTs = max(p.maxTs, maxTs)
	if !p.hasWM {
		p.maxTs = maxTs
	}
	wm := p.maxTs - p.set.DelayMs
	if !p.hasWM || wm > p.wm {
		p.wm, p.hasWM = wm, true
		return true
	}
	return false
}

// idleAdvance moves the watermark of a partition that has had no record for
// idleForMs (wall clock): event time is assumed to go on at wall-clock
// speed from the last data, so the windows of a quiet partition still close.
func (p *partitionState) idleAdvance(idleForMs int64) bool {
	if !p.hasWM || p.set.IdleMs <= 0 || idleForMs < p.set.IdleMs {
		return false
	}
	wm := p.maxTs - p.set.DelayMs + idleForMs
	if wm > p.wm {
		p.wm = wm
		return true
	}
	return false
}

// finishRebuild marks the rebuilt windows that the committed watermark had
// already closed as emitted, at the committed revision floor, so they are
// not emitted again; later updates continue above the floor.
func (p *partitionState) finishRebuild(revFloor int) {
	p.revFloor = revFloor
	for k, w := range p.windows {
		if k.start+k.size <= p.wm {
			w.emitted, w.dirty, w.rev = true, false, revFloor
		}
	}
}

// flush returns the windows to emit now — those the watermark has closed
// and those late data revised — sorted, then forgets windows past their
// allowed lateness and series that no accepted sample can follow any more.
func (p *partitionState) flush() []schemas.Window {
	type due struct {
		k wkey
		w *winState
	}
	var sel []due
	for k, w := range p.windows {
		switch {
		case !w.emitted && p.hasWM && k.start+k.size <= p.wm:
			w.emitted = true
			w.rev = 0
		case w.emitted && w.dirty:
			w.rev++
		default:
			continue
		}
		w.dirty = false
		sel = append(sel, due{k, w})
	}
	// Sorted by key (entity, signal, size, start) before the
	// windows are built: small pairs move, not whole windows.
	slices.SortFunc(sel, func(a, b due) int { return cmpKey(&a.k, &b.k) })
	var out []schemas.Window
	if len(sel) > 0 {
		out = make([]schemas.Window, 0, len(sel))
	}
	for _, d := range sel {
		out = append(out, d.w.window(d.k))
	}
	p.purge()
	return out
}

// cmpKey orders window keys: entity, signal, size, start.
func cmpKey(a, b *wkey) int {
	if c := strings.Compare(a.entity, b.entity); c != 0 {
		return c
	}
	if c := strings.Compare(a.signal, b.signal); c != 0 {
		return c
	}
	if c := cmp.Compare(a.size, b.size); c != 0 {
		return c
	}
	return cmp.Compare(a.start, b.start)
}

func (p *partitionState) purge() {
	p.revFloor = 0
	for k, w := range p.windows {
		if p.late(k.start + k.size) {
			delete(p.windows, k)
			continue
		}
		if w.emitted {
			p.revFloor = max(p.revFloor, w.rev)
		}
	}
	if !p.hasWM {
		return
	}
	// An accepted sample has ts >= wm - lateness - largest size; a series
	// whose last sample is more than the staleness before that can never
	// produce an increase again.
	horizon := p.wm - p.set.LatenessMs - p.set.maxSizeMs() - p.set.StalenessMs
	for k, st := range p.series {
		if st.lastTs < horizon {
			delete(p.series, k)
		}
	}
}

// resumeOffset is the offset a restart must re-read from: the earliest
// input still contributing to a retained window or to a live series, or
// next when nothing is open.
func (p *partitionState) resumeOffset(next int64) int64 {
	o := next
	for _, w := range p.windows {
		o = min(o, w.firstOffset)
	}
	for _, st := range p.series {
		o = min(o, st.lastOffset)
	}
	return o
}

func (w *winState) window(k wkey) schemas.Window {
	out := schemas.Window{
		Entity: k.entity, Signal: k.signal, Kind: w.kind,
		SizeS: k.size / 1000, StartMs: k.start, EndMs: k.start + k.size,
		Revision: w.rev, Count: w.count, Sum: w.sum, Min: w.min, Max: w.max,
		Mean: w.sum / float64(w.count), Last: w.last,
	}
	if qs, err := w.sketch.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99}); err == nil {
		// The sketch answers within its relative accuracy; clamp to the
		// exact range so a quantile never lies outside [min, max].
		out.P50 = clamp(qs[0], w.min, w.max)
		out.P95 = clamp(qs[1], w.min, w.max)
		out.P99 = clamp(qs[2], w.min, w.max)
	}
	if w.kind == schemas.KindCounter {
		r := w.increase / (float64(k.size) / 1000)
		out.Rate = &r
	}
	return out
}

// sampleProblemAt is sampleProblem with the event-time limit of
// recordAt: a sample later than limitMs is more than maxFuture after its
// record was produced.
func sampleProblemAt(s *schemas.RawSample, limitMs int64, maxFuture time.Duration) string {
	if s.TimestampMs > limitMs {
		return fmt.Sprintf("timestamp %d (%s) is more than max_future %s after its record was produced (%s)", s.TimestampMs,
			time.UnixMilli(s.TimestampMs).UTC().Format(time.RFC3339), maxFuture, time.UnixMilli(limitMs-maxFuture.Milliseconds()).UTC().Format(time.RFC3339))
	}
	return sampleProblem(s)
}

// sampleProblem says why a sample cannot make a valid window (the window
// JSON Schema's constraints on what comes from the input), or "".
func sampleProblem(s *schemas.RawSample) string {
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return "value is NaN or infinite"
	}
	if s.Signal == "" {
		return "empty signal"
	}
	if s.Kind != schemas.KindGauge && s.Kind != schemas.KindCounter {
		return fmt.Sprintf("kind %q is not gauge or counter", s.Kind)
	}
	kind, rest, ok := strings.Cut(s.Entity, "/")
	if ok {
		var name string
		name, rest, ok = strings.Cut(rest, "/")
		ok = ok && name != "" && rest != ""
	}
	switch kind {
	case schemas.EntityService, schemas.EntityNode, "job", "pool":
	default:
		ok = false
	}
	if !ok {
		return fmt.Sprintf("entity %q is not <svc|node|job|pool>/<cluster>/<name>", s.Entity)
	}
	return ""
}

// finite reports whether every number of w can be written as JSON.
func finite(w *schemas.Window) bool {
	for _, v := range []float64{w.Sum, w.Min, w.Max, w.Mean, w.Last, w.P50, w.P95, w.P99} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return w.Rate == nil || !(math.IsNaN(*w.Rate) || math.IsInf(*w.Rate, 0))
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// commitMeta is what a transaction commits beside the resume offset, in the
// offset metadata string: the position processing reached (records before
// it are rebuilt on restart, not re-emitted), the watermark, and the
// revision floor.
type commitMeta struct {
	next     int64
	wm       int64
	hasWM    bool
	revFloor int
}

const metaVersion = "ebw1"

func (m commitMeta) String() string {
	wm := "-"
	if m.hasWM {
		wm = strconv.FormatInt(m.wm, 10)
	}
	return fmt.Sprintf("%s;next=%d;wm=%s;rev=%d", metaVersion, m.next, wm, m.revFloor)
}

func parseCommitMeta(s string) (commitMeta, bool, error) {
	if s == "" {
		return commitMeta{}, false, nil
	}
	parts := strings.Split(s, ";")
	if parts[0] != metaVersion {
		return commitMeta{}, false, fmt.Errorf("offset metadata %q: unknown version (want %s)", s, metaVersion)
	}
	var m commitMeta
	for _, kv := range parts[1:] {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "next":
			m.next, err = strconv.ParseInt(v, 10, 64)
		case "wm":
			if v != "-" {
				m.wm, err = strconv.ParseInt(v, 10, 64)
				m.hasWM = true
			}
		case "rev":
			m.revFloor, err = strconv.Atoi(v)
		}
		if err != nil {
			return commitMeta{}, false, fmt.Errorf("offset metadata %q: %s: %w", s, k, err)
		}
	}
	return m, true, nil
}
