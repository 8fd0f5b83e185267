package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// genScaleDecision draws scale decisions around the schema's boundaries:
// most draws are valid, others break one or more constraints (empty
// strings, out-of-enum kinds and sources, negative counts, expect_rate at
// and below 0, null demands).
func genScaleDecision(t *rapid.T) ScaleDecision {
	str := func(label string) string { return pick(t, label, []string{"x", "é", "svc-1"}, []string{""}) }
	i32 := func(label string) int32 {
		return pick(t, label, []int32{0, 1, 3, 100, math.MaxInt32}, []int32{-1, math.MinInt32})
	}
	d := ScaleDecision{
		ID:         str("id"),
		Kind:       pick(t, "kind", []string{"scale"}, []string{"nodes", ""}),
		Seq:        pick(t, "seq", []int64{1, 2, math.MaxInt64}, []int64{0, -1, math.MinInt64}),
		Entity:     rapid.SampledFrom([]string{"svc/a/b", ""}).Draw(t, "entity"),
		AtMs:       rapid.Int64().Draw(t, "at"),
		ExpiresMs:  rapid.Int64().Draw(t, "expires"),
		From:       i32("from"),
		To:         i32("to"),
		DryRun:     rapid.Bool().Draw(t, "dry"),
		DecidedBy:  rapid.SampledFrom([]string{"autoscale", ""}).Draw(t, "by"),
		ForecastID: rapid.SampledFrom([]string{"", "f1"}).Draw(t, "fid"),
		Target: Target{Cluster: str("cluster"), Namespace: str("ns"), Name: str("name"),
			Kind: pick(t, "tkind", []string{"Deployment", "StatefulSet"}, []string{"Pod", "deployment", ""})},
		Reason: Reason{Summary: str("summary"), Formula: rapid.SampledFrom([]string{"", "ceil(x)"}).Draw(t, "formula"),
			Guard:          rapid.SampledFrom([]string{"", "max_replicas"}).Draw(t, "guard"),
			HorizonMinutes: pick(t, "horizon", []int{0, 3, 10}, []int{-1, math.MinInt})},
	}
	switch rapid.IntRange(0, 9).Draw(t, "demands-shape") {
	case 0:
		d.Reason.Demands = nil
	case 1:
		d.Reason.Demands = []SignalDemand{}
	default:
		n := rapid.IntRange(1, 3).Draw(t, "n-demands")
		for i := 0; i < n; i++ {
			d.Reason.Demands = append(d.Reason.Demands, SignalDemand{
				Signal:     rapid.SampledFrom([]string{"qps", ""}).Draw(t, "signal"),
				Current:    rapid.Float64().Draw(t, "current"),
				Predicted:  rapid.Float64().Draw(t, "predicted"),
				Used:       rapid.Float64().Draw(t, "used"),
				ExpectRate: pick(t, "expect", []float64{0.5, 1, 5e-324, 1e300}, []float64{0, math.Copysign(0, -1), -1, math.NaN(), math.Inf(1)}),
				Desired:    i32("desired"),
				Source:     pick(t, "source", []string{"forecast", "reactive", "fallback"}, []string{"Forecast", ""}),
			})
		}
	}
	if rapid.Bool().Draw(t, "has-inputs") {
		d.Reason.Inputs = map[string]float64{"latency_p99_ms": rapid.Float64().Draw(t, "input"), "": 1}
	}
	return d
}

// pick draws one of good (9 times in 10) or one of bad.
func pick[T any](t *rapid.T, label string, good, bad []T) T {
	if rapid.IntRange(0, 9).Draw(t, label+"-bad") == 0 {
		return rapid.SampledFrom(bad).Draw(t, label)
	}
	return rapid.SampledFrom(good).Draw(t, label)
}

