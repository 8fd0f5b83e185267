package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"

	"github.com/ebbflow/ebbflow/schemas"
)

// genSeries builds n realistic series (names the default rules map, plus
// some they do not) with extra labels so that each has nLabels labels:
// 40 pods of 40 services on 40 nodes, as one Prometheus shard would send.
// genNames are genSeries' metric names, in turn: the default rules write
// DCGM_FI_DEV_GPU_UTIL as two rows (service and node) and
// nv_inference_request_failure as two (qps and error_rate), and map no
// http_requests_total, so 1,000 series give 834 samples in 1,167 rows.
var genNames = []string{"nv_inference_request_success", "container_cpu_usage_seconds_total", "DCGM_FI_DEV_GPU_UTIL",
	"container_memory_working_set_bytes", "nv_inference_request_failure", "http_requests_total"}

func genSeries(n, nLabels int, ts int64) []Series {
	names := genNames
	out := make([]Series, n)
	for i := range out {
		ls := []schemas.Label{
			{Name: "__name__", Value: names[i%len(names)]},
			{Name: "container", Value: "triton"},
			{Name: "instance", Value: fmt.Sprintf("10.0.0.%d:8002", i%40)},
			{Name: "job", Value: "kubernetes-pods"},
			{Name: "namespace", Value: fmt.Sprintf("team-%d", i%40%7)},
			{Name: "pod", Value: fmt.Sprintf("svc%d-7d9f8c6b5d-x2k%02d", i%40, i%97)},
		}
		for j := len(ls); j < nLabels; j++ {
			ls = append(ls, schemas.Label{Name: fmt.Sprintf("zz_label_%02d", j), Value: fmt.Sprintf("value-%d-%d", j, i%13)})
		}
		out[i] = Series{Labels: ls, Samples: []Sample{{TimestampMs: ts, Value: float64(i) * 1.5}}}
	}
	return out
}

func snappyBody(raw []byte) []byte { return snappy.Encode(nil, raw) }

func TestDecodeRoundTrip(t *testing.T) {
	stale := math.Float64frombits(schemas.StaleNaN)
	in := []Series{
		{Labels: []schemas.Label{{Name: "__name__", Value: "a"}, {Name: "x", Value: "1"}},
			Samples: []Sample{{TimestampMs: 1700000000123, Value: 0.1}, {TimestampMs: 1700000000124, Value: stale}, {TimestampMs: -5, Value: math.Inf(-1)}}},
		{Labels: []schemas.Label{{Name: "__name__", Value: "b"}}, Samples: []Sample{{TimestampMs: math.MaxInt64, Value: math.SmallestNonzeroFloat64}}},
		{Labels: []schemas.Label{{Name: "__name__", Value: "c"}, {Name: "z", Value: "ü"}}},
	}
	for _, ver := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", ver), func(t *testing.T) {
			var raw []byte
			var w WriteRequest
			var err error
			if ver == 1 {
				raw = AppendWriteRequestV1(nil, in)
				err = DecodeWriteRequestV1(raw, &w)
			} else {
				raw = AppendWriteRequestV2(nil, in)
				err = DecodeWriteRequestV2(raw, &w)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(w.Series) != len(in) {
				t.Fatalf("got %d series, want %d", len(w.Series), len(in))
			}
			for i := range in {
				if fmt.Sprint(w.Series[i].Labels) != fmt.Sprint(in[i].Labels) {
					t.Errorf("series %d labels %v, want %v", i, w.Series[i].Labels, in[i].Labels)
				}
				if len(w.Series[i].Samples) != len(in[i].Samples) {
					t.Fatalf("series %d: %d samples, want %d", i, len(w.Series[i].Samples), len(in[i].Samples))
				}
				for j, s := range in[i].Samples {
					g := w.Series[i].Samples[j]
					if g.TimestampMs != s.TimestampMs || math.Float64bits(g.Value) != math.Float64bits(s.Value) {
						t.Errorf("series %d sample %d = %+v, want %+v (bit-exact)", i, j, g, s)
					}
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := AppendWriteRequestV1(nil, genSeries(3, 6, 1))
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"truncated", good[:len(good)-3], "malformed"},
		{"no name", AppendWriteRequestV1(nil, []Series{{Labels: []schemas.Label{{Name: "a", Value: "b"}}}}), "__name__"},
		{"duplicate label", AppendWriteRequestV1(nil, []Series{{Labels: []schemas.Label{{Name: "__name__", Value: "m"}, {Name: "b", Value: "1"}, {Name: "a", Value: "2"}, {Name: "b", Value: "3"}}}}), "twice"},
		{"empty label name", AppendWriteRequestV1(nil, []Series{{Labels: []schemas.Label{{Name: "__name__", Value: "m"}, {Name: "", Value: "1"}}}}), "empty name"},
		{"garbage", []byte{0xff, 0xff, 0xff}, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w WriteRequest
			err := DecodeWriteRequestV1(tc.body, &w)
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrMalformed naming %q", err, tc.want)
			}
		})
	}
	// v2: a reference outside the symbol table.
	v2 := AppendWriteRequestV2(nil, genSeries(1, 6, 1))
	v2 = bytes.Replace(v2, []byte{0x0a, 0x0c, 0x01, 0x02}, []byte{0x0a, 0x0c, 0x7f, 0x02}, 1)
	var w WriteRequest
	if err := DecodeWriteRequestV2(v2, &w); err == nil {
		t.Error("v2 with a dangling symbol reference decoded without error")
	}
}

