package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// slowDecodeWindow is what Unmarshal did for every window before the fast
// path: JSON Schema validation in full, then the strict decode.
func slowDecodeWindow(doc []byte) (Window, error) {
	var w Window
	if err := Validate(w.EventType(), doc); err != nil {
		return Window{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Window{}, fmt.Errorf("schemas: decode %s: %w", w.EventType(), err)
	}
	return w, nil
}

// checkFastWindow asserts the fast path's contract on one document: when
// it accepts, the JSON Schema accepts and the strict decode yields the same
// window; and Unmarshal (fast path, then fallback) agrees with the old path
// on acceptance, value and error text.
func checkFastWindow(t interface {
	Fatalf(string, ...any)
}, doc []byte) (fast bool) {
	var fw Window
	fast = fw.decodeFast(doc)
	slow, slowErr := slowDecodeWindow(doc)
	if fast {
		if slowErr != nil {
			t.Fatalf("fast path accepted %q, the JSON Schema path refuses it: %v", doc, slowErr)
		}
		if !reflect.DeepEqual(fw, slow) {
			t.Fatalf("fast path decoded %q as\n  %+v\nthe strict decode as\n  %+v", doc, fw, slow)
		}
	}
	got, err := Decode[Window](doc)
	if (err == nil) != (slowErr == nil) {
		t.Fatalf("Decode error %v, old path error %v on %q", err, slowErr, doc)
	}
	if err != nil && !sameError(err, slowErr) {
		t.Fatalf("Decode error %q, old path error %q", err, slowErr)
	}
	if err == nil && !reflect.DeepEqual(got, slow) {
		t.Fatalf("Decode %+v, old path %+v on %q", got, slow, doc)
	}
	return fast
}

// sameError: the same error, up to the order in which the JSON Schema
// validator lists several violations and names several properties (it
// varies from run to run): the same fields are named.
func sameError(a, b error) bool {
	var va, vb *ValidationError
	if errors.As(a, &va) && errors.As(b, &vb) {
		fields := func(all []string) []string {
			var out []string
			for _, e := range all {
				f, _, _ := strings.Cut(e, ": ")
				out = append(out, f)
			}
			slices.Sort(out)
			return out
		}
		return va.Type == vb.Type && slices.Equal(fields(va.All), fields(vb.All))
	}
	return a.Error() == b.Error()
}

type kv struct{ k, v string }

// windowFields is w as an ordered list of keys and raw JSON values.
func windowFields(t *rapid.T, w Window) []kv {
	raw := func(x any) string {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatalf("marshal %v: %v", x, err)
		}
		return string(b)
	}
	f := []kv{{"entity", raw(w.Entity)}, {"signal", raw(w.Signal)}, {"kind", raw(w.Kind)}, {"size_s", raw(w.SizeS)},
		{"start_ms", raw(w.StartMs)}, {"end_ms", raw(w.EndMs)}, {"revision", raw(w.Revision)}, {"count", raw(w.Count)},
		{"sum", raw(w.Sum)}, {"min", raw(w.Min)}, {"max", raw(w.Max)}, {"mean", raw(w.Mean)}, {"last", raw(w.Last)},
		{"p50", raw(w.P50)}, {"p95", raw(w.P95)}, {"p99", raw(w.P99)}}
	if w.Rate != nil {
		f = append(f, kv{"rate", raw(*w.Rate)})
	}
	return f
}

// finiteWindow draws a window json.Marshal can encode (valid or not).
func finiteWindow(t *rapid.T) Window {
	w := genWindow(t)
	if _, err := json.Marshal(w); err != nil {
		t.Skip("not encodable")
	}
	return w
}

