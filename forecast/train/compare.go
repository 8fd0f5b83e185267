package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

// SharedTrace is one trace of ../shared/traces (see its SOURCES.md) and
// how the comparison reads it.
type SharedTrace struct {
	Name, File, ValueCol string
	// Start is the wall-clock time of offset 0 (traces timed in seconds
	// from their start).
	Start time.Time
	// Folds is the number of rolling-origin folds the trace is long enough
	// for.
	Folds int
}

// SharedTraces are the traces the learner is compared on.
var SharedTraces = []SharedTrace{
	{Name: "nasa", File: "nasa_requests_per_minute.csv", ValueCol: "number_of_requests", Folds: 2},
	{Name: "philly", File: "philly_node_sequence.csv", ValueCol: "active", Folds: 2},
	{Name: "azure", File: "vm_cpu_readings_month_aggregated_cpu_mem.csv", ValueCol: "cpu_usage", Start: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), Folds: 2},
	{Name: "elb", File: "elb_request_count_8c0756.csv", ValueCol: "value", Folds: 2},
}

// ReadSharedTrace reads one shared trace as the history of one entity with
// signal qps.
func ReadSharedTrace(dir string, tc SharedTrace) (*features.History, error) {
	p, err := trace.InDir(dir, tc.File)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", tc.Name, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", tc.Name, err)
	}
	defer f.Close()
	ws, st, err := trace.Read(f, trace.Options{Entity: "svc/trace/" + tc.Name + "/web", Signal: "qps", ValueCol: tc.ValueCol, Start: tc.Start})
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", tc.Name, err)
	}
	return features.FromWindows(ws, st.StepS)
}

// Feature sets, as specs of the one feature builder (so that any of them
// is servable as is). DefaultFeatures won the comparison (docs/forecast.md).
const (
	FeaturesV1        = "v1"         // 9 sparse lags, rolling stats, deltas, seasonal: the spec before the comparison
	FeaturesLags      = "lags"       // 29 dense lags and time only
	FeaturesLagsStats = "lags+stats" // dense lags, rolling mean/max/std, deltas
	FeaturesAll       = "all"        // dense lags, rolling stats, deltas, seasonal (day and week ago)
	DefaultFeatures   = FeaturesAll
)

// SpecFor returns the spec of a named feature set.
func SpecFor(set, signal string, stepS int64, horizons int, others []string) (features.Spec, error) {
	lags29 := make([]int, 29)
	for i := range lags29 {
		lags29[i] = i + 1 // y_cur is lag 0
	}
	s := features.DefaultSpec(signal, stepS, horizons, others)
	switch set {
	case FeaturesV1:
	case FeaturesLags:
		s.Lags, s.Rolling, s.Deltas, s.Seasonal = lags29, nil, nil, false
	case FeaturesLagsStats:
		s.Lags, s.Seasonal = lags29, false
	case FeaturesAll:
		s.Lags = lags29
	default:
		return s, fmt.Errorf("train: feature set %q is not one of %s, %s, %s, %s", set, FeaturesV1, FeaturesLags, FeaturesLagsStats, FeaturesAll)
	}
	return s, nil
}

// FeatureSets are the feature sets compared.
func FeatureSets(stepS int64, horizons int) map[string]features.Spec {
	out := map[string]features.Spec{}
	for _, n := range []string{FeaturesV1, FeaturesLags, FeaturesLagsStats, FeaturesAll} {
		out[n], _ = SpecFor(n, "qps", stepS, horizons, nil)
	}
	return out
}

// CompareOptions configure a learner comparison.
type CompareOptions struct {
	Python, Script string
	// TracesDir holds the shared traces (trace.Dir); Work holds the matrices, the job file
	// and the result cache (reused between runs).
	TracesDir, Work string
	// Traces limits the traces by name (empty: all).
	Traces []string
	// Variants limits the variants (empty: all of compare.py's).
	Variants         []string
	ValFrac, TestFac float64
	Progress         io.Writer
}

// Comparison is compare.py's summary: per trace, the pooled test-span MAE
// ratio to last value per horizon of every variant and baseline.
type Comparison struct {
	ValFrac  float64         `json:"val_frac"`
	TestFrac float64         `json:"test_frac"`
	Traces   []TraceCompared `json:"traces"`
}

