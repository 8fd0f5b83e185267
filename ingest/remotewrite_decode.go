package ingest

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ebbflow/ebbflow/schemas"
)

// Sample is one (timestamp, value) pair of a series.
type Sample struct {
	TimestampMs int64
	Value       float64
}

// Series is one decoded remote_write time series. Labels include __name__
// in the order the sender wrote them. Its strings point into the request
// body the decoder was given: they are valid while that body is.
type Series struct {
	Labels  []schemas.Label
	Samples []Sample
	// Histograms and Exemplars count native histogram samples and
	// exemplars the series carried; ingest does not publish them.
	Histograms, Exemplars int
}

// MetricMeta is the metadata a request declared for one metric family:
// remote_write 1.0's WriteRequest.metadata, or 2.0's per-series
// TimeSeries.metadata (Name is then the family of the series' __name__,
// see familyName). Type is the protobuf enum (both versions number the
// types alike: 0 unknown/unspecified, 1 counter … 7 stateset). Strings
// share memory with the request body.
type MetricMeta struct {
	Name, Help, Unit string
	Type             int32
}

// WriteRequest is a decoded remote_write request (protocol 1.0 or 2.0).
type WriteRequest struct {
	Series []Series
	// Metadata lists the metric metadata the request carried, in order
	// (2.0: at most one per series that had any).
	Metadata []MetricMeta

	labels  []schemas.Label
	samples []Sample
	offs    []seriesOffsets
	symbols []string
}

type seriesOffsets struct{ l0, l1, s0, s1, hist, ex int }

// NumSamples returns the number of float samples in the request.
func (w *WriteRequest) NumSamples() int { return len(w.samples) }

// Reset empties w, keeping its buffers.
func (w *WriteRequest) Reset() {
	w.Series = w.Series[:0]
	w.Metadata = w.Metadata[:0]
	w.labels = w.labels[:0]
	w.samples = w.samples[:0]
	w.offs = w.offs[:0]
	w.symbols = w.symbols[:0]
}

// ErrMalformed wraps every decoding error: the body is not a valid request.
var ErrMalformed = errors.New("malformed remote_write request")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// bstr returns a string sharing b's memory; the decoder's strings live as
// long as the request body, which is never modified after decoding.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// DecodeWriteRequestV1 decodes an uncompressed prometheus.WriteRequest
// (remote_write 1.0) into w, replacing its content. Strings in the result
// share memory with body, which must not be modified while w is used.
// Unknown fields are skipped as protobuf requires.
func DecodeWriteRequestV1(body []byte, w *WriteRequest) error {
	w.Reset()
	b := body
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("WriteRequest: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			ts, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("WriteRequest.timeseries: %v", protowire.ParseError(n))
			}
			b = b[n:]
			if err := w.decodeSeriesV1(ts); err != nil {
				return fmt.Errorf("timeseries %d: %w", len(w.offs), err)
			}
			continue
		}
		if num == 3 && typ == protowire.BytesType {
			md, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("WriteRequest.metadata: %v", protowire.ParseError(n))
			}
			b = b[n:]
			if err := w.decodeMetadataV1(md); err != nil {
				return fmt.Errorf("metadata %d: %w", len(w.Metadata), err)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return malformed("WriteRequest field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	w.finish()
	return nil
}

// decodeMetadataV1 decodes a prometheus.MetricMetadata: type = 1,
// metric_family_name = 2, help = 4, unit = 5. One without a name is
// skipped: it describes nothing.
func (w *WriteRequest) decodeMetadataV1(b []byte) error {
	var m MetricMeta
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("MetricMetadata: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return malformed("MetricMetadata.type: %v", protowire.ParseError(n))
			}
			b, m.Type = b[n:], int32(v)
		case (num == 2 || num == 4 || num == 5) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("MetricMetadata field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 2:
				m.Name = bstr(v)
			case 4:
				m.Help = bstr(v)
			default:
				m.Unit = bstr(v)
			}
		default:
			var err error
			if b, err = skipField(num, typ, b); err != nil {
				return err
			}
		}
	}
	if m.Name != "" {
		w.Metadata = append(w.Metadata, m)
	}
	return nil
}

// decodeMetadataV2 decodes an io.prometheus.write.v2.Metadata: type = 1,
// help_ref = 3, unit_ref = 4.
func decodeMetadataV2(b []byte) (typ int32, help, unit uint64, err error) {
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, 0, malformed("Metadata: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if wt == protowire.VarintType && (num == 1 || num == 3 || num == 4) {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, 0, malformed("Metadata field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 1:
				typ = int32(v)
			case 3:
				help = v
			default:
				unit = v
			}
			continue
		}
		if b, err = skipField(num, wt, b); err != nil {
			return 0, 0, 0, err
		}
	}
	return typ, help, unit, nil
}

