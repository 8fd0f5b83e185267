package backtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Curve is a busy fraction per minute (busy nodes ÷ total nodes).
type Curve []float64

// ReadCurve reads a CSV with header time,active,total (one row per minute),
// as /work/shared/traces/philly_node_sequence.csv. Errors name the line and
// column.
func ReadCurve(path string) (Curve, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backtest: trace: %w", err)
	}
	defer f.Close()
	c, err := ParseCurve(f)
	if err != nil {
		return nil, fmt.Errorf("backtest: trace %s: %w", path, err)
	}
	return c, nil
}

// ParseCurve parses the CSV of ReadCurve.
func ParseCurve(r io.Reader) (Curve, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(h)] = i
	}
	ai, ok1 := col["active"]
	ti, ok2 := col["total"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("line 1: header %v lacks active and total columns", head)
	}
	var out Curve
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) <= max(ai, ti) {
			return nil, fmt.Errorf("line %d: %d fields, want at least %d", line, len(rec), max(ai, ti)+1)
		}
		a, err := strconv.ParseFloat(strings.TrimSpace(rec[ai]), 64)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("line %d: active: %q is not a non-negative number", line, rec[ai])
		}
		t, err := strconv.ParseFloat(strings.TrimSpace(rec[ti]), 64)
		if err != nil || t <= 0 {
			return nil, fmt.Errorf("line %d: total: %q is not a positive number", line, rec[ti])
		}
		out = append(out, min(1, a/t))
	}
	if len(out) == 0 {
		return nil, errors.New("no rows")
	}
	return out, nil
}