// TestFastWindowDecodeMatchesSchema mutates encoded windows the way a
// foreign or broken producer could (dropped, repeated, unknown and
// differently cased keys; null, strings, fractions and exponents for
// integers; out-of-range numbers; escapes, control characters and invalid
// UTF-8 in strings; odd whitespace, key order and trailing bytes) and
// checks the fast path never accepts what the JSON Schema refuses and never
// decodes a value the strict decode would not.
func TestFastWindowDecodeMatchesSchema(t *testing.T) {
	var fastN, fallbackN, plainFast, plainN int
	mutations := []func(t *rapid.T, f []kv) []kv{
		func(t *rapid.T, f []kv) []kv { // drop a key
			i := rapid.IntRange(0, len(f)-1).Draw(t, "drop")
			return append(f[:i:i], f[i+1:]...)
		},
		func(t *rapid.T, f []kv) []kv { // repeat a key with another value
			i := rapid.IntRange(0, len(f)-1).Draw(t, "dup")
			return append(f, kv{f[i].k, rapid.SampledFrom([]string{f[i].v, "1", `"x"`, "0"}).Draw(t, "dupv")})
		},
		func(t *rapid.T, f []kv) []kv { // unknown or differently cased key
			k := rapid.SampledFrom([]string{"Entity", "COUNT", "extra", "", "rate ", "p90"}).Draw(t, "key")
			return append(f, kv{k, "1"})
		},
		func(t *rapid.T, f []kv) []kv { // another value for a field
			i := rapid.IntRange(0, len(f)-1).Draw(t, "field")
			f[i].v = rapid.SampledFrom([]string{"null", "true", `"7"`, "7.0", "7.5", "7e0", "1E2", "-0", "0.0", "-1",
				"01", ".5", "1.", "+1", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
				"1e400", "-1e400", "1e-400", "[]", "{}", `"svc/c/x"`, `"svc/c/\u0078"`, `"\u0073vc/c/x"`, "\"svc/c/\x01\"",
				"\"svc/c/\xff\"", `"svc\/c\/x"`, `"gauge"`, `"counter"`, `"é"`, "NaN", "Infinity", "0x10", "1_000"}).Draw(t, "value")
			return f
		},
		func(t *rapid.T, f []kv) []kv { // shuffle the keys
			return rapid.Permutation(f).Draw(t, "perm")
		},
	}
	for range 20 {
		rapid.Check(t, func(t *rapid.T) {
			w := finiteWindow(t)
			f := windowFields(t, w)
			plain := true
			for n := rapid.IntRange(0, 3).Draw(t, "mutations"); n > 0; n-- {
				f = rapid.SampledFrom(mutations).Draw(t, "mutation")(t, f)
				plain = false
			}
			ws := rapid.SampledFrom([]string{"", " ", "\n\t", "\r\n  "}).Draw(t, "ws")
			var b strings.Builder
			b.WriteString(ws + "{")
			for i, e := range f {
				if i > 0 {
					b.WriteString(ws + ",")
				}
				b.WriteString(ws + `"` + e.k + `"` + ws + ":" + ws + e.v)
			}
			b.WriteString(ws + "}" + ws)
			tail := rapid.SampledFrom([]string{"", "", "", "x", "{}", "\x00", "}"}).Draw(t, "tail")
			if tail != "" {
				plain = false
			}
			doc := []byte(b.String() + tail)
			fast := checkFastWindow(t, doc)
			if fast {
				fastN++
			} else {
				fallbackN++
			}
			if plain {
				// An unmutated document: the fast path takes it whenever the
				// schema accepts it and it has no string the fast path leaves
				// to the full decoder (escapes: json.Marshal escapes <, >, &,
				// control characters; invalid UTF-8).
				if _, err := slowDecodeWindow(doc); err == nil && !strings.Contains(string(doc), `\`) {
					plainN++
					if fast {
						plainFast++
					} else {
						t.Fatalf("fast path refused the plain valid document %q", doc)
					}
				}
			}
		})
	}
	t.Logf("fast %d, fallback %d; plain valid documents taken by the fast path %d of %d", fastN, fallbackN, plainFast, plainN)
	if fastN == 0 || fallbackN == 0 || plainN == 0 {
		t.Errorf("generator covered fast %d, fallback %d, plain valid %d: all must occur", fastN, fallbackN, plainN)
	}
}

// FuzzFastWindowDecode: on any bytes, the fast path accepts only documents
// the JSON Schema accepts, with the strict decode's value. `go test` runs
// the seeds; `go test -fuzz FuzzFastWindowDecode ./schemas/` explores.
func FuzzFastWindowDecode(f *testing.F) {
	good := `{"entity":"svc/c1/ns/api","signal":"qps","kind":"counter","size_s":60,"start_ms":1700000000000,"end_ms":1700000060000,` +
		`"revision":0,"count":4,"sum":10,"min":1,"max":4,"mean":2.5,"last":4,"p50":2.5,"p95":4,"p99":4,"rate":0.5}`
	for _, s := range []string{good, strings.Replace(good, `,"rate":0.5`, "", 1), strings.Replace(good, `"count":4`, `"count":4.0`, 1),
		strings.Replace(good, `"count":4`, `"count":null`, 1), strings.Replace(good, `"kind":"counter"`, `"kind":"Counter"`, 1),
		strings.Replace(good, `"svc/`, `"\u0073vc/`, 1), good + " x", " " + good + "\n", `{}`, `[]`, ``,
		strings.Replace(good, `"count":4`, `"count":4,"count":5`, 1), strings.Replace(good, `"entity"`, `"Entity"`, 1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) { checkFastWindow(t, doc) })
}

// BenchmarkDecodeWindow times Decode[Window] of a typical window (the fast
// path) against the full JSON Schema path in the same run.
func BenchmarkDecodeWindow(b *testing.B) {
	r := 0.5
	doc, err := json.Marshal(Window{Entity: "svc/c1/ns/api", Signal: "qps", Kind: KindCounter, SizeS: 60, StartMs: 1_700_000_000_000,
		EndMs: 1_700_000_060_000, Count: 4, Sum: 10, Min: 1, Max: 4, Mean: 2.5, Last: 4, P50: 2.5, P95: 4, P99: 4, Rate: &r})
	if err != nil {
		b.Fatal(err)
	}
	var fastT, slowT int64
	for i := 0; i < b.N; i++ {
		t0 := nanotime()
		for j := 0; j < 1000; j++ {
			if _, err := Decode[Window](doc); err != nil {
				b.Fatal(err)
			}
		}
		t1 := nanotime()
		for j := 0; j < 1000; j++ {
			if _, err := slowDecodeWindow(doc); err != nil {
				b.Fatal(err)
			}
		}
		fastT += t1 - t0
		slowT += nanotime() - t1
	}
	b.ReportMetric(float64(fastT)/float64(b.N*1000)/1000, "fast-us/window")
	b.ReportMetric(float64(slowT)/float64(b.N*1000)/1000, "jsonschema-us/window")
	b.ReportMetric(float64(fastT)/float64(slowT), "ratio-vs-jsonschema")
}

func nanotime() int64 { return time.Now().UnixNano() }