// familyName is the metric family a series named name belongs to, given
// the family's type (the protobuf enum): a classic histogram's _bucket,
// _sum and _count series (and a summary's _sum and _count) carry the
// family's metadata under their own names. Other names are the family.
func familyName(name string, typ int32) string {
	var suffixes []string
	switch typ {
	case 3, 4: // histogram, gaugehistogram
		suffixes = []string{"_bucket", "_sum", "_count"}
	case 5: // summary
		suffixes = []string{"_sum", "_count"}
	}
	for _, s := range suffixes {
		if len(name) > len(s) && name[len(name)-len(s):] == s {
			return name[:len(name)-len(s)]
		}
	}
	return name
}

func (w *WriteRequest) finish() {
	for _, o := range w.offs {
		w.Series = append(w.Series, Series{Labels: w.labels[o.l0:o.l1:o.l1], Samples: w.samples[o.s0:o.s1:o.s1], Histograms: o.hist, Exemplars: o.ex})
	}
}

func (w *WriteRequest) decodeSeriesV1(b []byte) error {
	o := seriesOffsets{l0: len(w.labels), s0: len(w.samples)}
	var hist, ex int
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("TimeSeries: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("TimeSeries.labels: %v", protowire.ParseError(n))
			}
			b = b[n:]
			l, err := decodeLabel(m)
			if err != nil {
				return err
			}
			w.labels = append(w.labels, l)
		case num == 2 && typ == protowire.BytesType:
			var err error
			if b, err = w.consumeSample(b); err != nil {
				return err
			}
		default:
			if typ == protowire.BytesType && num == 3 {
				ex++
			} else if typ == protowire.BytesType && num == 4 {
				hist++
			}
			var err error
			if b, err = skipField(num, typ, b); err != nil {
				return err
			}
		}
	}
	o.l1, o.s1, o.hist, o.ex = len(w.labels), len(w.samples), hist, ex
	if err := checkLabels(w.labels[o.l0:o.l1]); err != nil {
		return err
	}
	w.offs = append(w.offs, o)
	return nil
}

// consumeSample decodes one TimeSeries.samples entry at the start of b
// (1.0 and 2.0 share the field and its encoding) and returns the rest.
func (w *WriteRequest) consumeSample(b []byte) ([]byte, error) {
	m, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, malformed("TimeSeries.samples: %v", protowire.ParseError(n))
	}
	s, err := decodeSample(m)
	if err != nil {
		return nil, err
	}
	w.samples = append(w.samples, s)
	return b[n:], nil
}

// skipField skips a TimeSeries field ebbflow does not publish and returns
// the rest of b.
func skipField(num protowire.Number, typ protowire.Type, b []byte) ([]byte, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return nil, malformed("TimeSeries field %d: %v", num, protowire.ParseError(n))
	}
	return b[n:], nil
}

