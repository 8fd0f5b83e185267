package schemas

import (
	"bytes"
	"fmt"
	"math"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// RawSample is one sample as ingest publishes it on metrics.raw. Metric,
// Labels, TimestampMs and Value are kept exactly as the source exposed them
// (a Prometheus stale marker keeps its NaN bit pattern); Entity, Signal and
// Kind are what the signal-mapping rules made of the series.
type RawSample struct {
	Entity      string
	Signal      string
	Kind        string
	Metric      string
	Labels      []Label
	TimestampMs int64
	Value       float64
}

// Label is one Prometheus label pair.
type Label struct {
	Name, Value string
}

// StaleNaN is the bit pattern Prometheus uses to mark a series stale.
const StaleNaN uint64 = 0x7ff0000000000002

// IsStale reports whether v is a Prometheus stale marker.
func IsStale(v float64) bool { return math.Float64bits(v) == StaleNaN }

// RawSchemaVersion is stored in each batch's schema metadata under
// "ebbflow.schema".
const RawSchemaVersion = "metrics.raw.v1"

// RawArrowSchema is the Arrow schema of every record batch on metrics.raw.
// One Kafka record holds one Arrow IPC stream (schema message, one or more
// record batches, end-of-stream marker) of samples for a single entity, so
// pyarrow.ipc.open_stream(record.value).read_all() decodes it.
//
//	entity     utf8                  entity key, e.g. svc/c1/default/web
//	signal     utf8                  canonical signal, e.g. qps
//	kind       utf8                  "gauge" or "counter"
//	metric     utf8                  Prometheus metric name
//	labels     map<utf8, utf8>       Prometheus labels, sorted by name
//	ts         timestamp[ms, UTC]    sample timestamp
//	value      float64               sample value (stale markers kept)
var RawArrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "entity", Type: arrow.BinaryTypes.String},
	{Name: "signal", Type: arrow.BinaryTypes.String},
	{Name: "kind", Type: arrow.BinaryTypes.String},
	{Name: "metric", Type: arrow.BinaryTypes.String},
	{Name: "labels", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "value", Type: arrow.PrimitiveTypes.Float64},
}, func() *arrow.Metadata {
	m := arrow.NewMetadata([]string{"ebbflow.schema"}, []string{RawSchemaVersion})
	return &m
}())

// RawEncoder encodes sample batches as Arrow IPC streams. It reuses its
// builders between calls and is not safe for concurrent use; use one per
// goroutine.
type RawEncoder struct {
	mem     memory.Allocator
	b       *array.RecordBuilder
	buf     bytes.Buffer
	options []ipc.Option
}

// NewRawEncoder returns an encoder. Pass ipc.WithZstd() or ipc.WithLZ4()
// to compress the record batch bodies inside the stream.
func NewRawEncoder(opts ...ipc.Option) *RawEncoder {
	mem := memory.NewGoAllocator()
	return &RawEncoder{mem: mem, b: array.NewRecordBuilder(mem, RawArrowSchema), options: opts}
}

// Encode returns the IPC stream of samples. The returned slice is a fresh
// copy the caller owns.
func (e *RawEncoder) Encode(samples []RawSample) ([]byte, error) {
	entity := e.b.Field(0).(*array.StringBuilder)
	signal := e.b.Field(1).(*array.StringBuilder)
	kind := e.b.Field(2).(*array.StringBuilder)
	metric := e.b.Field(3).(*array.StringBuilder)
	labels := e.b.Field(4).(*array.MapBuilder)
	lk := labels.KeyBuilder().(*array.StringBuilder)
	lv := labels.ItemBuilder().(*array.StringBuilder)
	ts := e.b.Field(5).(*array.TimestampBuilder)
	val := e.b.Field(6).(*array.Float64Builder)
	for i := range samples {
		s := &samples[i]
		entity.Append(s.Entity)
		signal.Append(s.Signal)
		kind.Append(s.Kind)
		metric.Append(s.Metric)
		labels.Append(true)
		for _, l := range s.Labels {
			lk.Append(l.Name)
			lv.Append(l.Value)
		}
		ts.Append(arrow.Timestamp(s.TimestampMs))
		val.Append(s.Value)
	}
	rec := e.b.NewRecord()
	defer rec.Release()
	e.buf.Reset()
	opts := append([]ipc.Option{ipc.WithSchema(RawArrowSchema), ipc.WithAllocator(e.mem)}, e.options...)
	w := ipc.NewWriter(&e.buf, opts...)
	if err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("schemas: encode metrics.raw batch: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("schemas: encode metrics.raw batch: %w", err)
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// DecodeRaw decodes one metrics.raw record value, appending to dst.
func DecodeRaw(dst []RawSample, value []byte) ([]RawSample, error) {
	r, err := ipc.NewReader(bytes.NewReader(value), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return dst, fmt.Errorf("schemas: decode metrics.raw: %w", err)
	}
	defer r.Release()
	if !r.Schema().Equal(RawArrowSchema) {
		return dst, fmt.Errorf("schemas: decode metrics.raw: schema %s is not %s", r.Schema(), RawArrowSchema)
	}
	for r.Next() {
		rec := r.Record()
		entity := rec.Column(0).(*array.String)
		signal := rec.Column(1).(*array.String)
		kind := rec.Column(2).(*array.String)
		metric := rec.Column(3).(*array.String)
		labels := rec.Column(4).(*array.Map)
		keys := labels.Keys().(*array.String)
		items := labels.Items().(*array.String)
		ts := rec.Column(5).(*array.Timestamp)
		val := rec.Column(6).(*array.Float64)
		for i := 0; i < int(rec.NumRows()); i++ {
			s := RawSample{
				Entity:      entity.Value(i),
				Signal:      signal.Value(i),
				Kind:        kind.Value(i),
				Metric:      metric.Value(i),
				TimestampMs: int64(ts.Value(i)),
				Value:       val.Value(i),
			}
			start, end := labels.ValueOffsets(i)
			if end > start {
				s.Labels = make([]Label, 0, end-start)
				for j := start; j < end; j++ {
					s.Labels = append(s.Labels, Label{Name: keys.Value(int(j)), Value: items.Value(int(j))})
				}
			}
			dst = append(dst, s)
		}
	}
	if err := r.Err(); err != nil {
		return dst, fmt.Errorf("schemas: decode metrics.raw: %w", err)
	}
	return dst, nil
}
