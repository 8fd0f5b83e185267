package backtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
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
	_, ok1 := col["active"]
	_, ok2 := col["total"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("line 1: header %v lacks active and total columns", head)
	}
	return parseCurveRows(cr, head)
}

// parseCurveRows reads the rows of an active,total trace after its header.
func parseCurveRows(cr *csv.Reader, head []string) (Curve, error) {
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	ai, ti := col["active"], col["total"]
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

// Trace formats the backtest reads as a cluster-occupancy curve.
const (
	// FormatPhillyNodes: time,active,total per minute (philly_node_sequence.csv);
	// the curve is active ÷ total, the share of nodes running jobs.
	FormatPhillyNodes = "philly_nodes"
	// FormatAzureVMAlloc: timestamp,cpu_usage,assigned_mem per 300 s
	// (vm_cpu_readings_month_aggregated_cpu_mem.csv); the curve is
	// assigned_mem ÷ its maximum over the trace — the memory the cluster's
	// VMs (its jobs) were allocated, peak = full — each row held for
	// the 5 minutes it covers.
	FormatAzureVMAlloc = "azure_vm_alloc"
)

// SharedTrace is one file of the shared traces directory and whether the
// backtest replays it.
type SharedTrace struct {
	File   string `json:"file"`
	Format string `json:"format,omitempty"`
	// What the curve is; Skip why the file is not replayed ("" = replayed).
	What string `json:"what"`
	Skip string `json:"skip,omitempty"`
}

// SharedTraces lists the shared traces (../shared/traces/SOURCES.md) and
// how the backtest treats each. None holds individual jobs; the two that
// record a cluster's allocations over time (Philly's busy GPU nodes, the
// Azure VMs' assigned memory) are replayed as the offered-demand curve of a
// generated job stream. The request-rate traces measure web traffic, not
// allocations, and are skipped with the reason.
func SharedTraces() []SharedTrace {
	return []SharedTrace{
		{File: "philly_node_sequence.csv", Format: FormatPhillyNodes,
			What: "Microsoft Philly GPU cluster: share of nodes running at least one job, per minute (job starts and ends)"},
		{File: "vm_cpu_readings_month_aggregated_cpu_mem.csv", Format: FormatAzureVMAlloc,
			What: "Azure VM trace v2: memory assigned to all VMs ÷ its maximum, per 5 min (VM creations and deletions)"},
		{File: "nasa_requests_per_minute.csv", What: "NASA web server requests per minute",
			Skip: "request rate of a web server: no jobs and no allocations"},
		{File: "elb_request_count_8c0756.csv", What: "AWS ELB requests per 5 min",
			Skip: "request rate of a load balancer: no jobs and no allocations"},
	}
}

// ReadTrace reads a trace of either format, detected from its header.
func ReadTrace(path string) (Curve, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("backtest: trace: %w", err)
	}
	defer f.Close()
	c, format, err := ParseTrace(f)
	if err != nil {
		return nil, "", fmt.Errorf("backtest: trace %s: %w", path, err)
	}
	return c, format, nil
}

// ParseTrace parses a trace of either format, detected from its header:
// active and total columns → FormatPhillyNodes; assigned_mem →
// FormatAzureVMAlloc. Errors name the line and column.
func ParseTrace(r io.Reader) (Curve, string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, "", fmt.Errorf("line 1: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	_, hasActive := col["active"]
	_, hasTotal := col["total"]
	if hasActive && hasTotal {
		c, err := parseCurveRows(cr, head)
		return c, FormatPhillyNodes, err
	}
	mi, ok := col["assigned_mem"]
	if !ok {
		return nil, "", fmt.Errorf("line 1: header %v: want active,total (Philly nodes) or assigned_mem (Azure VMs)", head)
	}
	ti, ok := col["timestamp"]
	if !ok {
		return nil, "", fmt.Errorf("line 1: header %v lacks timestamp", head)
	}
	var vals []float64
	var ts []float64
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) <= max(mi, ti) {
			return nil, "", fmt.Errorf("line %d: %d fields, want at least %d", line, len(rec), max(mi, ti)+1)
		}
		t, err := strconv.ParseFloat(strings.TrimSpace(rec[ti]), 64)
		if err != nil {
			return nil, "", fmt.Errorf("line %d: timestamp: %q is not a number of seconds", line, rec[ti])
		}
		if n := len(ts); n > 0 && t <= ts[n-1] {
			return nil, "", fmt.Errorf("line %d: timestamp: %v does not follow %v", line, t, ts[n-1])
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[mi]), 64)
		if err != nil || v < 0 {
			return nil, "", fmt.Errorf("line %d: assigned_mem: %q is not a non-negative number", line, rec[mi])
		}
		ts, vals = append(ts, t), append(vals, v)
	}
	if len(vals) < 2 {
		return nil, "", errors.New("fewer than two rows")
	}
	peak := 0.0
	for _, v := range vals {
		peak = max(peak, v)
	}
	if peak <= 0 {
		return nil, "", errors.New("assigned_mem: all zero")
	}
	var out Curve
	for i, v := range vals {
		// Each row covers the minutes to the next row (the last row: as
		// many as the one before).
		j := min(i, len(ts)-2)
		step := ts[j+1] - ts[j]
		for k := 0; k < max(1, int(math.Round(step/60))); k++ {
			out = append(out, v/peak)
		}
	}
	return out, FormatAzureVMAlloc, nil
}