// TestTypedValidateMatchesSchema: for every decision json.Marshal can
// encode, ScaleDecision.Validate accepts exactly what the JSON Schema
// accepts, and Marshal (which uses the typed check) refuses exactly the
// documents the schema refuses.
func TestTypedValidateMatchesSchema(t *testing.T) {
	var accepted, rejected, unencodable int
	for range 10 { // 10 × rapid's default 100 cases, each run with its own seed
		rapid.Check(t, func(t *rapid.T) {
			d := genScaleDecision(t)
			doc, jerr := json.Marshal(d)
			if jerr != nil {
				// NaN or ±Inf: json cannot carry it; Marshal must fail too.
				if _, err := Marshal(d); err == nil {
					t.Fatalf("Marshal accepted a decision json.Marshal refuses (%v)", jerr)
				}
				unencodable++
				return
			}
			schemaErr := Validate(d.EventType(), doc)
			typedErr := d.Validate()
			if (schemaErr == nil) != (typedErr == nil) {
				t.Fatalf("disagree on %s\n  JSON Schema: %v\n  typed: %v", doc, schemaErr, typedErr)
			}
			if typedErr != nil {
				var ve *ValidationError
				if !errors.As(typedErr, &ve) || ve.Field == "" {
					t.Fatalf("typed error %v is not a *ValidationError naming the field", typedErr)
				}
				rejected++
			} else {
				accepted++
			}
			if _, err := Marshal(d); (err == nil) != (schemaErr == nil) {
				t.Fatalf("Marshal error %v, JSON Schema error %v", err, schemaErr)
			}
		})
	}
	t.Logf("accepted %d, rejected %d, not encodable %d", accepted, rejected, unencodable)
	if accepted == 0 || rejected == 0 {
		t.Errorf("generator covered accepted %d, rejected %d: both must occur", accepted, rejected)
	}
}

// Mutating one field of a valid decision to each value the schema refuses
// is rejected by both checks, naming the same field.
func TestTypedValidateMutations(t *testing.T) {
	valid := func() ScaleDecision {
		return ScaleDecision{ID: "d1", Kind: "scale", Seq: 1, Entity: "svc/ns/a", From: 1, To: 2, DecidedBy: "autoscale",
			Target: Target{Cluster: "c", Namespace: "ns", Kind: "Deployment", Name: "a"},
			Reason: Reason{Summary: "up", HorizonMinutes: 3, Demands: []SignalDemand{{Signal: "qps", ExpectRate: 1, Desired: 2, Source: "forecast"}}}}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid decision refused: %v", err)
	}
	muts := map[string]func(*ScaleDecision){
		"/id":                           func(d *ScaleDecision) { d.ID = "" },
		"/kind":                         func(d *ScaleDecision) { d.Kind = "nodes" },
		"/seq":                          func(d *ScaleDecision) { d.Seq = 0 },
		"/target/cluster":               func(d *ScaleDecision) { d.Target.Cluster = "" },
		"/target/namespace":             func(d *ScaleDecision) { d.Target.Namespace = "" },
		"/target/kind":                  func(d *ScaleDecision) { d.Target.Kind = "Pod" },
		"/target/name":                  func(d *ScaleDecision) { d.Target.Name = "" },
		"/from":                         func(d *ScaleDecision) { d.From = -1 },
		"/to":                           func(d *ScaleDecision) { d.To = -1 },
		"/reason/summary":               func(d *ScaleDecision) { d.Reason.Summary = "" },
		"/reason/horizon_minutes":       func(d *ScaleDecision) { d.Reason.HorizonMinutes = -1 },
		"/reason/demands":               func(d *ScaleDecision) { d.Reason.Demands = nil },
		"/reason/demands/0/expect_rate": func(d *ScaleDecision) { d.Reason.Demands[0].ExpectRate = 0 },
		"/reason/demands/0/desired":     func(d *ScaleDecision) { d.Reason.Demands[0].Desired = -1 },
		"/reason/demands/0/source":      func(d *ScaleDecision) { d.Reason.Demands[0].Source = "guess" },
	}
	for field, mut := range muts {
		d := valid()
		mut(&d)
		doc, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var se, te *ValidationError
		if !errors.As(Validate(d.EventType(), doc), &se) {
			t.Errorf("%s: JSON Schema accepted %s", field, doc)
			continue
		}
		if !errors.As(d.Validate(), &te) {
			t.Errorf("%s: typed check accepted %s", field, doc)
			continue
		}
		if te.Field != field || se.Field != field {
			t.Errorf("%s: typed check names %s, JSON Schema %s", field, te.Field, se.Field)
		}
	}
}

