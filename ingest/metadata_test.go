package ingest

import (
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/IBM/sarama/mocks"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ebbflow/ebbflow/schemas"
)

func appendMetaV1(dst []byte, typ int32, name, help, unit string) []byte {
	var md []byte
	md = protowire.AppendTag(md, 1, protowire.VarintType)
	md = protowire.AppendVarint(md, uint64(typ))
	md = protowire.AppendTag(md, 2, protowire.BytesType)
	md = protowire.AppendString(md, name)
	md = protowire.AppendTag(md, 4, protowire.BytesType)
	md = protowire.AppendString(md, help)
	md = protowire.AppendTag(md, 5, protowire.BytesType)
	md = protowire.AppendString(md, unit)
	dst = protowire.AppendTag(dst, 3, protowire.BytesType)
	return protowire.AppendBytes(dst, md)
}

// remote_write 1.0's WriteRequest.metadata decodes beside the series; an
// entry without a family name is skipped.
func TestDecodeMetadataV1(t *testing.T) {
	body := AppendWriteRequestV1(nil, []Series{{Labels: []schemas.Label{{Name: "__name__", Value: "up"}}, Samples: []Sample{{TimestampMs: 1, Value: 1}}}})
	body = appendMetaV1(body, 2, "room_temperature_celsius", "Room temperature.", "celsius")
	body = appendMetaV1(body, 3, "", "nameless", "")
	body = appendMetaV1(body, 1, "http_requests_total", "Requests.", "")
	var w WriteRequest
	if err := DecodeWriteRequestV1(body, &w); err != nil {
		t.Fatal(err)
	}
	want := []MetricMeta{{Name: "room_temperature_celsius", Help: "Room temperature.", Unit: "celsius", Type: 2}, {Name: "http_requests_total", Help: "Requests.", Type: 1}}
	if len(w.Metadata) != len(want) || w.Metadata[0] != want[0] || w.Metadata[1] != want[1] || w.NumSamples() != 1 {
		t.Fatalf("metadata %+v, samples %d; want %+v and 1", w.Metadata, w.NumSamples(), want)
	}
	if err := DecodeWriteRequestV1(appendMetaV1(nil, 1, "x", "y", "z")[:8], &w); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated metadata: %v, want ErrMalformed", err)
	}
}

func TestFamilyName(t *testing.T) {
	for _, c := range []struct {
		name string
		typ  int32
		want string
	}{
		{"lat_seconds_bucket", 3, "lat_seconds"}, {"lat_seconds_sum", 3, "lat_seconds"}, {"lat_seconds_count", 4, "lat_seconds"},
		{"rpc_seconds_sum", 5, "rpc_seconds"}, {"rpc_seconds_bucket", 5, "rpc_seconds_bucket"},
		{"requests_total", 1, "requests_total"}, {"queue_count", 2, "queue_count"}, {"_sum", 3, "_sum"},
	} {
		if got := familyName(c.name, c.typ); got != c.want {
			t.Errorf("familyName(%q, %d) = %q, want %q", c.name, c.typ, got, c.want)
		}
	}
}

