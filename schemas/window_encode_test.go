package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestAppendWindowJSONMatchesMarshal: for random windows (the schema's
// boundary values, any float64 bit pattern, any string incl. control
// characters, HTML characters, invalid UTF-8 and U+2028), AppendWindowJSON
// writes exactly json.Marshal's bytes, and fails exactly when it fails.
func TestAppendWindowJSONMatchesMarshal(t *testing.T) {
	anyFloat := rapid.OneOf(rapid.Float64(), rapid.Map(rapid.Uint64(), math.Float64frombits),
		rapid.SampledFrom([]float64{0, math.Copysign(0, -1), 1e-6, 9.999999e-7, 1e21, 1e20, -1e21, 5e-324, math.MaxFloat64, 1e-7, 123456789.125}))
	anyString := rapid.OneOf(rapid.String(), rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) }),
		rapid.SampledFrom([]string{"svc/c/ns/a", "a<b>&c", "\u2028", "\xff", "é", "\"q\"", "back\\slash", "\x7f", ""}))
	for range 5 {
		rapid.Check(t, func(t *rapid.T) {
			w := genWindow(t)
			if rapid.Bool().Draw(t, "any-strings") {
				w.Entity, w.Signal, w.Kind = anyString.Draw(t, "entity"), anyString.Draw(t, "signal"), anyString.Draw(t, "kind")
			}
			for i, f := range []*float64{&w.Sum, &w.Min, &w.Max, &w.Mean, &w.Last, &w.P50, &w.P95, &w.P99} {
				if rapid.Bool().Draw(t, "any-float") {
					*f = anyFloat.Draw(t, "f"+string(rune('0'+i)))
				}
			}
			if w.Rate != nil && rapid.Bool().Draw(t, "any-rate") {
				r := anyFloat.Draw(t, "rate")
				w.Rate = &r
			}
			want, werr := json.Marshal(w)
			got, gerr := AppendWindowJSON(nil, &w)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("json.Marshal error %v, AppendWindowJSON error %v", werr, gerr)
			}
			if werr == nil && !bytes.Equal(got, want) {
				t.Fatalf("AppendWindowJSON\n  %s\njson.Marshal\n  %s", got, want)
			}
		})
	}
}

func BenchmarkAppendWindowJSON(b *testing.B) {
	r := 0.5
	w := Window{Entity: "svc/c1/ns/api", Signal: "qps", Kind: KindCounter, SizeS: 60, StartMs: 1_700_000_000_000,
		EndMs: 1_700_000_060_000, Count: 4, Sum: 10.25, Min: 1, Max: 4, Mean: 2.5625, Last: 4, P50: 2.5, P95: 4, P99: 4, Rate: &r}
	var buf []byte
	b.Run("append", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf, _ = AppendWindowJSON(buf[:0], &w)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf, _ = json.Marshal(w)
		}
	})
}

// TestAppendScaleDecisionJSONMatchesMarshal: for random decisions (every
// constraint's boundary, any float64 bit pattern in demands and inputs,
// any strings, nil and empty demands and inputs, map keys needing escapes)
// AppendScaleDecisionJSON writes exactly json.Marshal's bytes, and fails
// exactly when it fails; Marshal returns those bytes.
func TestAppendScaleDecisionJSONMatchesMarshal(t *testing.T) {
	anyFloat := rapid.OneOf(rapid.Float64(), rapid.Map(rapid.Uint64(), math.Float64frombits),
		rapid.SampledFrom([]float64{0, math.Copysign(0, -1), 1e-7, 1e21, 5e-324, math.NaN(), math.Inf(1)}))
	anyString := rapid.OneOf(rapid.String(), rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) }),
		rapid.SampledFrom([]string{"a<b>&c", "\u2028", "\xff", "é", "\"q\"", ""}))
	for range 5 {
		rapid.Check(t, func(t *rapid.T) {
			d := genScaleDecision(t)
			if rapid.Bool().Draw(t, "any-strings") {
				d.ID, d.Target.Name, d.Reason.Summary, d.Reason.Guard, d.ForecastID =
					anyString.Draw(t, "id"), anyString.Draw(t, "name"), anyString.Draw(t, "summary"), anyString.Draw(t, "guard"), anyString.Draw(t, "fid")
			}
			for i := range d.Reason.Demands {
				if rapid.Bool().Draw(t, "any-floats") {
					d.Reason.Demands[i].Current, d.Reason.Demands[i].Used = anyFloat.Draw(t, "cur"), anyFloat.Draw(t, "used")
				}
			}
			switch rapid.IntRange(0, 3).Draw(t, "inputs") {
			case 0:
				d.Reason.Inputs = map[string]float64{}
			case 1:
				d.Reason.Inputs = map[string]float64{anyString.Draw(t, "k1"): anyFloat.Draw(t, "v1"), anyString.Draw(t, "k2"): 2, "b": 1, "a": 0}
			}
			want, werr := json.Marshal(d)
			got, gerr := AppendScaleDecisionJSON(nil, &d)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("json.Marshal error %v, AppendScaleDecisionJSON error %v", werr, gerr)
			}
			if werr != nil {
				return
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendScaleDecisionJSON\n  %s\njson.Marshal\n  %s", got, want)
			}
			if m, err := Marshal(d); err == nil && !bytes.Equal(m, want) {
				t.Fatalf("Marshal\n  %s\njson.Marshal\n  %s", m, want)
			}
		})
	}
}

