package ingest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// FuzzDecodeWriteRequest feeds arbitrary bodies to both decoders and to
// the HTTP receiver: they must never panic, and the receiver answers a
// body it cannot decode with 400.
func FuzzDecodeWriteRequest(f *testing.F) {
	f.Add(AppendWriteRequestV1(nil, genSeries(3, 6, 1700000000000)), false)
	f.Add(AppendWriteRequestV2(nil, genSeries(3, 6, 1700000000000)), true)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, false)
	f.Add([]byte{0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x01, 0x01}, true)
	f.Fuzz(func(t *testing.T, body []byte, v2 bool) {
		var w WriteRequest
		var err error
		if v2 {
			err = DecodeWriteRequestV2(body, &w)
		} else {
			err = DecodeWriteRequestV1(body, &w)
		}
		if err == nil {
			n := 0
			for _, s := range w.Series {
				n += len(s.Samples)
				if err := checkLabels(s.Labels); err != nil {
					t.Fatalf("decoded a series the decoder should have refused: %v", err)
				}
			}
			if n != w.NumSamples() {
				t.Fatalf("NumSamples %d, series hold %d", w.NumSamples(), n)
			}
		}
		sink := &fakeSink{}
		rc, _ := newTestReceiver(t, sink, nil)
		ct := "application/x-protobuf"
		if v2 {
			ct += ";proto=" + ProtoMsgV2
		}
		req := httptest.NewRequest("POST", "/api/v1/write", bytes.NewReader(snappyBody(body)))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Content-Encoding", "snappy")
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		switch {
		case err != nil && rec.Code != http.StatusBadRequest:
			t.Fatalf("undecodable body answered %d, want 400 (%v)", rec.Code, err)
		case err == nil && rec.Code != http.StatusNoContent:
			t.Fatalf("decodable body answered %d: %s", rec.Code, rec.Body)
		}
		// Raw (not snappy) bytes must be refused as such, not crash.
		req = httptest.NewRequest("POST", "/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Content-Encoding", "snappy")
		rec = httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusNoContent && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("raw body answered %d", rec.Code)
		}
	})
}

// FuzzParseExposition feeds arbitrary exposition to the scrape parser in
// all three formats and maps what it returns: no panics, and every series
// it returns is well-formed.
func FuzzParseExposition(f *testing.F) {
	for _, name := range []string{"triton.txt", "cadvisor.txt", "dcgm.txt", "kube_state_metrics.txt", "node_exporter.txt"} {
		b, err := readFixtureBytes(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	f.Add([]byte("# TYPE c counter\nc_total 1 1.5\n# EOF\n"), uint8(1))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"), uint8(0))
	formats := []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeOpenMetrics), expfmt.NewFormat(expfmt.TypeProtoDelim)}
	mp, err := NewMapper(DefaultRules(), "c1", UnmatchedForward)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, format uint8) {
		series, err := ParseExposition(body, formats[int(format)%len(formats)], map[string]string{"job": "j", "instance": "i:1", "namespace": "ns"}, false, 1)
		if err != nil {
			return
		}
		b := NewBatch()
		for _, s := range series {
			if len(s.Samples) != 1 || lookup(s.Labels, "__name__") == "" {
				t.Fatalf("malformed series %+v", s)
			}
			mp.Map(b, s.Labels, s.Samples)
		}
	})
}
