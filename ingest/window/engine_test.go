package window

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/schemas"
)

const t0 = int64(1_780_000_040_000) // a minute boundary + 20s

var testSettings = Settings{
	SizesMs: []int64{60_000}, DelayMs: 5_000, LatenessMs: 60_000, StalenessMs: 300_000, IdleMs: 30_000, SketchAccuracy: 0.01,
}

func gauge(entity, pod string, ts int64, v float64) schemas.RawSample {
	return schemas.RawSample{Entity: entity, Signal: "memory", Kind: schemas.KindGauge, Metric: "container_memory_working_set_bytes",
		Labels: []schemas.Label{{Name: "pod", Value: pod}}, TimestampMs: ts, Value: v}
}

func counter(entity, pod string, ts int64, v float64) schemas.RawSample {
	return schemas.RawSample{Entity: entity, Signal: "qps", Kind: schemas.KindCounter, Metric: "nv_inference_request_success",
		Labels: []schemas.Label{{Name: "pod", Value: pod}}, TimestampMs: ts, Value: v}
}

func mustEngine(t testing.TB, set Settings) *engine {
	t.Helper()
	e, err := newEngine(set)
	if err != nil {
		t.Fatal(err)
	}
	e.restore(-1, commitMeta{}, false, 0)
	return e
}

// feed gives each sample its own record and returns everything flushed
// after each record.
func feed(e *engine, off *int64, samples ...schemas.RawSample) (out []schemas.Window, late int) {
	for _, s := range samples {
		r := e.record(*off, []schemas.RawSample{s})
		*off++
		late += len(r.late)
		ws, m, _, _ := e.flush()
		e.commitDone(m)
		out = append(out, ws...)
	}
	return out, late
}

func TestGaugeAggregatesAndWatermark(t *testing.T) {
	e := mustEngine(t, testSettings)
	var off int64
	base := t0 - 20_000 // window [base, base+60s)
	vals := []float64{5, 1, 9, 3}
	var got []schemas.Window
	for i, v := range vals {
		ws, _ := feed(e, &off, gauge("svc/c/n/a", "a-1", base+int64(i)*15_000, v))
		got = append(got, ws...)
	}
	if len(got) != 0 {
		t.Fatalf("window emitted before the watermark passed its end: %+v", got)
	}
	// 64s: watermark = 59s < end (60s); 65s: watermark reaches the end.
	ws, _ := feed(e, &off, gauge("svc/c/n/a", "a-1", base+64_000, 100))
	if len(ws) != 0 {
		t.Fatalf("emitted with watermark before end: %+v", ws)
	}
	ws, _ = feed(e, &off, gauge("svc/c/n/a", "a-1", base+65_000, 100))
	if len(ws) != 1 {
		t.Fatalf("want the first window once the watermark passed its end, got %+v", ws)
	}
	w := ws[0]
	want := schemas.Window{Entity: "svc/c/n/a", Signal: "memory", Kind: "gauge", SizeS: 60, StartMs: base, EndMs: base + 60_000,
		Count: 4, Sum: 18, Min: 1, Max: 9, Mean: 4.5, Last: 3}
	w2 := w
	w2.P50, w2.P95, w2.P99 = 0, 0, 0
	if !reflect.DeepEqual(w2, want) {
		t.Fatalf("window:\n got %+v\nwant %+v", w2, want)
	}
	// DDSketch answers the value at rank floor(q*(n-1)) (numpy's "lower"
	// method) within its relative accuracy: {1,3,5,9} → p50 3, p99 5.
	if math.Abs(w.P50-3) > 0.03 || math.Abs(w.P99-5) > 0.05 {
		t.Fatalf("quantiles off: p50 %v p99 %v", w.P50, w.P99)
	}
	if w.Rate != nil {
		t.Fatal("gauge window has a rate")
	}
	if err := schemas.Validate(w.EventType(), mustJSON(t, w)); err != nil {
		t.Fatalf("emitted window violates its schema: %v", err)
	}
}

