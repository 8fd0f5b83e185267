package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// AppendWindowJSON appends the JSON encoding of w to b: byte for byte what
// json.Marshal(w) writes (TestAppendWindowJSONMatchesMarshal), without
// reflection. A NaN or infinite aggregate is an error, as for json.Marshal.
// The window processor produces every window through it.
func AppendWindowJSON(b []byte, w *Window) ([]byte, error) {
	b = append(b, `{"entity":`...)
	b = appendJSONString(b, w.Entity)
	b = append(b, `,"signal":`...)
	b = appendJSONString(b, w.Signal)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, w.Kind)
	b = append(b, `,"size_s":`...)
	b = strconv.AppendInt(b, w.SizeS, 10)
	b = append(b, `,"start_ms":`...)
	b = strconv.AppendInt(b, w.StartMs, 10)
	b = append(b, `,"end_ms":`...)
	b = strconv.AppendInt(b, w.EndMs, 10)
	b = append(b, `,"revision":`...)
	b = strconv.AppendInt(b, int64(w.Revision), 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, w.Count, 10)
	for _, f := range [...]struct {
		key string
		v   float64
	}{{`,"sum":`, w.Sum}, {`,"min":`, w.Min}, {`,"max":`, w.Max}, {`,"mean":`, w.Mean}, {`,"last":`, w.Last},
		{`,"p50":`, w.P50}, {`,"p95":`, w.P95}, {`,"p99":`, w.P99}} {
		var err error
		b = append(b, f.key...)
		if b, err = appendJSONFloat(b, f.v); err != nil {
			return nil, fmt.Errorf("schemas: encode %s: %s: %w", w.EventType(), f.key[2:len(f.key)-2], err)
		}
	}
	if w.Rate != nil {
		var err error
		b = append(b, `,"rate":`...)
		if b, err = appendJSONFloat(b, *w.Rate); err != nil {
			return nil, fmt.Errorf("schemas: encode %s: rate: %w", w.EventType(), err)
		}
	}
	return append(b, '}'), nil
}

// appendJSONString writes s as encoding/json does: plain printable ASCII
// as is; anything it would escape (quotes, backslashes, control
// characters, <, >, &, non-ASCII that needs checking) through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string cannot fail
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONFloat writes f as encoding/json writes a float64.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, fmt.Errorf("unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json does
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
