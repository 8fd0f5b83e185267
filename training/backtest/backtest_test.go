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
	if d.Jobs == a.Jobs && d.Ebbflow.Utilisation == a.Ebbflow.Utilisation {
		t.Fatal("different seeds, same report")
	}
}

func TestBacktestComparesPolicies(t *testing.T) {
	c := readTrace(t)
	r, err := Run(c, shortOptions(5))
	if err != nil {
		t.Fatal(err)
	}
	e, f := r.Ebbflow, r.FIFO
	t.Logf("%s", r.TargetSummary)
	if f.Preemptions != 0 || f.FallbackStarts != 0 || f.BorrowingStarts != 0 || f.SizedDownJobs != 0 {
		t.Errorf("FIFO with static quotas pre-empted, fell back, borrowed or resized: %+v", f)
	}
	if e.SizedDownJobs == 0 || e.BorrowingStarts == 0 || e.FallbackStarts == 0 {
		t.Errorf("ebbflow never sized down, borrowed or fell back: %+v", e)
	}
	for _, m := range []Metrics{e, f} {
		if m.Utilisation <= 0 || m.Utilisation > m.Allocated+1e-9 || m.Allocated > 1+1e-9 {
			t.Errorf("%s: utilisation %v, allocated %v: want 0 < util ≤ allocated ≤ 1", m.Policy, m.Utilisation, m.Allocated)
		}
		if m.Jobs == 0 || m.WithinQuotaJobs == 0 || m.WithinQuotaJobs > m.Jobs {
			t.Errorf("%s: %d jobs, %d within quota", m.Policy, m.Jobs, m.WithinQuotaJobs)
		}
		if m.P95WaitMin < m.P95WaitWithinQuotaMin && m.WithinQuotaJobs == m.Jobs {
			t.Errorf("%s: p95 of a subset above the whole", m.Policy)
		}
	}
	// Sizing recovers idle GPUs: a larger busy share of what is allocated.
	if e.Efficiency <= f.Efficiency {
		t.Errorf("busy share of allocated GPUs: ebbflow %.3f ≤ FIFO %.3f", e.Efficiency, f.Efficiency)
	}
	if math.Abs(r.UtilisationRatio-e.Utilisation/f.Utilisation) > 1e-12 {
		t.Errorf("ratio %v", r.UtilisationRatio)
	}
	if r.TargetMet != (r.UtilisationRatio >= 1.5 && e.P95WaitWithinQuotaMin <= f.P95WaitWithinQuotaMin) {
		t.Error("target_met disagrees with its definition")
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