func decodeLabel(b []byte) (schemas.Label, error) {
	var l schemas.Label
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, malformed("Label: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			s, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return l, malformed("Label field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			if num == 1 {
				l.Name = bstr(s)
			} else {
				l.Value = bstr(s)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return l, malformed("Label field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return l, nil
}

func decodeSample(b []byte) (Sample, error) {
	var s Sample
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return s, malformed("Sample: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return s, malformed("Sample.value: %v", protowire.ParseError(n))
			}
			b = b[n:]
			s.Value = math.Float64frombits(v)
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return s, malformed("Sample.timestamp: %v", protowire.ParseError(n))
			}
			b = b[n:]
			s.TimestampMs = int64(v)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return s, malformed("Sample field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return s, nil
}

// checkLabels enforces what the remote_write spec requires of a series:
// a metric name and non-empty label names, no duplicates.
func checkLabels(ls []schemas.Label) error {
	hasName, sorted := false, true
	for i, l := range ls {
		if l.Name == "" {
			return malformed("label %d has an empty name", i)
		}
		if l.Name == "__name__" {
			if l.Value == "" {
				return malformed("__name__ is empty")
			}
			hasName = true
		}
		if i > 0 && ls[i-1].Name >= l.Name {
			sorted = false
		}
	}
	if !sorted {
		// The spec asks senders to sort; accept unsorted series but still
		// refuse duplicate names, which have no meaning.
		for i := range ls {
			for j := 0; j < i; j++ {
				if ls[j].Name == ls[i].Name {
					return malformed("label %q appears twice", ls[i].Name)
				}
			}
		}
	}
	if !hasName {
		return malformed("series has no __name__ label")
	}
	return nil
}

// DecodeWriteRequestV2 decodes an uncompressed io.prometheus.write.v2.Request
// (remote_write 2.0) into w, resolving label references through the
// request's symbol table. Strings share memory with body.
func DecodeWriteRequestV2(body []byte, w *WriteRequest) error {
	w.Reset()
	// Symbols may in principle follow the series, so collect them first.
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("Request: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if num >= 1 && num <= 3 {
			// Reserved in 2.0: this is a 1.0 WriteRequest sent with the
			// 2.0 Content-Type, which would otherwise decode as empty.
			return malformed("Request field %d is reserved in remote_write 2.0; is this a 1.0 body (Content-Type proto=%s)?", num, ProtoMsgV1)
		}
		if num == 4 && typ == protowire.BytesType {
			s, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("Request.symbols: %v", protowire.ParseError(n))
			}
			b = b[n:]
			w.symbols = append(w.symbols, bstr(s))
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return malformed("Request field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if len(w.symbols) > 0 && w.symbols[0] != "" {
		return malformed("Request.symbols[0] must be the empty string")
	}
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num == 5 && typ == protowire.BytesType {
			ts, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("Request.timeseries: %v", protowire.ParseError(n))
			}
			b = b[n:]
			if err := w.decodeSeriesV2(ts); err != nil {
				return fmt.Errorf("timeseries %d: %w", len(w.offs), err)
			}
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	w.finish()
	return nil
}

func (w *WriteRequest) decodeSeriesV2(b []byte) error {
	o := seriesOffsets{l0: len(w.labels), s0: len(w.samples)}
	var refs []uint64
	var stack [64]uint64
	refs = stack[:0]
	var (
		hasMeta          bool
		mType            int32
		helpRef, unitRef uint64
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("TimeSeries: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType: // packed label refs
			p, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("TimeSeries.labels_refs: %v", protowire.ParseError(n))
			}
			b = b[n:]
			for len(p) > 0 {
				v, n := protowire.ConsumeVarint(p)
				if n < 0 {
					return malformed("TimeSeries.labels_refs: %v", protowire.ParseError(n))
				}
				p = p[n:]
				refs = append(refs, v)
			}
		case num == 1 && typ == protowire.VarintType: // unpacked label refs
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return malformed("TimeSeries.labels_refs: %v", protowire.ParseError(n))
			}
			b = b[n:]
			refs = append(refs, v)
		case num == 2 && typ == protowire.BytesType:
			var err error
			if b, err = w.consumeSample(b); err != nil {
				return err
			}
		case num == 5 && typ == protowire.BytesType:
			md, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("TimeSeries.metadata: %v", protowire.ParseError(n))
			}
			b = b[n:]
			var err error
			if mType, helpRef, unitRef, err = decodeMetadataV2(md); err != nil {
				return err
			}
			hasMeta = true
		default:
			if typ == protowire.BytesType && num == 3 {
				o.hist++
			} else if typ == protowire.BytesType && num == 4 {
				o.ex++
			}
			var err error
			if b, err = skipField(num, typ, b); err != nil {
				return err
			}
		}
	}
	if len(refs)%2 != 0 {
		return malformed("labels_refs has an odd length %d", len(refs))
	}
	for i := 0; i < len(refs); i += 2 {
		if refs[i] >= uint64(len(w.symbols)) || refs[i+1] >= uint64(len(w.symbols)) {
			return malformed("label reference %d/%d outside the %d symbols", refs[i], refs[i+1], len(w.symbols))
		}
		w.labels = append(w.labels, schemas.Label{Name: w.symbols[refs[i]], Value: w.symbols[refs[i+1]]})
	}
	o.l1, o.s1 = len(w.labels), len(w.samples)
	if err := checkLabels(w.labels[o.l0:o.l1]); err != nil {
		return err
	}
	if hasMeta {
		if helpRef >= uint64(len(w.symbols)) || unitRef >= uint64(len(w.symbols)) {
			return malformed("metadata help/unit reference %d/%d outside the %d symbols", helpRef, unitRef, len(w.symbols))
		}
		name := ""
		for _, l := range w.labels[o.l0:o.l1] {
			if l.Name == "__name__" {
				name = l.Value
				break
			}
		}
		if name != "" && (mType != 0 || helpRef != 0 || unitRef != 0) {
			w.Metadata = append(w.Metadata, MetricMeta{Name: familyName(name, mType), Type: mType, Help: w.symbols[helpRef], Unit: w.symbols[unitRef]})
		}
	}
	w.offs = append(w.offs, o)
	return nil
}