// TestAppendJSONStringMatchesMarshal: appendJSONString writes exactly what
// json.Marshal writes for any string: arbitrary bytes (invalid UTF-8), every
// ASCII byte, HTML characters, U+2028/U+2029 and the non-ASCII that
// decision explanations carry.
func TestAppendJSONStringMatchesMarshal(t *testing.T) {
	check := func(t interface{ Fatalf(string, ...any) }, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("appendJSONString(%q)\n  %s\njson.Marshal\n  %s", s, got[1:], want)
		}
	}
	for c := 0; c < 256; c++ {
		check(t, string([]byte{byte(c)}))
		check(t, "a"+string([]byte{byte(c)})+"é")
	}
	for _, s := range []string{"", "plain", "need ⌈7 × 500 / (100 × 0.70)⌉ = 8 → 8", "\u2028\u2029", "a\u2028b", "\xe2\x80", "\xf0\x9f\x98", "😀", "<script>&amp;</script>", "\x00\x1f\x7f", "\ufffd", "\xed\xa0\x80"} {
		check(t, s)
	}
	rapid.Check(t, func(rt *rapid.T) {
		s := rapid.OneOf(rapid.String(), rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) })).Draw(rt, "s")
		check(rt, s)
	})
}

// FuzzAppendJSONString: go test -run '^$' -fuzz FuzzAppendJSONString ./schemas/
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a<b>&c", "\u2028", "\xff", "→ ×", "\"\\\b\f\n\r\t\x01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}

// TestWindowEventIDFormat: the id is entity|signal|size_s|start_ms|r<rev>,
// as fmt writes it, for any values (negative numbers included).
func TestWindowEventIDFormat(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := Window{Entity: rapid.String().Draw(t, "e"), Signal: rapid.String().Draw(t, "s"), SizeS: rapid.Int64().Draw(t, "size"),
			StartMs: rapid.Int64().Draw(t, "start"), Revision: rapid.Int().Draw(t, "rev")}
		if got, want := w.EventID(), fmt.Sprintf("%s|%s|%d|%d|r%d", w.Entity, w.Signal, w.SizeS, w.StartMs, w.Revision); got != want {
			t.Fatalf("EventID %q, want %q", got, want)
		}
	})
}

func TestCompareWindows(t *testing.T) {
	ws := []Window{
		{Entity: "b", Signal: "qps", SizeS: 60, StartMs: 0},
		{Entity: "a", Signal: "qps", SizeS: 60, StartMs: 60_000},
		{Entity: "a", Signal: "qps", SizeS: 60, StartMs: 0},
		{Entity: "a", Signal: "cpu", SizeS: 300, StartMs: 0},
		{Entity: "a", Signal: "qps", SizeS: 15, StartMs: 120_000},
	}
	slices.SortFunc(ws, func(a, b Window) int { return CompareWindows(&a, &b) })
	var got []string
	for _, w := range ws {
		got = append(got, fmt.Sprintf("%s/%s/%d/%d", w.Entity, w.Signal, w.SizeS, w.StartMs))
	}
	want := "[a/cpu/300/0 a/qps/15/120000 a/qps/60/0 a/qps/60/60000 b/qps/60/0]"
	if fmt.Sprint(got) != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if CompareWindows(&ws[0], &ws[0]) != 0 {
		t.Fatal("a window is not equal to itself")
	}
}
