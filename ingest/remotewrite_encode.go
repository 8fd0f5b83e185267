package ingest

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// AppendWriteRequestV1 appends the protobuf encoding of a remote_write 1.0
// WriteRequest holding series to dst (uncompressed; senders snappy-encode
// it). Load generators and tests use it; it is the inverse of
// DecodeWriteRequestV1 for float samples.
func AppendWriteRequestV1(dst []byte, series []Series) []byte {
	var ts []byte
	for _, s := range series {
		ts = ts[:0]
		for _, l := range s.Labels {
			var lb []byte
			lb = protowire.AppendTag(lb, 1, protowire.BytesType)
			lb = protowire.AppendString(lb, l.Name)
			lb = protowire.AppendTag(lb, 2, protowire.BytesType)
			lb = protowire.AppendString(lb, l.Value)
			ts = protowire.AppendTag(ts, 1, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		ts = appendSamples(ts, s.Samples)
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendBytes(dst, ts)
	}
	return dst
}

// AppendWriteRequestV2 appends the encoding of a remote_write 2.0 Request
// holding series, with a symbol table, to dst.
func AppendWriteRequestV2(dst []byte, series []Series) []byte {
	syms := map[string]uint64{"": 0}
	order := []string{""}
	ref := func(s string) uint64 {
		if r, ok := syms[s]; ok {
			return r
		}
		syms[s] = uint64(len(order))
		order = append(order, s)
		return syms[s]
	}
	var body []byte
	for _, s := range series {
		var refs, ts []byte
		for _, l := range s.Labels {
			refs = protowire.AppendVarint(refs, ref(l.Name))
			refs = protowire.AppendVarint(refs, ref(l.Value))
		}
		ts = protowire.AppendTag(ts, 1, protowire.BytesType)
		ts = protowire.AppendBytes(ts, refs)
		ts = appendSamples(ts, s.Samples)
		body = protowire.AppendTag(body, 5, protowire.BytesType)
		body = protowire.AppendBytes(body, ts)
	}
	for _, s := range order {
		dst = protowire.AppendTag(dst, 4, protowire.BytesType)
		dst = protowire.AppendString(dst, s)
	}
	return append(dst, body...)
}

// appendSamples appends samples as field 2 of a TimeSeries: 1.0 and 2.0
// encode a sample the same way (value fixed64 field 1, timestamp varint
// field 2).
func appendSamples(ts []byte, samples []Sample) []byte {
	for _, smp := range samples {
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.Fixed64Type)
		sb = protowire.AppendFixed64(sb, math.Float64bits(smp.Value))
		sb = protowire.AppendTag(sb, 2, protowire.VarintType)
		sb = protowire.AppendVarint(sb, uint64(smp.TimestampMs))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, sb)
	}
	return ts
}
