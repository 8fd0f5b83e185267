// Package trace turns a load trace in CSV form (one timestamp column, one
// value column) into ebbflow windows, so that any real trace becomes
// history the trainer and evaluator read exactly like the windows the
// window processors write.
//
// Each row becomes one gauge window of the trace's step (60 s, 300 s, …;
// the step is kept, not resampled), aligned down to a multiple of the step.
// Rows that fall in the same step are averaged. Missing rows stay missing:
// a gap in the trace is a gap in the history, never zeros.
package trace

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Time formats of the timestamp column.
const (
	FormatAuto     = "auto"     // datetime, RFC 3339, or a number (Unix ms, offset or Unix s; see the package doc)
	FormatDateTime = "datetime" // 2006-01-02 15:04:05, 2006-01-02T15:04:05 or 2006-01-02 15:04 (in Options.Location)
	FormatRFC3339  = "rfc3339"
	FormatUnix     = "unix"    // seconds since 1970
	FormatUnixMs   = "unix_ms" // milliseconds since 1970
	FormatOffset   = "offset"  // seconds from Options.Start (Azure traces)
)

// Options say how to read a trace.
type Options struct {
	// Entity and Signal name the windows Read makes (required by Read).
	Entity, Signal string
	// TimeCol and ValueCol name the columns (header names) or, when they
	// parse as integers, give their 0-based index. Empty: column 0, and
	// for the value the first of PreferValueCols present, else column 1.
	TimeCol, ValueCol string
	// PreferValueCols are value column names tried in order when ValueCol
	// is empty.
	PreferValueCols []string
	// Sort sorts rows by time instead of refusing a trace out of order.
	Sort bool
	// EmptyIsGap skips a row whose value cell is empty (a gap) instead of
	// refusing it.
	EmptyIsGap bool
	// TimeFormat is one of the Format constants; empty means auto.
	TimeFormat string
	// Start is the wall-clock time of offset 0 (FormatOffset).
	Start time.Time
	// Location of datetime values without a zone; nil means UTC.
	Location *time.Location
	// StepS is the window size; 0 infers it as the most common interval.
	StepS int64
}

// Stats describe what was read.
type Stats struct {
	// ValueCol is the header name of the value column read.
	ValueCol      string
	Rows, Skipped int
	StepS         int64
	FirstMs       int64
	LastMs        int64
	// Gaps counts missing steps between the first and the last.
	Gaps int64
}

// Point is one row of a trace: its time (Unix ms) and value.
type Point struct {
	Ms int64
	V  float64
}

// ReadPoints parses a CSV trace into points in time order, by the rules
// of the package doc. A row that breaks them is an error naming the line:
// a trace is curated input, and silently dropping rows would bias
// evaluation. Stats has the value column, the rows, the skipped rows and
// the first and last time; Read fills the rest.
func ReadPoints(r io.Reader, o Options) ([]Point, Stats, error) {
	var st Stats
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, st, fmt.Errorf("trace: reading header: %w", err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	tc, err := column(header, o.TimeCol, 0)
	if err != nil {
		return nil, st, err
	}
	vc := -1
	if o.ValueCol == "" {
		for _, name := range o.PreferValueCols {
			if i := slices.Index(header, name); i >= 0 && i != tc {
				vc = i
				break
			}
		}
	}
	if vc < 0 {
		if vc, err = column(header, o.ValueCol, 1); err != nil {
			return nil, st, err
		}
	}
	if vc == tc {
		return nil, st, fmt.Errorf("trace: value column %q is the time column", header[vc])
	}
	st.ValueCol = header[vc]
	format := o.TimeFormat
	if format == "" {
		format = FormatAuto
	}
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	var pts []Point
	line := 1
	for {
		rec, err := cr.Read()
		line++
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, st, fmt.Errorf("trace: line %d: %w", line, err)
		}
		if len(rec) <= max(tc, vc) {
			return nil, st, fmt.Errorf("trace: line %d: %d fields, need column %d", line, len(rec), max(tc, vc))
		}
		vs := strings.TrimSpace(rec[vc])
		if vs == "" {
			if !o.EmptyIsGap {
				return nil, st, fmt.Errorf("trace: line %d: column %s is empty (to read it as a gap: Options.EmptyIsGap, history import --empty-is-gap)", line, header[vc])
			}
			st.Skipped++
			continue
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, st, fmt.Errorf("trace: line %d: column %s: value %q is not a finite number", line, header[vc], vs)
		}
		ms, err := parseTime(strings.TrimSpace(rec[tc]), format, o.Start, loc)
		if err != nil {
			return nil, st, fmt.Errorf("trace: line %d: %w", line, err)
		}
		if n := len(pts); n > 0 && ms < pts[n-1].Ms && !o.Sort {
			return nil, st, fmt.Errorf("trace: line %d: time %q is before the row above (rows must be in time order; Options.Sort, history import --sort, sorts them)", line, strings.TrimSpace(rec[tc]))
		}
		pts = append(pts, Point{ms, v})
		st.Rows++
	}
	if len(pts) == 0 {
		return nil, st, errors.New("trace: no rows")
	}
	if o.Sort {
		slices.SortStableFunc(pts, func(a, b Point) int { return cmp.Compare(a.Ms, b.Ms) })
	}
	st.FirstMs, st.LastMs = pts[0].Ms, pts[len(pts)-1].Ms
	return pts, st, nil
}

