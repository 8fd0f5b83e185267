package mixing

import (
	"bufio"
	"fmt"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Series is a per-minute series: Values[i] is the value of minute
// Start + i. Minutes the trace lacks are NaN until filled.
type Series struct {
	Name   string
	Start  time.Time
	Values []float64
}

// InferenceTraces are the shared traces the backtest replays as inference
// demand, by name; the value column is the demand (requests, CPU).
var InferenceTraces = map[string]TraceSpec{
	"nasa":   {File: "nasa_requests_per_minute.csv", ValueCol: 1},
	"elb":    {File: "elb_request_count_8c0756.csv", ValueCol: 1},
	"vm_cpu": {File: "vm_cpu_readings_month_aggregated_cpu_mem.csv", ValueCol: 1, OffsetSeconds: true},
}

// TrainingTrace is the Philly busy-node curve: time, active, total.
var TrainingTrace = TraceSpec{File: "philly_node_sequence.csv", ValueCol: 1, TotalCol: 2}

// TraceSpec says how to read one CSV trace.
type TraceSpec struct {
	File     string
	ValueCol int
	// TotalCol, when above 0, divides the value by that column (Philly:
	// active ÷ total nodes).
	TotalCol int
	// OffsetSeconds: the time column is seconds from an unknown start,
	// read as seconds from 2019-01-01 00:00 UTC (Azure gives no wall clock).
	OffsetSeconds bool
}

// ReadTrace reads a trace into a per-minute series. Coarser traces (5 min)
// hold each value over its step; of two rows in the same minute the later
// wins (the shared traces have at most one per minute); minutes missing
// between rows are filled by linear interpolation, and the count of filled
// minutes is returned so the report can say so.
func ReadTrace(dir, name string, spec TraceSpec) (Series, int, error) {
	path, err := trace.InDir(dir, spec.File)
	if err != nil {
		return Series{}, 0, fmt.Errorf("mixing: trace %s: %w", name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return Series{}, 0, fmt.Errorf("mixing: trace %s: %w", name, err)
	}
	defer f.Close()
	return parseTrace(f, name, spec)
}

func parseTrace(r io.Reader, name string, spec TraceSpec) (Series, int, error) {
	sc := bufio.NewScanner(r)
	var times []time.Time
	var vals []float64
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // header
		}
		cols := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if len(cols) <= max(spec.ValueCol, spec.TotalCol) {
			return Series{}, 0, fmt.Errorf("mixing: trace %s line %d: %d columns, want more than %d", name, line, len(cols), max(spec.ValueCol, spec.TotalCol))
		}
		var t time.Time
		if spec.OffsetSeconds {
			s, err := strconv.ParseFloat(cols[0], 64)
			if err != nil {
				return Series{}, 0, fmt.Errorf("mixing: trace %s line %d: time %q: %w", name, line, cols[0], err)
			}
			t = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s) * time.Second)
		} else {
			var err error
			t, err = time.Parse(time.DateTime, cols[0])
			if err != nil {
				return Series{}, 0, fmt.Errorf("mixing: trace %s line %d: time: %w", name, line, err)
			}
		}
		v, err := strconv.ParseFloat(cols[spec.ValueCol], 64)
		if err != nil {
			return Series{}, 0, fmt.Errorf("mixing: trace %s line %d: value %q: %w", name, line, cols[spec.ValueCol], err)
		}
		if spec.TotalCol > 0 {
			tot, err := strconv.ParseFloat(cols[spec.TotalCol], 64)
			if err != nil || tot <= 0 {
				return Series{}, 0, fmt.Errorf("mixing: trace %s line %d: total %q is not a positive number", name, line, cols[spec.TotalCol])
			}
			v /= tot
		}
		times = append(times, t.Truncate(time.Minute))
		vals = append(vals, v)
	}
	if err := sc.Err(); err != nil {
		return Series{}, 0, fmt.Errorf("mixing: trace %s: %w", name, err)
	}
	if len(times) < 2 {
		return Series{}, 0, fmt.Errorf("mixing: trace %s: fewer than 2 rows", name)
	}
	start := times[0].Truncate(24 * time.Hour)
	n := int(times[len(times)-1].Sub(start)/time.Minute) + 1
	s := Series{Name: name, Start: start, Values: make([]float64, n)}
	for i := range s.Values {
		s.Values[i] = math.NaN()
	}
	step := int(times[1].Sub(times[0]) / time.Minute)
	for i, t := range times {
		idx := int(t.Sub(start) / time.Minute)
		if idx < 0 || idx >= n {
			continue
		}
		s.Values[idx] = vals[i]
		if step > 1 { // hold a coarse row's value over its step
			for k := 1; k < step && idx+k < n; k++ {
				s.Values[idx+k] = vals[i]
			}
		}
	}
	return s, fillGaps(s.Values), nil
}

// fillGaps interpolates NaN minutes linearly between known neighbours (and
// holds the edge values), returning how many minutes it filled.
func fillGaps(v []float64) int {
	filled := 0
	last := -1
	for i := range v {
		if math.IsNaN(v[i]) {
			continue
		}
		if last >= 0 && i-last > 1 {
			for k := last + 1; k < i; k++ {
				v[k] = v[last] + (v[i]-v[last])*float64(k-last)/float64(i-last)
				filled++
			}
		} else if last < 0 {
			for k := 0; k < i; k++ {
				v[k] = v[i]
				filled++
			}
		}
		last = i
	}
	for k := last + 1; k < len(v); k++ {
		v[k] = v[last]
		filled++
	}
	return filled
}
