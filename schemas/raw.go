package schemas

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	flatbuffers "github.com/google/flatbuffers/go"

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
// buffers between calls and is not safe for concurrent use; use one per
// goroutine.
//
// Without options it writes the stream itself: the schema message is
// encoded once (by Arrow's own writer) and reused, and each record batch
// message (a small flatbuffer) and its body (validity buffers omitted: no
// column has nulls) are laid out directly from the samples, with no Arrow
// builders or per-sample allocations. The bytes are the same IPC stream
// format Arrow's writer produces (checked by TestRawEncoderMatchesArrow).
type RawEncoder struct {
	mem     memory.Allocator
	b       *array.RecordBuilder
	buf     bytes.Buffer
	options []ipc.Option

	fb    *flatbuffers.Builder
	body  []byte
	out   []byte
	bufs  [][2]int64
	nodes [10]int64
}

// rawSchemaMsg is the encapsulated schema message every stream starts with.
var rawSchemaMsg = func() []byte {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(RawArrowSchema))
	if err := w.Close(); err != nil {
		panic(err)
	}
	b := buf.Bytes()
	return bytes.Clone(b[:len(b)-8]) // drop the end-of-stream marker
}()

// NewRawEncoder returns an encoder. Pass ipc.WithZstd() or ipc.WithLZ4()
// to compress the record batch bodies inside the stream (Arrow's writer
// is used then).
func NewRawEncoder(opts ...ipc.Option) *RawEncoder {
	if len(opts) == 0 {
		return &RawEncoder{fb: flatbuffers.NewBuilder(1024)}
	}
	mem := memory.NewGoAllocator()
	return &RawEncoder{mem: mem, b: array.NewRecordBuilder(mem, RawArrowSchema), options: opts}
}

// Encode returns the IPC stream of samples. The returned slice is a fresh
// copy the caller owns.
func (e *RawEncoder) Encode(samples []RawSample) ([]byte, error) {
	if e.fb == nil {
		return e.encodeArrow(samples)
	}
	e.out = e.AppendEncode(e.out[:0], samples)
	return bytes.Clone(e.out), nil
}

// AppendEncode appends the IPC stream of samples to dst (fast path only:
// an encoder made without options).
func (e *RawEncoder) AppendEncode(dst []byte, samples []RawSample) []byte {
	n := len(samples)
	e.body = e.body[:0]
	e.bufs = e.bufs[:0]
	for c := 0; c < 4; c++ {
		e.validity()
		start := len(e.body)
		off := int32(0)
		e.body = binary.LittleEndian.AppendUint32(e.body, 0)
		for i := range samples {
			off += int32(len(rawStr(&samples[i], c)))
			e.body = binary.LittleEndian.AppendUint32(e.body, uint32(off))
		}
		e.end(start)
		start = len(e.body)
		for i := range samples {
			e.body = append(e.body, rawStr(&samples[i], c)...)
		}
		e.end(start)
	}
	// labels: map offsets, entries struct, keys, values
	e.validity()
	start := len(e.body)
	m := 0
	e.body = binary.LittleEndian.AppendUint32(e.body, 0)
	for i := range samples {
		m += len(samples[i].Labels)
		e.body = binary.LittleEndian.AppendUint32(e.body, uint32(m))
	}
	e.end(start)
	e.validity() // entries
	for kv := 0; kv < 2; kv++ {
		e.validity()
		start = len(e.body)
		off := uint32(0)
		e.body = binary.LittleEndian.AppendUint32(e.body, 0)
		for i := range samples {
			for _, l := range samples[i].Labels {
				if kv == 0 {
					off += uint32(len(l.Name))
				} else {
					off += uint32(len(l.Value))
				}
				e.body = binary.LittleEndian.AppendUint32(e.body, off)
			}
		}
		e.end(start)
		start = len(e.body)
		for i := range samples {
			for _, l := range samples[i].Labels {
				if kv == 0 {
					e.body = append(e.body, l.Name...)
				} else {
					e.body = append(e.body, l.Value...)
				}
			}
		}
		e.end(start)
	}
	e.validity()
	start = len(e.body)
	for i := range samples {
		e.body = binary.LittleEndian.AppendUint64(e.body, uint64(samples[i].TimestampMs))
	}
	e.end(start)
	e.validity()
	start = len(e.body)
	for i := range samples {
		e.body = binary.LittleEndian.AppendUint64(e.body, math.Float64bits(samples[i].Value))
	}
	e.end(start)

	e.nodes = [10]int64{int64(n), int64(n), int64(n), int64(n), int64(n), int64(m), int64(m), int64(m), int64(n), int64(n)}
	b := e.fb
	b.Reset()
	b.StartVector(16, len(e.bufs), 8)
	for i := len(e.bufs) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(e.bufs[i][1])
		b.PrependInt64(e.bufs[i][0])
	}
	bufVec := b.EndVector(len(e.bufs))
	b.StartVector(16, len(e.nodes), 8)
	for i := len(e.nodes) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(0) // null count
		b.PrependInt64(e.nodes[i])
	}
	nodeVec := b.EndVector(len(e.nodes))
	b.StartObject(5) // RecordBatch
	b.PrependInt64Slot(0, int64(n), 0)
	b.PrependUOffsetTSlot(1, nodeVec, 0)
	b.PrependUOffsetTSlot(2, bufVec, 0)
	rb := b.EndObject()
	b.StartObject(5)            // Message
	b.PrependInt16Slot(0, 4, 0) // MetadataVersion V5
	b.PrependByteSlot(1, 3, 0)  // MessageHeader RecordBatch
	b.PrependUOffsetTSlot(2, rb, 0)
	b.PrependInt64Slot(3, int64(len(e.body)), 0)
	b.Finish(b.EndObject())
	meta := b.FinishedBytes()

	dst = append(dst, rawSchemaMsg...)
	padded := (len(meta) + 8 + 7) &^ 7
	dst = binary.LittleEndian.AppendUint32(dst, 0xFFFFFFFF)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(padded-8))
	dst = append(dst, meta...)
	for i := len(meta) + 8; i < padded; i++ {
		dst = append(dst, 0)
	}
	dst = append(dst, e.body...)
	dst = binary.LittleEndian.AppendUint32(dst, 0xFFFFFFFF)
	return binary.LittleEndian.AppendUint32(dst, 0)
}

func rawStr(s *RawSample, c int) string {
	switch c {
	case 0:
		return s.Entity
	case 1:
		return s.Signal
	case 2:
		return s.Kind
	}
	return s.Metric
}

// validity records an absent validity bitmap (no nulls).
func (e *RawEncoder) validity() { e.bufs = append(e.bufs, [2]int64{int64(len(e.body)), 0}) }

// end records the buffer written since start and pads the body to 8 bytes.
func (e *RawEncoder) end(start int) {
	e.bufs = append(e.bufs, [2]int64{int64(start), int64(len(e.body) - start)})
	for len(e.body)%8 != 0 {
		e.body = append(e.body, 0)
	}
}

func (e *RawEncoder) encodeArrow(samples []RawSample) ([]byte, error) {
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