func TestCounterRatePerSeriesWithResets(t *testing.T) {
	cases := []struct {
		name string
		// series values at base, +15s, +30s, +45s (window [base, base+60s)),
		// preceded by one sample at base-15s in the window before.
		a, b     []float64
		wantRate float64
	}{
		// increases attributed to the sample's window: a: 10+10+10+10, b: 5*4
		{"monotonic", []float64{0, 10, 20, 30, 40}, []float64{100, 105, 110, 115, 120}, 60.0 / 60},
		// a resets to 0 then grows: 10 + 10 + (reset: 5) + 10 ; b flat
		{"reset", []float64{0, 10, 20, 5, 15}, []float64{7, 7, 7, 7, 7}, 35.0 / 60},
		// b resets to a value above its last: counted as a reset only when it drops
		{"reset to zero", []float64{50, 0, 0, 0, 0}, []float64{0, 1, 2, 3, 4}, 4.0 / 60},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := mustEngine(t, testSettings)
			var off int64
			base := t0 - 20_000
			var out []schemas.Window
			for i := range c.a {
				ts := base + int64(i-1)*15_000
				// The two pods' counters interleave in one entity's stream.
				ws, _ := feed(e, &off, counter("svc/c/n/a", "a-1", ts, c.a[i]), counter("svc/c/n/a", "a-2", ts, c.b[i]))
				out = append(out, ws...)
			}
			ws, _ := feed(e, &off, counter("svc/c/n/a", "a-1", base+70_000, 1e6))
			out = append(out, ws...)
			var w *schemas.Window
			for i := range out {
				if out[i].StartMs == base {
					w = &out[i]
				}
			}
			if w == nil || w.Rate == nil {
				t.Fatalf("no counter window for %d in %+v", base, out)
			}
			if math.Abs(*w.Rate-c.wantRate) > 1e-12 {
				t.Fatalf("rate %v, want %v", *w.Rate, c.wantRate)
			}
			if w.Count != 8 {
				t.Fatalf("count %d, want 8", w.Count)
			}
		})
	}
}

func TestLateDataRevisesThenDeadLetters(t *testing.T) {
	e := mustEngine(t, testSettings)
	var off int64
	base := t0 - 20_000
	feed(e, &off, gauge("svc/c/n/a", "a-1", base+1_000, 1))
	ws, _ := feed(e, &off, gauge("svc/c/n/a", "a-1", base+66_000, 2))
	if len(ws) != 1 || ws[0].Revision != 0 || ws[0].Count != 1 {
		t.Fatalf("want first emission rev 0 count 1, got %+v", ws)
	}
	// Out of order but within the allowed lateness: a revision.
	ws, late := feed(e, &off, gauge("svc/c/n/a", "a-1", base+2_000, 3))
	if late != 0 || len(ws) != 1 || ws[0].Revision != 1 || ws[0].Count != 2 || ws[0].Max != 3 {
		t.Fatalf("want revision 1 with count 2, got %+v (late %d)", ws, late)
	}
	// Move the watermark past end + lateness: the window is dropped.
	feed(e, &off, gauge("svc/c/n/a", "a-1", base+125_000, 4))
	if _, ok := e.st.windows[wkey{"svc/c/n/a", "memory", 60_000, base}]; ok {
		t.Fatal("window kept past its allowed lateness")
	}
	ws, late = feed(e, &off, gauge("svc/c/n/a", "a-1", base+3_000, 5))
	if late != 1 || len(ws) != 0 {
		t.Fatalf("want the sample counted late and nothing emitted, got late %d, %+v", late, ws)
	}
}