// BenchmarkMarshalScaleDecision times Marshal of a typical decision with
// the typed check and, in the same run, json.Marshal plus JSON Schema
// validation (what Marshal did before), and reports typed ÷ schema time.
func BenchmarkMarshalScaleDecision(b *testing.B) {
	d := ScaleDecision{ID: "d-123", Kind: "scale", Seq: 42, Entity: "svc/team-1/api", AtMs: 1_700_000_000_000, ExpiresMs: 1_700_000_060_000,
		From: 3, To: 5, DecidedBy: "autoscale", ForecastID: "f-9",
		Target: Target{Cluster: "c1", Namespace: "team-1", Kind: "Deployment", Name: "api"},
		Reason: Reason{Summary: "qps forecast 480/s over 3 min needs 5 replicas", Formula: "ceil(480 / (100 × 0.5)) = 5", HorizonMinutes: 3,
			Demands: []SignalDemand{{Signal: "qps", Current: 310, Predicted: 480, Used: 480, ExpectRate: 0.5, Desired: 5, Source: "forecast"}},
			Inputs:  map[string]float64{"latency_p99_ms": 80, "min_replicas": 1, "max_replicas": 20}}}
	const n = 2000
	var typed, schema time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for j := 0; j < n; j++ {
			if _, err := Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
		typed += time.Since(t0)
		t0 = time.Now()
		for j := 0; j < n; j++ {
			doc, err := json.Marshal(d)
			if err != nil {
				b.Fatal(err)
			}
			if err := Validate(d.EventType(), doc); err != nil {
				b.Fatal(err)
			}
		}
		schema += time.Since(t0)
	}
	b.ReportMetric(float64(typed.Microseconds())/float64(b.N*n), "typed-us/event")
	b.ReportMetric(float64(schema.Microseconds())/float64(b.N*n), "jsonschema-us/event")
	b.ReportMetric(float64(typed)/float64(schema), "ratio-vs-jsonschema")
}

// genWindow draws windows around window.schema.json's boundaries,
// including entity strings the pattern refuses (missing parts, empty
// parts, other prefixes, line breaks, invalid UTF-8).
func genWindow(t *rapid.T) Window {
	w := Window{
		Entity: pick(t, "entity", []string{"svc/c1/ns/api", "node/c1/n-1", "job/c/x", "pool/a/b/c", "svc/c/\xff", "svc/c/é", "svc/c/x/"},
			[]string{"", "svc/c", "svc//x", "pod/c/x", "svc/c/", "svc/c/x\ny", "svc/c/\n", "xsvc/c/x", "svc/c\n/x", "SVC/c/x"}),
		Signal:   pick(t, "signal", []string{"qps", "é"}, []string{""}),
		Kind:     pick(t, "kind", []string{KindGauge, KindCounter}, []string{"Gauge", "histogram", ""}),
		SizeS:    pick(t, "size", []int64{1, 60, math.MaxInt64}, []int64{0, -1, math.MinInt64}),
		StartMs:  rapid.Int64().Draw(t, "start"),
		EndMs:    rapid.Int64().Draw(t, "end"),
		Revision: pick(t, "rev", []int{0, 1, math.MaxInt}, []int{-1, math.MinInt}),
		Count:    pick(t, "count", []int64{1, 7, math.MaxInt64}, []int64{0, -1}),
	}
	nums := []*float64{&w.Sum, &w.Min, &w.Max, &w.Mean, &w.Last, &w.P50, &w.P95, &w.P99}
	for i, f := range nums {
		*f = pick(t, fmt.Sprint("num", i), []float64{0, -1.5, 1e300, 5e-324}, []float64{math.NaN(), math.Inf(-1)})
	}
	if rapid.Bool().Draw(t, "has-rate") {
		r := pick(t, "rate", []float64{0, 2.5, -3}, []float64{math.NaN()})
		w.Rate = &r
	}
	return w
}

// TestTypedWindowValidateMatchesSchema: Window.Validate accepts exactly
// what window.schema.json accepts, for every window json.Marshal encodes.
func TestTypedWindowValidateMatchesSchema(t *testing.T) {
	var accepted, rejected int
	for range 10 {
		rapid.Check(t, func(t *rapid.T) {
			w := genWindow(t)
			doc, jerr := json.Marshal(w)
			if jerr != nil {
				if _, err := Marshal(w); err == nil {
					t.Fatalf("Marshal accepted a window json.Marshal refuses (%v)", jerr)
				}
				return
			}
			schemaErr := Validate(w.EventType(), doc)
			typedErr := w.Validate()
			if (schemaErr == nil) != (typedErr == nil) {
				t.Fatalf("disagree on %s\n  JSON Schema: %v\n  typed: %v", doc, schemaErr, typedErr)
			}
			if typedErr != nil {
				// With several violations the schema validator lists them in
				// no fixed order: the typed check's field must be among them.
				var ve *ValidationError
				if !errors.As(typedErr, &ve) || !namesField(schemaErr.(*ValidationError), ve.Field) {
					t.Fatalf("typed error %v names a field JSON Schema error %v does not", typedErr, schemaErr)
				}
				rejected++
			} else {
				accepted++
			}
		})
	}
	t.Logf("accepted %d, rejected %d", accepted, rejected)
	if accepted == 0 || rejected == 0 {
		t.Errorf("generator covered accepted %d, rejected %d: both must occur", accepted, rejected)
	}
}

func namesField(e *ValidationError, field string) bool {
	for _, a := range e.All {
		if strings.HasPrefix(a, field+": ") {
			return true
		}
	}
	return false
}