// TraceCompared is one trace's figures.
type TraceCompared struct {
	Name     string                     `json:"name"`
	StepS    int64                      `json:"step_s"`
	Folds    int                        `json:"folds"`
	N        []int                      `json:"n"`
	Cuts     []map[string]int64         `json:"cuts"`
	MAELast  []float64                  `json:"mae_last"`
	Seasonal []float64                  `json:"seasonal"`
	Plain    []float64                  `json:"plain"`
	Variants map[string]VariantCompared `json:"variants"`
}

// VariantCompared is one variant's pooled test figures.
type VariantCompared struct {
	RatioLast []float64 `json:"ratio_last"`
	Rounds    [][]int   `json:"rounds"`
	Coverage  []float64 `json:"coverage,omitempty"`
}

// Compare builds one matrix per trace and feature set (cached in o.Work)
// and runs forecast/python/compare.py on them.
func Compare(ctx context.Context, o CompareOptions) (*Comparison, error) {
	py, err := PythonPath(o.Python)
	if err != nil {
		return nil, err
	}
	script := o.Script
	if script == "" {
		if script, err = ScriptPath(""); err != nil {
			return nil, err
		}
	}
	script = filepath.Join(filepath.Dir(script), "compare.py")
	if o.ValFrac == 0 {
		o.ValFrac = 0.15
	}
	if o.TestFac == 0 {
		o.TestFac = 0.15
	}
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	type jobTrace struct {
		Name        string            `json:"name"`
		StepS       int64             `json:"step_s"`
		Horizons    int               `json:"horizons"`
		Folds       int               `json:"folds"`
		FeatureSets map[string]string `json:"featuresets"`
	}
	jobs := struct {
		ValFrac  float64    `json:"val_frac"`
		TestFrac float64    `json:"test_frac"`
		Traces   []jobTrace `json:"traces"`
	}{ValFrac: o.ValFrac, TestFrac: o.TestFac}
	for _, tc := range SharedTraces {
		if len(o.Traces) > 0 && !contains(o.Traces, tc.Name) {
			continue
		}
		h, err := ReadSharedTrace(o.TracesDir, tc)
		if err != nil {
			return nil, err
		}
		jt := jobTrace{Name: tc.Name, StepS: h.StepS, Horizons: 5, Folds: tc.Folds, FeatureSets: map[string]string{}}
		for name, spec := range FeatureSets(h.StepS, 5) {
			p := filepath.Join(o.Work, fmt.Sprintf("%s.%s.parquet", tc.Name, strings.ReplaceAll(name, "+", "_")))
			jt.FeatureSets[name] = p
			specPath := p + ".spec.json"
			if old, err := os.ReadFile(specPath); err == nil && string(old) == spec.JSON() {
				if _, err := os.Stat(p); err == nil {
					continue // built by an earlier run with the same spec
				}
			}
			m, err := BuildMatrix(h, spec, h.First, h.Last)
			if err != nil {
				return nil, fmt.Errorf("compare: trace %s, feature set %s: %w", tc.Name, name, err)
			}
			if err := writeMatrixFile(p, m); err != nil {
				return nil, err
			}
			if err := os.WriteFile(specPath, []byte(spec.JSON()), 0o644); err != nil {
				return nil, fmt.Errorf("compare: %w", err)
			}
			fmt.Fprintf(progress, "compare: %s: feature set %s: %d rows × %d features → %s\n", tc.Name, name, m.Rows(), len(m.Names), p)
		}
		jobs.Traces = append(jobs.Traces, jt)
	}
	if len(jobs.Traces) == 0 {
		return nil, fmt.Errorf("compare: no trace selected (known: %s)", traceNames())
	}
	jobPath := filepath.Join(o.Work, "jobs.json")
	b, _ := json.MarshalIndent(jobs, "", "  ")
	if err := os.WriteFile(jobPath, b, 0o644); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	args := []string{script, "--jobs", jobPath, "--cache", filepath.Join(o.Work, "cache")}
	if len(o.Variants) > 0 {
		args = append(args, "--variants", strings.Join(o.Variants, ","))
	}
	cmd := exec.CommandContext(ctx, py, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, progress
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("compare: %s %s: %w", py, script, err)
	}
	var c Comparison
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		return nil, fmt.Errorf("compare: compare.py output: %w", err)
	}
	return &c, nil
}