func TestOutOfOrderWithinDelayIsNotARevision(t *testing.T) {
	e := mustEngine(t, testSettings)
	var off int64
	base := t0 - 20_000
	// Pods report out of order by up to 4s (< delay 5s).
	order := []int64{3_000, 0, 17_000, 14_000, 31_000, 29_000, 58_000, 56_000, 62_000, 59_500, 66_000}
	var out []schemas.Window
	for i, d := range order {
		ws, late := feed(e, &off, gauge("svc/c/n/a", fmt.Sprintf("p%d", i%2), base+d, float64(d)))
		if late != 0 {
			t.Fatalf("sample at +%d counted late", d)
		}
		out = append(out, ws...)
	}
	if len(out) != 1 || out[0].Revision != 0 || out[0].Count != 9 || out[0].Last != 59_500 {
		t.Fatalf("want one rev-0 window of 9 samples with last=59500, got %+v", out)
	}
}

func TestStaleMarkersAndInvalidValues(t *testing.T) {
	e := mustEngine(t, testSettings)
	base := t0 - 20_000
	recs := []schemas.RawSample{
		gauge("svc/c/n/a", "a-1", base, 1),
		gauge("svc/c/n/a", "a-1", base+1_000, math.Float64frombits(schemas.StaleNaN)),
		gauge("svc/c/n/a", "a-1", base+2_000, math.NaN()),
		gauge("svc/c/n/a", "a-1", base+3_000, math.Inf(1)),
	}
	r := e.record(0, recs)
	if r.accepted != 1 || r.stale != 1 || len(r.invalid) != 2 || len(r.late) != 0 {
		t.Fatalf("accepted %d stale %d invalid %d late %d", r.accepted, r.stale, len(r.invalid), len(r.late))
	}
	e.record(1, []schemas.RawSample{gauge("svc/c/n/a", "a-1", base+70_000, 1)})
	ws, _, _, _ := e.flush()
	if len(ws) != 1 || ws[0].Count != 1 || ws[0].Sum != 1 {
		t.Fatalf("stale markers or invalid values leaked into the window: %+v", ws)
	}
}

func TestIdlePartitionWatermarkAdvances(t *testing.T) {
	e := mustEngine(t, testSettings)
	base := t0 - 20_000
	e.record(0, []schemas.RawSample{gauge("svc/c/n/a", "a-1", base+10_000, 1)})
	if ws, _, _, _ := e.flush(); len(ws) != 0 {
		t.Fatal("emitted too early")
	}
	cases := []struct {
		idleMs   int64
		advanced bool
		emitted  int
	}{
		{10_000, false, 0}, // not idle long enough
		{30_000, true, 0},  // idle: wm = 10s-5s+30s = 35s < 60s
		{55_000, true, 1},  // wm = 60s: the window closes
		{50_000, false, 0}, // never moves back
	}
	for _, c := range cases {
		if got := e.st.idleAdvance(c.idleMs); got != c.advanced {
			t.Fatalf("idle %dms: advanced %v, want %v", c.idleMs, got, c.advanced)
		}
		ws, _, _, _ := e.flush()
		if len(ws) != c.emitted {
			t.Fatalf("idle %dms: emitted %d, want %d", c.idleMs, len(ws), c.emitted)
		}
	}
}

func TestSeveralSizes(t *testing.T) {
	set := testSettings
	set.SizesMs = []int64{15_000, 60_000}
	e := mustEngine(t, set)
	base := t0 - 20_000
	var off int64
	var out []schemas.Window
	for i := int64(0); i < 8; i++ {
		ws, _ := feed(e, &off, gauge("svc/c/n/a", "a-1", base+i*15_000, float64(i)))
		out = append(out, ws...)
	}
	n15, n60 := 0, 0
	for _, w := range out {
		switch w.SizeS {
		case 15:
			n15++
			if w.Count != 1 {
				t.Fatalf("15s window with %d samples", w.Count)
			}
		case 60:
			n60++
			if w.Count != 4 || w.Sum != 6 {
				t.Fatalf("60s window %+v", w)
			}
		}
	}
	if n15 != 6 || n60 != 1 {
		t.Fatalf("emitted %d 15s and %d 60s windows, want 6 and 1", n15, n60)
	}
}

