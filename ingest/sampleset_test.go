package ingest

import (
	"testing"

	"github.com/ebbflow/ebbflow/schemas"
)

// TestSampleSetCountsSentSamplesNotRows: rows of one sample (a GPU metric
// for its service and its node, a failure counter as qps and error_rate)
// count once, unmapped series not at all, and a ratio rule's recorded
// series is not a sent sample.
func TestSampleSetCountsSentSamplesNotRows(t *testing.T) {
	mp, err := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	if err != nil {
		t.Fatal(err)
	}
	bt := NewBatch()
	for _, s := range genSeries(1000, 20, 1_700_000_000_000) {
		mp.Map(bt, s.Labels, s.Samples)
	}
	set := NewSampleSet(genNames)
	rows := 0
	for _, g := range bt.Groups {
		rows += len(g.Samples)
		set.Add(g.Samples)
		set.Add(g.Samples) // read twice (a resend): still once
	}
	if rows != 1167 || set.Len() != 834 {
		t.Fatalf("rows %d, samples %d; want 1167 rows of 834 samples (166 http_requests_total unmapped)", rows, set.Len())
	}
	set.Add([]schemas.RawSample{{Metric: "ebbflow:nv_inference_request_latency:ms", TimestampMs: 1}})
	set.Add([]schemas.RawSample{{Metric: "nv_inference_request_success", Labels: []schemas.Label{{Name: "pod", Value: "new"}}, TimestampMs: 1}})
	if set.Len() != 835 {
		t.Fatalf("samples %d after a recorded series and one new sample; want 835", set.Len())
	}
}