// The writer writes a family's metadata once while it is unchanged, again
// when it changes or after metadataRefresh, and retries one whose write
// failed when it is declared next.
func TestMetadataWriterWritesOnlyChanges(t *testing.T) {
	sc := mocks.NewTestConfig()
	prod := mocks.NewSyncProducer(t, sc)
	m := NewMetrics(nil)
	w := NewMetadataWriter(prod, "p.metrics.metadata.v1", m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.UnixMilli(1_700_000_000_000)
	w.now = func() time.Time { return now }
	var sent []schemas.MetricMetadata
	expect := func() {
		prod.ExpectSendMessageWithCheckerFunctionAndSucceed(func(v []byte) error {
			md, err := schemas.Decode[schemas.MetricMetadata](v)
			sent = append(sent, md)
			return err
		})
	}
	wait := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); gatheredCounterVec(m, "written")+gatheredCounterVec(m, "failed") < float64(n); {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d metadata writes answered", int(gatheredCounterVec(m, "written")+gatheredCounterVec(m, "failed")), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	g := MetricMeta{Name: "temp_celsius", Type: 2, Help: "Temperature.", Unit: "celsius"}
	expect()
	w.Observe(schemas.MetadataSourceRW2, []MetricMeta{g, g})
	wait(1)
	now = now.Add(time.Minute)
	w.Observe(schemas.MetadataSourceRW2, []MetricMeta{g}) // unchanged: nothing
	changed := g
	changed.Help = "Room temperature."
	expect()
	w.Observe(schemas.MetadataSourceRW1, []MetricMeta{changed})
	wait(2)
	now = now.Add(metadataRefresh)
	expect()
	w.Observe(schemas.MetadataSourceRW2, []MetricMeta{changed}) // refresh
	wait(3)
	// A failed write is forgotten, so the next declaration writes it.
	other := MetricMeta{Name: "q", Type: 1}
	prod.ExpectSendMessageAndFail(sarama.ErrOutOfBrokers)
	w.Observe(schemas.MetadataSourceRW2, []MetricMeta{other})
	wait(4)
	expect()
	w.Observe(schemas.MetadataSourceRW2, []MetricMeta{other})
	wait(5)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 4 || gatheredCounterVec(m, "failed") != 1 {
		t.Fatalf("sent %+v, failed %v", sent, gatheredCounterVec(m, "failed"))
	}
	first := int64(1_700_000_000_000)
	if s := sent[0]; s.Help != "Temperature." || s.Unit != "celsius" || s.Type != "gauge" || s.FirstSeenMs != first || s.LastSeenMs != first {
		t.Errorf("first write %+v", s)
	}
	if s := sent[1]; s.Help != "Room temperature." || s.Source != "rw1" || s.FirstSeenMs != first || s.LastSeenMs != first+60_000 {
		t.Errorf("changed write %+v", s)
	}
	if s := sent[2]; s.FirstSeenMs != first || s.LastSeenMs != first+60_000+metadataRefresh.Milliseconds() {
		t.Errorf("refresh write %+v", s)
	}
	if s := sent[3]; s.Metric != "q" || s.Type != "counter" {
		t.Errorf("retried write %+v", s)
	}
	w.Observe(schemas.MetadataSourceRW2, []MetricMeta{{Name: "after_close", Type: 1}}) // no panic, nothing sent
}

func gatheredCounterVec(m *Metrics, result string) float64 {
	return testutil.ToFloat64(m.Metadata.WithLabelValues(result))
}

// A scraped exposition's # TYPE and # HELP become metadata; an untyped
// family without help does not.
func TestParseExpositionMetadata(t *testing.T) {
	body := "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 3\n" +
		"# TYPE lat_seconds histogram\nlat_seconds_bucket{le=\"+Inf\"} 1\nlat_seconds_sum 0.5\nlat_seconds_count 1\nbare 1\n"
	var md []MetricMeta
	series, err := parseExposition([]byte(body), expfmt.NewFormat(expfmt.TypeTextPlain), nil, false, 1, &md)
	if err != nil {
		t.Fatal(err)
	}
	want := []MetricMeta{{Name: "http_requests_total", Type: 1, Help: "Requests served."}, {Name: "lat_seconds", Type: 3}}
	sort.Slice(md, func(i, j int) bool { return md[i].Name < md[j].Name }) // the text parser's order is a map's
	if len(md) != 2 || md[0] != want[0] || md[1] != want[1] || len(series) != 5 {
		t.Fatalf("metadata %+v (want %+v), %d series (want 5)", md, want, len(series))
	}
}

func rw2WithMeta(name string, typ int32, helpRef, unitRef uint64, syms ...string) []byte {
	var b []byte
	for _, s := range append([]string{"", "__name__", name}, syms...) {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	var ts, md []byte
	ts = protowire.AppendTag(ts, 1, protowire.BytesType)
	ts = protowire.AppendBytes(ts, []byte{1, 2})
	md = protowire.AppendTag(md, 1, protowire.VarintType)
	md = protowire.AppendVarint(md, uint64(typ))
	md = protowire.AppendTag(md, 3, protowire.VarintType)
	md = protowire.AppendVarint(md, helpRef)
	md = protowire.AppendTag(md, 4, protowire.VarintType)
	md = protowire.AppendVarint(md, unitRef)
	ts = protowire.AppendTag(ts, 5, protowire.BytesType)
	ts = protowire.AppendBytes(ts, md)
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendBytes(b, ts)
}

// remote_write 2.0 per-series metadata resolves through the symbols, names
// the family, and a reference outside the symbols is a malformed request.
func TestDecodeMetadataV2(t *testing.T) {
	var w WriteRequest
	if err := DecodeWriteRequestV2(rw2WithMeta("lat_seconds_bucket", 3, 3, 4, "Latency.", "seconds"), &w); err != nil {
		t.Fatal(err)
	}
	if want := (MetricMeta{Name: "lat_seconds", Type: 3, Help: "Latency.", Unit: "seconds"}); len(w.Metadata) != 1 || w.Metadata[0] != want {
		t.Fatalf("metadata %+v, want %+v", w.Metadata, want)
	}
	if err := DecodeWriteRequestV2(rw2WithMeta("m", 2, 0, 0), &w); err != nil || len(w.Metadata) != 1 || w.Metadata[0] != (MetricMeta{Name: "m", Type: 2}) {
		t.Fatalf("gauge without help: %+v, %v", w.Metadata, err)
	}
	if err := DecodeWriteRequestV2(rw2WithMeta("m", 0, 0, 0), &w); err != nil || len(w.Metadata) != 0 {
		t.Fatalf("empty metadata: %+v, %v (want none)", w.Metadata, err)
	}
	err := DecodeWriteRequestV2(rw2WithMeta("m", 1, 9, 0), &w)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "help/unit reference 9/0") {
		t.Fatalf("help_ref outside the symbols: %v", err)
	}
}