func TestCommitMetaRoundTrip(t *testing.T) {
	for _, m := range []commitMeta{{next: 5, wm: 123, hasWM: true, revFloor: 2}, {next: 0}} {
		got, ok, err := parseCommitMeta(m.String())
		if err != nil || !ok || got != m {
			t.Fatalf("%+v: got %+v %v %v", m, got, ok, err)
		}
	}
	if _, _, err := parseCommitMeta("zz;next=1"); err == nil {
		t.Fatal("unknown version accepted")
	}
	if _, ok, err := parseCommitMeta(""); ok || err != nil {
		t.Fatal("empty metadata must mean none")
	}
}

// stream builds a partition of records: several entities, gauges and
// counters from several pods, out of order within the delay, some late
// samples within the allowed lateness and some beyond it, counter resets.
func stream(rng *rand.Rand, n int) [][]schemas.RawSample {
	var recs [][]schemas.RawSample
	ents := []string{"svc/c/n/a", "svc/c/n/b", "svc/c/n/c"}
	cnt := map[string]float64{}
	for i := 0; i < n; i++ {
		ts := t0 + int64(i)*5_000
		var rec []schemas.RawSample
		ent := ents[i%len(ents)]
		for _, pod := range []string{"p1", "p2"} {
			jit := ts - rng.Int64N(4_000)
			k := ent + pod
			cnt[k] += float64(rng.IntN(50))
			if rng.IntN(40) == 0 {
				cnt[k] = 0 // restart
			}
			rec = append(rec, counter(ent, pod, jit, cnt[k]), gauge(ent, pod, jit, float64(rng.IntN(1000))))
		}
		switch rng.IntN(12) {
		case 0: // late but within allowed lateness
			rec = append(rec, gauge(ent, "p3", ts-40_000, 7))
		case 1: // beyond the allowed lateness
			rec = append(rec, gauge(ent, "p3", ts-200_000, 8))
		}
		recs = append(recs, rec)
	}
	// A far-future record closes everything.
	recs = append(recs, []schemas.RawSample{gauge("svc/c/n/z", "p", t0+int64(n)*5_000+400_000, 1)})
	return recs
}

type driveResult struct {
	emitted []schemas.Window
	late    int
}

// drive runs the engine over recs, committing every flushEvery records;
// crash(i) reports whether the process dies before committing the batch
// that ends at record i. A crash discards everything uncommitted and
// restarts from the committed offset and metadata, as after SIGKILL.
func drive(t *testing.T, set Settings, recs [][]schemas.RawSample, flushEvery int, crash func(i int) bool) driveResult {
	var (
		res        driveResult
		committed  = int64(-1)
		meta       commitMeta
		hasMeta    bool
		e          = mustEngine(t, set)
		pendLate   int
		crashCount int
	)
	for i := e.resumeFrom; i < int64(len(recs)); i++ {
		if e.skip(i) {
			continue
		}
		r := e.record(i, recs[i])
		pendLate += len(r.late)
		if e.batchRecs < flushEvery && i != int64(len(recs))-1 {
			continue
		}
		e.caughtUp()
		ws, m, resume, dirty := e.flush()
		if crash(int(i)) && crashCount < 50 {
			crashCount++
			ne, err := newEngine(set)
			if err != nil {
				t.Fatal(err)
			}
			ne.restore(committed, meta, hasMeta, 0)
			e, pendLate = ne, 0
			i = e.resumeFrom - 1
			continue
		}
		if !dirty {
			continue
		}
		res.emitted = append(res.emitted, ws...)
		res.late += pendLate
		pendLate = 0
		committed, meta, hasMeta = resume, m, true
		e.commitDone(m)
	}
	return res
}

