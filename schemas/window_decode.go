package schemas

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// fastDecoder is an event that can decode the plain form of its JSON
// document without the generic JSON Schema walk. decodeFast returns false
// for anything it does not fully understand (escapes, duplicate or unknown
// keys, null, exponents in integers, ...); Unmarshal then runs the full
// JSON Schema validation and the strict decode as before, so every
// refusal and its error are unchanged. When decodeFast returns true the
// document is one the JSON Schema accepts and the value is what the strict
// decode would produce: TestFastWindowDecodeMatchesSchema and
// FuzzFastWindowDecode check both on mutated and fuzzed documents.
type fastDecoder interface {
	decodeFast(doc []byte) bool
}

// Window field bits, in the order of window.schema.json's "required".
const (
	wEntity = 1 << iota
	wSignal
	wKind
	wSizeS
	wStartMs
	wEndMs
	wRevision
	wCount
	wSum
	wMin
	wMax
	wMean
	wLast
	wP50
	wP95
	wP99
	wRate
	wRequired = wRate - 1
)

// decodeFast decodes a window document of the plain form ebbflow writes
// (any key order and JSON whitespace) and checks it with Window.Validate,
// which mirrors the schema for every typed value (see SelfValidator).
func (w *Window) decodeFast(doc []byte) bool {
	var v Window
	s := scanner{b: doc}
	s.ws()
	if !s.eat('{') {
		return false
	}
	var seen uint32
	s.ws()
	if s.eat('}') {
		return false // required fields missing: let the schema say which
	}
	for {
		s.ws()
		key, ok := s.plainString()
		if !ok {
			return false
		}
		s.ws()
		if !s.eat(':') {
			return false
		}
		s.ws()
		var bit uint32
		switch string(key) {
		case "entity":
			bit = wEntity
			v.Entity, ok = s.stringValue()
		case "signal":
			bit = wSignal
			v.Signal, ok = s.stringValue()
		case "kind":
			bit = wKind
			v.Kind, ok = s.stringValue()
		case "size_s":
			bit = wSizeS
			v.SizeS, ok = s.int64Value()
		case "start_ms":
			bit = wStartMs
			v.StartMs, ok = s.int64Value()
		case "end_ms":
			bit = wEndMs
			v.EndMs, ok = s.int64Value()
		case "revision":
			bit = wRevision
			var r int64
			r, ok = s.int64Value()
			ok = ok && r >= math.MinInt && r <= math.MaxInt
			v.Revision = int(r)
		case "count":
			bit = wCount
			v.Count, ok = s.int64Value()
		case "sum":
			bit = wSum
			v.Sum, ok = s.float64Value()
		case "min":
			bit = wMin
			v.Min, ok = s.float64Value()
		case "max":
			bit = wMax
			v.Max, ok = s.float64Value()
		case "mean":
			bit = wMean
			v.Mean, ok = s.float64Value()
		case "last":
			bit = wLast
			v.Last, ok = s.float64Value()
		case "p50":
			bit = wP50
			v.P50, ok = s.float64Value()
		case "p95":
			bit = wP95
			v.P95, ok = s.float64Value()
		case "p99":
			bit = wP99
			v.P99, ok = s.float64Value()
		case "rate":
			bit = wRate
			var r float64
			r, ok = s.float64Value()
			v.Rate = &r
		default:
			return false // unknown (or differently cased) key
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		s.ws()
		if s.eat(',') {
			continue
		}
		if !s.eat('}') {
			return false
		}
		break
	}
	s.ws()
	if s.i != len(s.b) || seen&wRequired != wRequired {
		return false
	}
	if v.Validate() != nil {
		return false
	}
	*w = v
	return true
}

// scanner reads the plain subset of JSON decodeFast accepts.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters, of
// valid UTF-8, and returns its bytes (keys are only compared).
func (s *scanner) plainString() ([]byte, bool) {
	start, ok := s.stringSpan()
	if !ok {
		return nil, false
	}
	return s.b[start : s.i-1], true
}

func (s *scanner) stringValue() (string, bool) {
	start, ok := s.stringSpan()
	if !ok {
		return "", false
	}
	return string(s.b[start : s.i-1]), true
}

// stringSpan advances past a plain string and returns where its content
// starts (it ends at s.i-1).
func (s *scanner) stringSpan() (int, bool) {
	if !s.eat('"') {
		return 0, false
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(s.b[start:s.i]) {
				return 0, false // encoding/json would replace the bytes
			}
			s.i++
			return start, true
		case c == '\\' || c < 0x20:
			return 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		s.i++
	}
	return 0, false
}

// numberSpan advances past a JSON number (RFC 8259 grammar) and returns it
// and whether it is a plain integer (no fraction, no exponent).
func (s *scanner) numberSpan() ([]byte, bool, bool) {
	start := s.i
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return nil, false, false
	}
	integer := true
	if s.eat('.') {
		integer = false
		if s.digits() == 0 {
			return nil, false, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		integer = false
		s.i++
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return nil, false, false
		}
	}
	return s.b[start:s.i], integer, true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) int64Value() (int64, bool) {
	num, integer, ok := s.numberSpan()
	if !ok || !integer {
		return 0, false
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	return v, err == nil
}

func (s *scanner) float64Value() (float64, bool) {
	num, _, ok := s.numberSpan()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(num), 64)
	return v, err == nil
}
