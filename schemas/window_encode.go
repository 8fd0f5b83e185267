package schemas

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
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

// appendJSONString writes s as encoding/json writes a string (HTML-safe
// escaping of <, > and &; \b \f \n \r \t and other control characters;
// invalid UTF-8 as \ufffd; U+2028 and U+2029 escaped), byte for byte
// (TestAppendJSONStringMatchesMarshal, FuzzAppendJSONString), without
// reflection: decision explanations carry non-ASCII (→, ×, ≤).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
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