func latest(t *testing.T, ws []schemas.Window) map[wkey]schemas.Window {
	t.Helper()
	out := map[wkey]schemas.Window{}
	ids := map[string]bool{}
	for _, w := range ws {
		if ids[w.EventID()] {
			t.Fatalf("window %s emitted twice", w.EventID())
		}
		ids[w.EventID()] = true
		k := wkey{w.Entity, w.Signal, w.SizeS, w.StartMs}
		if old, ok := out[k]; ok && w.Revision <= old.Revision {
			t.Fatalf("window %s: revision %d after %d", w.EventID(), w.Revision, old.Revision)
		}
		out[k] = w
	}
	return out
}

func TestCrashAndRestartEmitsEachWindowOnce(t *testing.T) {
	twoSizes := testSettings
	twoSizes.SizesMs = []int64{15_000, 60_000}
	for _, set := range []Settings{testSettings, twoSizes} {
		for seed := uint64(1); seed <= 6; seed++ {
			t.Run(fmt.Sprintf("sizes%v/seed%d", set.SizesMs, seed), func(t *testing.T) {
				recs := stream(rand.New(rand.NewPCG(seed, 7)), 400)
				ref := drive(t, set, recs, 7, func(int) bool { return false })
				refLatest := latest(t, ref.emitted)
				if len(refLatest) < 50 || ref.late == 0 {
					t.Fatalf("stream too tame: %d windows, %d late", len(refLatest), ref.late)
				}
				revised := 0
				for _, w := range refLatest {
					if w.Revision > 0 {
						revised++
					}
				}
				if revised == 0 {
					t.Fatal("stream produced no revisions")
				}
				crng := rand.New(rand.NewPCG(seed, 99))
				crashes := 0
				got := drive(t, set, recs, 7, func(int) bool {
					c := crng.IntN(4) == 0
					if c {
						crashes++
					}
					return c
				})
				if crashes < 5 {
					t.Fatalf("only %d crashes", crashes)
				}
				gotLatest := latest(t, got.emitted)
				if len(gotLatest) != len(refLatest) {
					t.Fatalf("after crashes %d windows, without %d", len(gotLatest), len(refLatest))
				}
				for k, w := range refLatest {
					g, ok := gotLatest[k]
					if !ok {
						t.Fatalf("window %+v missing after crashes", k)
					}
					g.Revision, w.Revision = 0, 0
					if !reflect.DeepEqual(g, w) {
						t.Fatalf("window %+v differs after crashes:\n got %+v\nwant %+v", k, g, w)
					}
				}
				if got.late != ref.late {
					t.Fatalf("late samples dead-lettered %d times after crashes, %d without", got.late, ref.late)
				}
			})
		}
	}
}

func mustJSON(t *testing.T, w schemas.Window) []byte {
	t.Helper()
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSampleProblem(t *testing.T) {
	ok := gauge("svc/c/n/a", "p", t0, 1)
	cases := []struct {
		name string
		mut  func(s *schemas.RawSample)
		want string
	}{
		{"valid service", func(*schemas.RawSample) {}, ""},
		{"valid node", func(s *schemas.RawSample) { s.Entity = "node/c/n1" }, ""},
		{"empty signal", func(s *schemas.RawSample) { s.Signal = "" }, "empty signal"},
		{"bad kind", func(s *schemas.RawSample) { s.Kind = "histogram" }, "kind"},
		{"bad entity kind", func(s *schemas.RawSample) { s.Entity = "pod/c/x" }, "entity"},
		{"short entity", func(s *schemas.RawSample) { s.Entity = "svc/c" }, "entity"},
		{"empty cluster", func(s *schemas.RawSample) { s.Entity = "svc//n/a" }, "entity"},
		{"infinite", func(s *schemas.RawSample) { s.Value = math.Inf(-1) }, "infinite"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ok
			c.mut(&s)
			got := sampleProblem(&s)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Fatalf("sampleProblem = %q, want %q", got, c.want)
			}
			if c.want != "" {
				e := mustEngine(t, testSettings)
				if r := e.record(0, []schemas.RawSample{s}); len(r.invalid) != 1 || len(e.st.windows) != 0 {
					t.Fatalf("invalid sample not rejected: %+v", r)
				}
			}
		})
	}
}