// fakeSink records what it is asked to publish (deep copies: the
// receiver reuses its buffers) and answers with err.
type fakeSink struct {
	mu   sync.Mutex
	got  []schemas.RawSample
	err  error
	wait time.Duration
}

func (f *fakeSink) Publish(_ context.Context, b *Batch, wait time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wait = wait
	if f.err != nil {
		return f.err
	}
	for _, g := range b.Groups {
		for _, s := range g.Samples {
			c := s
			c.Entity, c.Signal, c.Metric = strings.Clone(s.Entity), strings.Clone(s.Signal), strings.Clone(s.Metric)
			c.Labels = nil
			for _, l := range s.Labels {
				c.Labels = append(c.Labels, schemas.Label{Name: strings.Clone(l.Name), Value: strings.Clone(l.Value)})
			}
			f.got = append(f.got, c)
		}
	}
	return nil
}

func (f *fakeSink) RetryAfter() time.Duration { return 3 * time.Second }

func newTestReceiver(t *testing.T, sink Sink, auth func(*http.Request) bool) (*Receiver, *Metrics) {
	t.Helper()
	mp, err := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(nil)
	cfg := DefaultConfig().RemoteWrite
	cfg.MaxRequestBytes = 1 << 20
	return NewReceiver(mp, sink, cfg, m, slog.New(slog.NewTextHandler(io.Discard, nil)), auth), m
}

