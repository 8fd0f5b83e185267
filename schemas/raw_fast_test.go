package schemas

import (
	"math"
	"reflect"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/ipc"
)

// TestRawEncoderMatchesArrow: the hand-laid-out stream decodes (with
// Arrow's reader) to exactly what Arrow's own writer's stream decodes to.
func TestRawEncoderMatchesArrow(t *testing.T) {
	samples := []RawSample{
		{Entity: "svc/c1/prod/web", Signal: "qps", Kind: "counter", Metric: "http_requests_total",
			Labels: []Label{{"__name__", "http_requests_total"}, {"code", "200"}, {"pod", "web-1"}}, TimestampMs: 1_700_000_000_000, Value: 12.5},
		{Entity: "svc/c1/prod/web", Signal: "qps", Kind: "counter", Metric: "x", TimestampMs: -5, Value: math.Float64frombits(StaleNaN)},
		{Entity: "svc/c1/prod/web", Signal: "", Kind: "gauge", Metric: "ünïcode", Labels: []Label{{"a", ""}}, TimestampMs: 7, Value: math.Inf(-1)},
	}
	fast := NewRawEncoder()
	slow := NewRawEncoder(ipc.WithLZ4())
	for n := 1; n <= len(samples); n++ {
		for round := 0; round < 2; round++ { // buffers reused
			fv, err := fast.Encode(samples[:n])
			if err != nil {
				t.Fatal(err)
			}
			sv, err := slow.Encode(samples[:n])
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRaw(nil, fv)
			if err != nil {
				t.Fatalf("n=%d: fast stream: %v", n, err)
			}
			want, err := DecodeRaw(nil, sv)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n || !reflect.DeepEqual(bitsOf(got), bitsOf(want)) {
				t.Fatalf("n=%d:\n got %+v\nwant %+v", n, got, want)
			}
		}
	}
}

func bitsOf(s []RawSample) []any {
	var out []any
	for _, x := range s {
		v := x
		v.Value = 0
		out = append(out, v, math.Float64bits(x.Value))
	}
	return out
}

func BenchmarkRawEncode(b *testing.B) {
	s := make([]RawSample, 12)
	for i := range s {
		s[i] = RawSample{Entity: "svc/c1/prod/web", Signal: "qps", Kind: "counter", Metric: "m",
			Labels: make([]Label, 20), TimestampMs: int64(i), Value: 1}
		for j := range s[i].Labels {
			s[i].Labels[j] = Label{"label_name", "label_value"}
		}
	}
	e := NewRawEncoder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := e.Encode(s); err != nil {
			b.Fatal(err)
		}
	}
}