func writeMatrixFile(p string, m *Matrix) error {
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if err := WriteParquet(f, m); err != nil {
		f.Close()
		return fmt.Errorf("compare: %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("compare: %s: %w", p, err)
	}
	return os.Rename(tmp, p)
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func traceNames() string {
	var n []string
	for _, t := range SharedTraces {
		n = append(n, t.Name)
	}
	return strings.Join(n, ", ")
}

// CompareVariants are compare.py's variants, in table order.
var CompareVariants = []string{"current", "squared", "abs", "abs-w", "abs-w/lags", "abs-w/lags+stats", "abs-w/all", "abs-w/per-horizon", "q90-w"}

// Markdown writes the comparison as one table per trace: the MAE ratio to
// last value at every horizon (below 1 beats last value), for seasonal
// naive, the plain lag XGBoost and each variant, and the mean over the
// gate horizons.
func (c *Comparison) Markdown(w io.Writer, variants []string) {
	f := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "—"
		}
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	c.summary(w, variants, f)
	for _, t := range c.Traces {
		gate := model.DefaultGate().Horizons(t.StepS, len(t.N))
		fmt.Fprintf(w, "\n**%s** (step %d s, %d fold(s), test rows per horizon %d; MAE of last value at h1 %.4g)\n\n", t.Name, t.StepS, t.Folds, t.N[0], t.MAELast[0])
		hdr := "| variant |"
		sep := "|---|"
		for k := range t.N {
			hdr += fmt.Sprintf(" h%d |", k+1)
			sep += "---:|"
		}
		fmt.Fprintf(w, "%s mean %s |\n%s---:|\n", hdr, horizonList(gate), sep)
		row := func(name string, r []float64, extra string) {
			s := "| " + name + " |"
			for _, v := range r {
				s += " " + f(v) + " |"
			}
			fmt.Fprintf(w, "%s %s |%s\n", s, f(gateMean(r, gate)), extra)
		}
		row("seasonal naive", t.Seasonal, "")
		row("plain lag XGBoost", t.Plain, "")
		for _, v := range variants {
			e, ok := t.Variants[v]
			if !ok {
				continue
			}
			name := v
			if len(e.Coverage) > 0 {
				name += fmt.Sprintf(" (coverage h%d %.2f)", gate[len(gate)-1], e.Coverage[min(gate[len(gate)-1], len(e.Coverage))-1])
			}
			row(name, e.RatioLast, "")
		}
	}
}

// summary writes one table: per variant and baseline, the mean MAE ratio to
// last value over each trace's decider horizons (3–5 min: h3–h5 at 60 s
// steps, h1 at 300 s), and the mean over traces.
func (c *Comparison) summary(w io.Writer, variants []string, f func(float64) string) {
	hdr, sep := "| variant |", "|---|"
	for _, t := range c.Traces {
		hdr += fmt.Sprintf(" %s (%s) |", t.Name, horizonList(model.DefaultGate().Horizons(t.StepS, len(t.N))))
		sep += "---:|"
	}
	fmt.Fprintf(w, "Mean test MAE ratio to last value at the decider horizons (below 1 beats last value):\n\n%s mean |\n%s---:|\n", hdr, sep)
	row := func(name string, get func(TraceCompared) ([]float64, bool)) {
		s, sum, n := "| "+name+" |", 0.0, 0
		for _, t := range c.Traces {
			r, ok := get(t)
			if !ok {
				s += " — |"
				continue
			}
			m := gateMean(r, model.DefaultGate().Horizons(t.StepS, len(t.N)))
			s += " " + f(m) + " |"
			sum += m
			n++
		}
		mean := math.NaN()
		if n == len(c.Traces) && n > 0 {
			mean = sum / float64(n)
		}
		fmt.Fprintf(w, "%s %s |\n", s, f(mean))
	}
	row("seasonal naive", func(t TraceCompared) ([]float64, bool) { return t.Seasonal, true })
	row("plain lag XGBoost", func(t TraceCompared) ([]float64, bool) { return t.Plain, true })
	for _, v := range variants {
		row(v, func(t TraceCompared) ([]float64, bool) { e, ok := t.Variants[v]; return e.RatioLast, ok })
	}
}

func gateMean(r []float64, gate []int) float64 {
	s, n := 0.0, 0
	for _, h := range gate {
		if h-1 < len(r) {
			s += r[h-1]
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

func horizonList(hs []int) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = "h" + strconv.Itoa(h)
	}
	return strings.Join(s, ",")
}
