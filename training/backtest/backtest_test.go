package backtest

import (
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func readTrace(t *testing.T) Curve {
	t.Helper()
	tracePath, err := trace.SharedPath("philly_node_sequence.csv")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadCurve(tracePath)
	if err != nil {
		t.Fatalf("read %s: %v", tracePath, err)
	}
	return c
}

// shortOptions: three days after half a day of warm-up on a 128-GPU
// cluster, so the test runs in about a second.
func shortOptions(seed uint64) Options {
	o := DefaultOptions()
	o.Gen.Seed = seed
	o.Gen.Minutes = 3*24*60 + 12*60
	o.WarmupMinutes = 12 * 60
	o.Gen.Models[0].GPUs, o.Gen.Models[1].GPUs = 64, 64
	return o
}

func TestReadCurve(t *testing.T) {
	c := readTrace(t)
	if len(c) < 100_000 {
		t.Fatalf("%d minutes, want the whole trace", len(c))
	}
	for i, v := range c {
		if v < 0 || v > 1 {
			t.Fatalf("minute %d: busy fraction %v", i, v)
		}
	}
	_, err := ParseCurve(strings.NewReader("time,active,total\n2017-10-03 00:00:00,312,420\n2017-10-03 00:01:00,x,420\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "active") {
		t.Fatalf("bad row error %v does not name line 3 and column active", err)
	}
	if _, err := ParseCurve(strings.NewReader("time,busy\n")); err == nil {
		t.Fatal("header without active,total accepted")
	}
}

func TestGeneratedStreamFollowsTheCurve(t *testing.T) {
	c := readTrace(t)
	o := shortOptions(7).Gen
	jobs, err := Generate(c, o)
	if err != nil {
		t.Fatal(err)
	}
	// Offered requested GPUs per minute, had every job started on arrival.
	diff := make([]float64, o.Minutes+1)
	for _, j := range jobs {
		diff[j.Arrival] += float64(j.ReqGPUs)
		if e := j.Arrival + j.Duration; e < len(diff) {
			diff[e] -= float64(j.ReqGPUs)
		}
	}
	capGPUs := float64(o.CapacityGPUs())
	run, sumErr, n := 0.0, 0.0, 0
	for t0 := 0; t0 < o.Minutes; t0++ {
		run += diff[t0]
		target := c[t0] * capGPUs * o.LoadFactor
		if run+1e-9 < target {
			t.Fatalf("minute %d: offered %v below target %v", t0, run, target)
		}
		sumErr += (run - target) / target
		n++
	}
	// Overshoot is at most one job's GPUs per minute, on average small.
	if m := sumErr / float64(n); m > 0.1 {
		t.Errorf("offered demand overshoots the curve by %.1f%% on average", 100*m)
	}
	// Heavy-tailed durations, mostly small jobs, over-requested GPUs.
	var durs []float64
	small, need, req := 0, 0.0, 0.0
	for _, j := range jobs {
		durs = append(durs, float64(j.Duration))
		if j.ReqGPUs == 1 {
			small++
		}
		need += j.Need
		req += float64(j.ReqGPUs)
		if j.Need > float64(j.ReqGPUs) || j.Need <= 0 {
			t.Fatalf("job %d needs %v of %d requested GPUs", j.ID, j.Need, j.ReqGPUs)
		}
	}
	sort.Float64s(durs)
	med, p999 := durs[len(durs)/2], durs[len(durs)*999/1000]
	if med > 120 || p999 < 50*med {
		t.Errorf("durations not heavy-tailed: median %v min, p99.9 %v min", med, p999)
	}
	if float64(small)/float64(len(jobs)) < 0.4 {
		t.Errorf("only %d of %d jobs ask for one GPU", small, len(jobs))
	}
	if need/req > 0.8 {
		t.Errorf("jobs use %.0f%% of what they request: nothing for sizing to recover", 100*need/req)
	}
}

func TestBacktestDeterministicAndSeeded(t *testing.T) {
	c := readTrace(t)
	a, err := Run(c, shortOptions(3))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Run(c, shortOptions(3))
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different reports")
	}
	d, _ := Run(c, shortOptions(4))
	if d.Jobs == a.Jobs && d.Ebbflow.Used == a.Ebbflow.Used {
		t.Fatal("different seeds, same report")
	}
}

func TestBacktestComparesPolicies(t *testing.T) {
	c := readTrace(t)
	r, err := Run(c, shortOptions(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", r.TargetSummary)
	checkComparison(t, r)
	e, f := r.Ebbflow, r.FIFO
	if e.SizedDownJobs == 0 || e.BorrowingStarts == 0 || e.FallbackStarts == 0 {
		t.Errorf("ebbflow never sized down, borrowed or fell back: %+v", e)
	}
	// Sizing recovers idle GPUs: a larger used share of what is allocated.
	if e.AllocUtil <= f.AllocUtil {
		t.Errorf("GPU allocation utilisation: ebbflow %.3f ≤ FIFO %.3f", e.AllocUtil, f.AllocUtil)
	}
}

// checkComparison asserts the structure of a report, whatever its numbers:
// the three policies replay the same jobs, every metric is consistent with
// its definition, the ratios and the target follow from the metrics, FIFO
// uses none of ebbflow's mechanisms, and sizing read only earlier runs.
func checkComparison(t *testing.T, r Report) {
	t.Helper()
	e, f, o := r.Ebbflow, r.FIFO, r.Oracle
	if e.Policy != PolicyEbbflow || f.Policy != PolicyFIFOStatic || o.Policy != PolicyOracle {
		t.Fatalf("policies %q %q %q", e.Policy, f.Policy, o.Policy)
	}
	if f.Preemptions != 0 || f.FallbackStarts != 0 || f.BorrowingStarts != 0 || f.SizedDownJobs != 0 || f.SizedFromHistory != 0 {
		t.Errorf("FIFO with static quotas pre-empted, fell back, borrowed or resized: %+v", f)
	}
	for _, m := range []Metrics{e, f, o} {
		if m.Jobs == 0 || m.Jobs != e.Jobs {
			t.Errorf("%s measured %d jobs, ebbflow %d: the policies must replay the same stream", m.Policy, m.Jobs, e.Jobs)
		}
		if m.WithinQuotaJobs == 0 || m.WithinQuotaJobs > m.Jobs || m.NeverStarted > m.Jobs {
			t.Errorf("%s: %d jobs, %d within quota, %d never started", m.Policy, m.Jobs, m.WithinQuotaJobs, m.NeverStarted)
		}
		if !(m.AllocUtil > 0 && m.AllocUtil <= 1+1e-9 && m.Allocated > 0 && m.Allocated <= 1+1e-9 && m.AllocatedQueued <= 1+1e-9) {
			t.Errorf("%s: allocation utilisation %v, allocated %v, allocated while queued %v: want shares in (0, 1]", m.Policy, m.AllocUtil, m.Allocated, m.AllocatedQueued)
		}
		if math.Abs(m.Used-m.AllocUtil*m.Allocated) > 1e-9 {
			t.Errorf("%s: used share %v ≠ allocation utilisation %v × allocated share %v", m.Policy, m.Used, m.AllocUtil, m.Allocated)
		}
		if (m.QueuedMinutes == 0) != (m.AllocatedQueued == 0) || m.QueuedMinutes > r.MeasuredMinutes {
			t.Errorf("%s: %d queued minutes of %d, allocated while queued %v", m.Policy, m.QueuedMinutes, r.MeasuredMinutes, m.AllocatedQueued)
		}
		if m.MeanWaitMin < 0 || m.P95WaitMin < 0 || m.P95WaitWithinQuotaMin < 0 {
			t.Errorf("%s: negative wait", m.Policy)
		}
		if m.SizingInputsAfterArrival != 0 {
			t.Errorf("%s: sizing read %d runs that ended after the job arrived", m.Policy, m.SizingInputsAfterArrival)
		}
	}
	if e.SizedFromHistory == 0 || e.SizedFromHistory > e.Jobs {
		t.Errorf("ebbflow sized %d of %d measured jobs from history", e.SizedFromHistory, e.Jobs)
	}
	for _, c := range []struct {
		name      string
		got, a, b float64
	}{
		{"allocation utilisation", r.AllocUtilRatio, e.AllocUtil, f.AllocUtil},
		{"used share", r.UsedRatio, e.Used, f.Used},
		{"allocated share", r.AllocatedRatio, e.Allocated, f.Allocated},
		{"oracle allocation utilisation", r.OracleAllocUtilRatio, o.AllocUtil, f.AllocUtil},
	} {
		if math.Abs(c.got-c.a/c.b) > 1e-12 {
			t.Errorf("%s ratio %v, want %v ÷ %v", c.name, c.got, c.a, c.b)
		}
	}
	if r.TargetMet != (r.AllocUtilRatio >= 1.5 && e.P95WaitWithinQuotaMin <= f.P95WaitWithinQuotaMin) {
		t.Error("target_met disagrees with its definition")
	}
	if !strings.Contains(r.TargetSummary, "1.5×") {
		t.Errorf("summary %q does not state the target", r.TargetSummary)
	}
}

// The backtest runs on every shared trace that records a cluster's
// allocations, and names the reason it skips each other one.
func TestBacktestEverySharedTrace(t *testing.T) {
	dir, err := trace.Dir()
	if err != nil {
		t.Fatal(err)
	}
	sr, err := RunShared(dir, shortOptions(2))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, st := range SharedTraces() {
		if st.Skip == "" {
			want = append(want, st.File)
		}
	}
	if len(sr.Reports) != len(want) || len(want) < 2 {
		t.Fatalf("%d reports for traces %v", len(sr.Reports), want)
	}
	for i, r := range sr.Reports {
		if r.Trace != want[i] || r.Format == "" {
			t.Errorf("report %d is of %q (%q), want %q", i, r.Trace, r.Format, want[i])
		}
		t.Logf("%s: %s", r.Trace, r.TargetSummary)
		checkComparison(t, r)
	}
	if len(sr.Skipped)+len(sr.Reports) != len(SharedTraces()) {
		t.Errorf("%d skipped + %d replayed ≠ %d traces", len(sr.Skipped), len(sr.Reports), len(SharedTraces()))
	}
	for _, s := range sr.Skipped {
		if s.Skip == "" {
			t.Errorf("%s skipped without a reason", s.File)
		}
	}
	if _, err := RunShared(t.TempDir(), shortOptions(2)); err == nil || !strings.Contains(err.Error(), "philly_node_sequence.csv") {
		t.Errorf("empty directory: %v", err)
	}
}

func TestParseTraceAzure(t *testing.T) {
	c, format, err := ParseTrace(strings.NewReader("timestamp,cpu_usage,assigned_mem\n0,1,50\n300,1,100\n600,1,75\n"))
	if err != nil || format != FormatAzureVMAlloc {
		t.Fatal(err, format)
	}
	want := Curve{0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 1, 0.75, 0.75, 0.75, 0.75, 0.75}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("curve %v, want %v", c, want)
	}
	_, _, err = ParseTrace(strings.NewReader("timestamp,cpu_usage,assigned_mem\n0,1,50\n300,1,x\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "assigned_mem") {
		t.Fatalf("bad row: %v", err)
	}
	if _, _, err := ParseTrace(strings.NewReader("time,number_of_requests\n")); err == nil || !strings.Contains(err.Error(), "assigned_mem") {
		t.Fatalf("request-rate header: %v", err)
	}
}

func TestQuotasAddUpToCapacity(t *testing.T) {
	g := DefaultGenOptions()
	g.Depts = []Dept{{"a", 1}, {"b", 1}, {"c", 1}}
	qs := Quotas(g)
	for _, m := range g.Models {
		sum := 0
		for _, d := range qs {
			sum += d.Quota[m.Name]
		}
		if sum != m.GPUs {
			t.Errorf("%s: quotas add to %d, capacity %d", m.Name, sum, m.GPUs)
		}
	}
}

func TestGenOptionsValidateNamesField(t *testing.T) {
	g := DefaultGenOptions()
	g.UseMax = 1.5
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "use_max") {
		t.Fatalf("%v", err)
	}
}