// Read parses a CSV trace (ReadPoints) into windows sorted by start.
func Read(r io.Reader, o Options) ([]schemas.Window, Stats, error) {
	if o.Entity == "" || o.Signal == "" {
		return nil, Stats{}, errors.New("trace: entity and signal are required")
	}
	pts, st, err := ReadPoints(r, o)
	if err != nil {
		return nil, st, err
	}
	step := o.StepS
	if step <= 0 {
		step = inferStep(pts[0].Ms, func(i int) int64 { return pts[i].Ms }, len(pts))
	}
	st.StepS = step
	stepMs := step * 1000
	var out []schemas.Window
	for _, p := range pts {
		start := floorDiv(p.Ms, stepMs) * stepMs
		if n := len(out); n > 0 && out[n-1].StartMs == start {
			w := &out[n-1]
			w.Count++
			w.Sum += p.V
			w.Min = min(w.Min, p.V)
			w.Max = max(w.Max, p.V)
			w.Mean = w.Sum / float64(w.Count)
			w.Last = p.V
			w.P50, w.P95, w.P99 = w.Mean, w.Max, w.Max
			continue
		}
		out = append(out, schemas.Window{
			Entity: o.Entity, Signal: o.Signal, Kind: schemas.KindGauge, SizeS: step,
			StartMs: start, EndMs: start + stepMs, Count: 1,
			Sum: p.V, Min: p.V, Max: p.V, Mean: p.V, Last: p.V, P50: p.V, P95: p.V, P99: p.V,
		})
	}
	st.FirstMs, st.LastMs = out[0].StartMs, out[len(out)-1].StartMs
	st.Gaps = (st.LastMs-st.FirstMs)/stepMs + 1 - int64(len(out))
	return out, st, nil
}

func column(header []string, want string, def int) (int, error) {
	if want == "" {
		if def >= len(header) {
			return 0, fmt.Errorf("trace: header has %d columns, need column %d", len(header), def)
		}
		return def, nil
	}
	for i, h := range header {
		if strings.TrimSpace(h) == want {
			return i, nil
		}
	}
	if i, err := strconv.Atoi(want); err == nil && i >= 0 && i < len(header) {
		return i, nil
	}
	return 0, fmt.Errorf("trace: no column %q in header %v", want, header)
}

func parseTime(s, format string, start time.Time, loc *time.Location) (int64, error) {
	switch format {
	case FormatDateTime:
		t, err := parseDateTime(s, loc)
		return t.UnixMilli(), wrapTime(s, err)
	case FormatRFC3339:
		t, err := time.Parse(time.RFC3339Nano, s)
		return t.UnixMilli(), wrapTime(s, err)
	case FormatUnix:
		f, err := strconv.ParseFloat(s, 64)
		return int64(math.Round(f * 1000)), wrapTime(s, err)
	case FormatUnixMs:
		f, err := strconv.ParseFloat(s, 64)
		return int64(math.Round(f)), wrapTime(s, err)
	case FormatOffset:
		if start.IsZero() {
			return 0, errors.New("time format offset needs a start time (--start)")
		}
		f, err := strconv.ParseFloat(s, 64)
		return start.UnixMilli() + int64(math.Round(f*1000)), wrapTime(s, err)
	case FormatAuto:
		if t, err := parseDateTime(s, loc); err == nil {
			return t.UnixMilli(), nil
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UnixMilli(), nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("timestamp %q is not a datetime, RFC 3339 or Unix time", s)
		}
		if math.Abs(f) >= 1e11 { // past 1973 in ms, past year 5138 in s
			return int64(math.Round(f)), nil
		}
		if f < 1e8 && !start.IsZero() { // small numbers with a start: offsets
			return start.UnixMilli() + int64(math.Round(f*1000)), nil
		}
		return int64(math.Round(f * 1000)), nil
	}
	return 0, fmt.Errorf("time format %q is not auto, datetime, rfc3339, unix, unix_ms or offset", format)
}

// dateTimeLayouts are the zone-less date-times, read in Options.Location.
var dateTimeLayouts = []string{time.DateTime, "2006-01-02T15:04:05", "2006-01-02 15:04"}

func parseDateTime(s string, loc *time.Location) (time.Time, error) {
	var err error
	for _, layout := range dateTimeLayouts {
		var t time.Time
		if t, err = time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

func wrapTime(s string, err error) error {
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", s, err)
	}
	return nil
}

// inferStep returns the most common positive interval, in whole seconds.
func inferStep(_ int64, at func(int) int64, n int) int64 {
	count := map[int64]int{}
	for i := 1; i < n; i++ {
		if d := (at(i) - at(i-1)) / 1000; d > 0 {
			count[d]++
		}
	}
	best, bestN := int64(60), 0
	for d, c := range count {
		if c > bestN || (c == bestN && d < best) {
			best, bestN = d, c
		}
	}
	return best
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