func TestReceiverStatus(t *testing.T) {
	good := snappyBody(AppendWriteRequestV1(nil, genSeries(12, 8, 1000)))
	goodV2 := snappyBody(AppendWriteRequestV2(nil, genSeries(12, 8, 1000)))
	v1CT, v2CT := "application/x-protobuf", "application/x-protobuf;proto="+ProtoMsgV2
	tests := []struct {
		name     string
		method   string
		ct, enc  string
		auth     string
		body     []byte
		want     int
		wantBody string
	}{
		{"v1 ok", "POST", v1CT, "snappy", "", good, 204, ""},
		{"v1 explicit proto ok", "POST", v1CT + ";proto=" + ProtoMsgV1, "snappy", "", good, 204, ""},
		{"v2 ok", "POST", v2CT, "snappy", "", goodV2, 204, ""},
		{"GET", "GET", v1CT, "snappy", "", nil, 405, "POST"},
		{"json", "POST", "application/json", "snappy", "", good, 415, "Content-Type"},
		{"unknown proto", "POST", v1CT + ";proto=foo.Bar", "snappy", "", good, 415, "Content-Type"},
		{"gzip", "POST", v1CT, "gzip", "", good, 415, "Content-Encoding"},
		{"not snappy", "POST", v1CT, "snappy", "", []byte("hello world, not snappy"), 400, "snappy"},
		{"snappy of garbage", "POST", v1CT, "snappy", "", snappyBody([]byte{0x0a, 0xff, 0xff, 0xff, 0x0f}), 400, "malformed"},
		{"v1 body sent as v2", "POST", v2CT, "snappy", "", good, 400, "malformed"},
		{"too large", "POST", v1CT, "snappy", "", snappyBody(make([]byte, 2<<20)), 413, "larger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			rc, m := newTestReceiver(t, sink, nil)
			req := httptest.NewRequest(tc.method, "/api/v1/write", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			req.Header.Set("Content-Encoding", tc.enc)
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body.String(), tc.want)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body %q does not mention %q", rec.Body.String(), tc.wantBody)
			}
			if got := counterValue(t, m.Requests.WithLabelValues(fmt.Sprint(tc.want))); got != 1 {
				t.Errorf("requests_total{code=%d} = %v, want 1", tc.want, got)
			}
			if tc.want == 204 {
				// 12 series: 2 of each of 6 names; http_requests_total has no
				// rule; failures count for qps and error_rate, GPU
				// utilisation for the service and the node.
				if len(sink.got) != 14 {
					t.Errorf("published %d samples, want 14", len(sink.got))
				}
				if strings.Contains(tc.ct, "v2") && rec.Header().Get("X-Prometheus-Remote-Write-Samples-Written") != "12" {
					t.Errorf("v2 written header = %q, want 12", rec.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))
				}
			} else if len(sink.got) != 0 {
				t.Errorf("a rejected request published %d samples", len(sink.got))
			}
		})
	}
}

func TestReceiverPushesBack(t *testing.T) {
	body := snappyBody(AppendWriteRequestV1(nil, genSeries(6, 6, 1000)))
	for _, tc := range []struct {
		err  error
		want int
	}{
		{ErrBackpressure, http.StatusTooManyRequests},
		{ErrUnavailable, http.StatusServiceUnavailable},
		{errors.New("kafka: write ebbflow.metrics.raw.v1 partition 3: broker not available"), http.StatusServiceUnavailable},
	} {
		sink := &fakeSink{err: tc.err}
		rc, m := newTestReceiver(t, sink, nil)
		req := httptest.NewRequest("POST", "/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		if rec.Code != tc.want || rec.Header().Get("Retry-After") != "3" {
			t.Errorf("%v: status %d Retry-After %q, want %d and 3", tc.err, rec.Code, rec.Header().Get("Retry-After"), tc.want)
		}
		reason := DropPublishFailed
		if tc.want == 429 {
			reason = DropBackpressure
		}
		if got := counterValue(t, m.SamplesDropped.WithLabelValues(reason)); got != 7 {
			t.Errorf("%v: dropped{reason=%s} = %v, want 7 (mapped samples the sender must resend)", tc.err, reason, got)
		}
	}
}

func TestReceiverAuth(t *testing.T) {
	body := snappyBody(AppendWriteRequestV1(nil, genSeries(2, 6, 1000)))
	for _, tc := range []struct {
		name  string
		auth  func(*http.Request) bool
		setup func(*http.Request)
		want  int
	}{
		{"bearer ok", Authenticator("s3cret", "", ""), func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, 204},
		{"bearer wrong", Authenticator("s3cret", "", ""), func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401},
		{"bearer missing", Authenticator("s3cret", "", ""), func(*http.Request) {}, 401},
		{"basic ok", Authenticator("", "prom", "pw"), func(r *http.Request) { r.SetBasicAuth("prom", "pw") }, 204},
		{"basic wrong", Authenticator("", "prom", "pw"), func(r *http.Request) { r.SetBasicAuth("prom", "px") }, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, _ := newTestReceiver(t, &fakeSink{}, tc.auth)
			req := httptest.NewRequest("POST", "/api/v1/write", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "snappy")
			tc.setup(req)
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
		})
	}
}
