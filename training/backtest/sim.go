package backtest

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/ebbflow/ebbflow/training/killbudget"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// Policy names.
const (
	PolicyEbbflow    = "ebbflow"
	PolicyFIFOStatic = "fifo_static_quotas"
	// PolicyOracle is ebbflow's scheduler with sizing that knows each
	// run's real GPU use and memory: the most whole-GPU sizing could
	// recover. A bound for reading the figures, not a policy to deploy.
	PolicyOracle = "ebbflow_oracle_sizing"
)

// Options are the backtest's inputs besides the curve.
type Options struct {
	Gen GenOptions `json:"gen"`
	// WarmupMinutes are simulated but not measured (the cluster starts empty).
	WarmupMinutes int `json:"warmup_minutes"`
	// Sched is ebbflow's scheduler configuration: sizing, score, minimum
	// runtime and kill budget. Departments and GPU models are replaced by
	// the simulated ones.
	Sched scheduler.Config `json:"-"`
}

// DefaultOptions: the default generator, 2 days of warm-up, ebbflow's
// default scheduler settings with a kill budget of 20 per hour.
func DefaultOptions() Options {
	s := scheduler.DefaultConfig()
	s.KillBudget = killbudget.Config{Max: 20, Window: time.Hour}
	return Options{Gen: DefaultGenOptions(), WarmupMinutes: 2 * 24 * 60, Sched: s}
}

// Metrics are one scheduler's figures over the measured span.
type Metrics struct {
	Policy string `json:"policy"`
	// GPU-time over the measured span, in GPU-minutes: C the capacity,
	// A the GPUs allocated to running jobs, U the used part of A — a
	// running job's used GPUs in a minute are min(allocated, the GPUs it
	// really keeps busy) — less the minutes of runs later pre-empted
	// (wasted: their work is redone).
	//
	// AllocUtil = U ÷ A, GPU allocation utilisation: the share of
	// allocated GPU-time that is used. Sizing from history raises it
	// (jobs over-ask); the target is stated on it.
	AllocUtil float64 `json:"gpu_allocation_utilisation"`
	// Allocated = A ÷ C.
	Allocated float64 `json:"gpu_allocated_share"`
	// AllocatedQueued = A ÷ C over the minutes in which this policy had
	// a job waiting (QueuedMinutes): capacity left idle while jobs wait.
	AllocatedQueued float64 `json:"gpu_allocated_share_queued"`
	QueuedMinutes   int     `json:"queued_minutes"`
	// Used = U ÷ C = AllocUtil × Allocated: the cluster's GPU utilisation.
	Used float64 `json:"gpu_used_share"`
	// Wasted = GPU-minutes of pre-empted runs ÷ C.
	Wasted float64 `json:"gpu_wasted_share"`
	// SizedFromHistory counts measured jobs sized from at least one
	// earlier completed run of their family; SizingInputsAfterArrival
	// counts history runs read that ended after the job arrived (the
	// split: always 0 — sizing learns from earlier runs only).
	SizedFromHistory         int `json:"sized_from_history"`
	SizingInputsAfterArrival int `json:"sizing_inputs_after_arrival"`
	// Waits are in minutes from submission to the start of the run that
	// completed (or the end of the span for jobs never started: censored).
	MeanWaitMin           float64 `json:"mean_wait_min"`
	P95WaitMin            float64 `json:"p95_wait_min"`
	P95WaitWithinQuotaMin float64 `json:"p95_wait_within_quota_min"`
	// WithinQuotaJobs were within their department's quota on arrival:
	// their department's GPUs in use plus theirs (as this scheduler sizes
	// them, on their preferred model) fit its nominal quota.
	WithinQuotaJobs int `json:"within_quota_jobs"`
	Jobs            int `json:"jobs"`
	Completed       int `json:"completed"`
	NeverStarted    int `json:"never_started"`
	Preemptions     int `json:"preemptions"`
	// PreemptionsBlocked counts pre-emptions the guards refused, by reason.
	PreemptionsBlocked map[string]int `json:"preemptions_blocked,omitempty"`
	FallbackStarts     int            `json:"fallback_starts"`
	BorrowingStarts    int            `json:"borrowing_starts"`
	// SizedDownJobs started with fewer GPUs than requested.
	SizedDownJobs int `json:"sized_down_jobs"`
}

// Report is the backtest's result: both schedulers, the ratios, the target.
type Report struct {
	// Trace and Format name the curve replayed (set by RunShared).
	Trace           string  `json:"trace,omitempty"`
	Format          string  `json:"format,omitempty"`
	Jobs            int     `json:"jobs_generated"`
	CapacityGPUs    int     `json:"capacity_gpus"`
	MeasuredMinutes int     `json:"measured_minutes"`
	Ebbflow         Metrics `json:"ebbflow"`
	FIFO            Metrics `json:"fifo_static_quotas"`
	// Oracle is ebbflow's scheduler with sizing that knows each run's
	// real use: the bound of what sizing with whole GPUs can recover.
	Oracle Metrics `json:"ebbflow_oracle_sizing"`
	// Ratios ebbflow ÷ FIFO of AllocUtil (the target's), Used and Allocated.
	AllocUtilRatio float64 `json:"gpu_allocation_utilisation_ratio"`
	UsedRatio      float64 `json:"gpu_used_share_ratio"`
	AllocatedRatio float64 `json:"gpu_allocated_share_ratio"`
	// OracleAllocUtilRatio is the oracle's AllocUtil ÷ FIFO's.
	OracleAllocUtilRatio float64 `json:"oracle_gpu_allocation_utilisation_ratio"`
	// TargetMet: GPU allocation utilisation ≥ 1.5× FIFO's and
	// within-quota p95 wait no worse.
	TargetMet     bool       `json:"target_met"`
	TargetSummary string     `json:"target_summary"`
	Options       GenOptions `json:"generator"`
	WarmupMinutes int        `json:"warmup_minutes"`
}

type runState struct {
	job      *Job
	model    int
	alloc    int
	start    int
	done     float64 // minutes of full-speed progress
	useful   float64 // GPU-minutes within the measured span
	standing scheduler.QuotaStanding
	score    int64
}

type pending struct {
	job     *Job
	gpusFor []int // sized GPUs per model index (0 = not allowed)
	quota   bool  // within quota on arrival
	started bool
}

type sim struct {
	o        Options
	policy   string
	depts    []scheduler.Department
	models   []scheduler.GPUModel
	capacity []int
	free     []int
	used     [][]int // [dept][model]
	running  []*runState
	queue    []*pending
	history  map[int][]scheduler.RunStats
	budget   *killbudget.Budget
	epoch    time.Time
	m        Metrics
	waits    []float64
	qWaits   []float64
}

// Run generates the job stream and runs both schedulers on it.
func Run(c Curve, o Options) (Report, error) {
	if o.WarmupMinutes < 0 || o.WarmupMinutes >= o.Gen.Minutes {
		return Report{}, fmt.Errorf("backtest: warmup_minutes %d must be in [0, minutes %d)", o.WarmupMinutes, o.Gen.Minutes)
	}
	jobs, err := Generate(c, o.Gen)
	if err != nil {
		return Report{}, err
	}
	r := Report{Jobs: len(jobs), CapacityGPUs: o.Gen.CapacityGPUs(), MeasuredMinutes: o.Gen.Minutes - o.WarmupMinutes,
		Options: o.Gen, WarmupMinutes: o.WarmupMinutes}
	r.Ebbflow = newSim(o, PolicyEbbflow).run(jobs)
	r.FIFO = newSim(o, PolicyFIFOStatic).run(jobs)
	r.Oracle = newSim(o, PolicyOracle).run(jobs)
	ratio := func(a, b float64) float64 {
		if b > 0 {
			return a / b
		}
		return 0
	}
	r.AllocUtilRatio = ratio(r.Ebbflow.AllocUtil, r.FIFO.AllocUtil)
	r.UsedRatio = ratio(r.Ebbflow.Used, r.FIFO.Used)
	r.AllocatedRatio = ratio(r.Ebbflow.Allocated, r.FIFO.Allocated)
	r.OracleAllocUtilRatio = ratio(r.Oracle.AllocUtil, r.FIFO.AllocUtil)
	r.TargetMet = r.AllocUtilRatio >= 1.5 && r.Ebbflow.P95WaitWithinQuotaMin <= r.FIFO.P95WaitWithinQuotaMin
	r.TargetSummary = fmt.Sprintf("GPU allocation utilisation (used ÷ allocated) %.3f vs %.3f = %.2f× (target ≥ 1.5×; oracle sizing %.2f×); "+
		"cluster GPU use (used ÷ capacity) %.2f×; within-quota p95 wait %.1f vs %.1f min (target ≤)",
		r.Ebbflow.AllocUtil, r.FIFO.AllocUtil, r.AllocUtilRatio, r.OracleAllocUtilRatio, r.UsedRatio,
		r.Ebbflow.P95WaitWithinQuotaMin, r.FIFO.P95WaitWithinQuotaMin)
	return r, nil
}

// Quotas splits each model's GPUs among departments by share (largest
// remainder), so the quotas add up to the capacity.
func Quotas(g GenOptions) []scheduler.Department {
	out := make([]scheduler.Department, len(g.Depts))
	tot := 0.0
	for _, d := range g.Depts {
		tot += d.Share
	}
	for i, d := range g.Depts {
		out[i] = scheduler.Department{Name: d.Name, Quota: map[string]int{}}
	}
	for _, m := range g.Models {
		type rem struct {
			i int
			r float64
		}
		var rs []rem
		given := 0
		for i, d := range g.Depts {
			exact := float64(m.GPUs) * d.Share / tot
			q := int(math.Floor(exact))
			out[i].Quota[m.Name] = q
			given += q
			rs = append(rs, rem{i, exact - float64(q)})
		}
		sort.SliceStable(rs, func(a, b int) bool { return rs[a].r > rs[b].r })
		for k := 0; given < m.GPUs; k++ {
			out[rs[k%len(rs)].i].Quota[m.Name]++
			given++
		}
	}
	return out
}

func newSim(o Options, policy string) *sim {
	s := &sim{o: o, policy: policy, depts: Quotas(o.Gen), history: map[int][]scheduler.RunStats{},
		budget: killbudget.New(o.Sched.KillBudget), epoch: time.Date(2017, 10, 3, 0, 0, 0, 0, time.UTC),
		m: Metrics{Policy: policy, PreemptionsBlocked: map[string]int{}}}
	for _, m := range o.Gen.Models {
		s.models = append(s.models, scheduler.GPUModel{Name: m.Name, MemoryMiB: m.MemoryMiB})
		s.capacity = append(s.capacity, m.GPUs)
		s.free = append(s.free, m.GPUs)
	}
	s.used = make([][]int, len(s.depts))
	for d := range s.used {
		s.used[d] = make([]int, len(s.models))
	}
	return s
}

func (s *sim) at(t int) time.Time { return s.epoch.Add(time.Duration(t) * time.Minute) }

func (s *sim) measured(t int) bool { return t >= s.o.WarmupMinutes }

func (s *sim) run(jobs []Job) Metrics {
	next := 0
	T := s.o.Gen.Minutes
	var capMin, allocMin, usefulMin, wastedMin, capQ, allocQ float64
	for t := 0; t < T; t++ {
		s.complete(t, &usefulMin)
		for next < len(jobs) && jobs[next].Arrival == t {
			s.arrive(&jobs[next], t)
			next++
		}
		if s.policy == PolicyFIFOStatic {
			s.scheduleFIFO(t)
		} else {
			s.scheduleEbbflow(t, &wastedMin)
		}
		allocNow := 0.0
		for _, r := range s.running {
			rate := 1.0
			if float64(r.alloc) < r.job.Need {
				rate = float64(r.alloc) / r.job.Need
			}
			r.done += rate
			if s.measured(t) {
				r.useful += math.Min(float64(r.alloc), r.job.Need)
				allocNow += float64(r.alloc)
			}
		}
		if s.measured(t) {
			allocMin += allocNow
			capMin += float64(s.totalCapacity())
			if len(s.queue) > 0 {
				s.m.QueuedMinutes++
				allocQ += allocNow
				capQ += float64(s.totalCapacity())
			}
		}
	}
	for _, r := range s.running { // still running at the end: their minutes were useful so far
		usefulMin += r.useful
	}
	for _, p := range s.queue {
		if p.job.Arrival >= s.o.WarmupMinutes && !p.started {
			s.m.NeverStarted++
			s.recordWait(p, T)
		}
	}
	s.m.Used = usefulMin / capMin
	s.m.Allocated = allocMin / capMin
	s.m.Wasted = wastedMin / capMin
	if allocMin > 0 {
		s.m.AllocUtil = usefulMin / allocMin
	}
	if capQ > 0 {
		s.m.AllocatedQueued = allocQ / capQ
	}
	s.m.MeanWaitMin = mean(s.waits)
	s.m.P95WaitMin = quantile(s.waits, 0.95)
	s.m.P95WaitWithinQuotaMin = quantile(s.qWaits, 0.95)
	s.m.WithinQuotaJobs = len(s.qWaits)
	s.m.Jobs = len(s.waits)
	return s.m
}

func (s *sim) totalCapacity() int {
	n := 0
	for _, c := range s.capacity {
		n += c
	}
	return n
}

func (s *sim) recordWait(p *pending, start int) {
	w := float64(start - p.job.Arrival)
	s.waits = append(s.waits, w)
	if p.quota {
		s.qWaits = append(s.qWaits, w)
	}
}

func (s *sim) arrive(j *Job, t int) {
	p := &pending{job: j, gpusFor: make([]int, len(s.models))}
	if s.policy == PolicyFIFOStatic {
		p.gpusFor[j.Models[0]] = j.ReqGPUs // requested size, preferred model only
	} else {
		p.gpusFor = s.sizesFor(j)
	}
	if s.policy == PolicyEbbflow && s.measured(t) {
		if h := s.history[j.Family]; len(h) > 0 {
			s.m.SizedFromHistory++
			for _, r := range h {
				if r.EndMs > s.at(t).UnixMilli() {
					s.m.SizingInputsAfterArrival++
				}
			}
		}
	}
	pref := j.Models[0]
	p.quota = s.used[j.Dept][pref]+p.gpusFor[pref] <= s.depts[j.Dept].Quota[s.models[pref].Name]
	s.queue = append(s.queue, p)
}

func (s *sim) complete(t int, usefulMin *float64) {
	keep := s.running[:0]
	for _, r := range s.running {
		if r.done+1e-9 < float64(r.job.Duration) {
			keep = append(keep, r)
			continue
		}
		s.release(r)
		*usefulMin += r.useful
		s.m.Completed++
		s.history[r.job.Family] = append(s.history[r.job.Family], scheduler.RunStats{
			Run: fmt.Sprint(r.job.ID), EndMs: s.at(t).UnixMilli(), GPUs: r.alloc,
			GPUUtilMean: math.Min(1, r.job.Need/float64(r.alloc)), GPUMemPeakMiB: r.job.MemMiB})
		if h := s.history[r.job.Family]; len(h) > 8 {
			s.history[r.job.Family] = h[len(h)-8:]
		}
	}
	s.running = keep
}

func (s *sim) release(r *runState) {
	s.free[r.model] += r.alloc
	s.used[r.job.Dept][r.model] -= r.alloc
}

func (s *sim) start(p *pending, model, gpus, t int, standing scheduler.QuotaStanding, score int64) {
	r := &runState{job: p.job, model: model, alloc: gpus, start: t, standing: standing, score: score}
	s.free[model] -= gpus
	s.used[p.job.Dept][model] += gpus
	s.running = append(s.running, r)
	if !p.started && p.job.Arrival >= s.o.WarmupMinutes {
		s.recordWait(p, t)
	}
	p.started = true
	if model != p.job.Models[0] {
		s.m.FallbackStarts++
	}
	if standing == scheduler.Borrowing {
		s.m.BorrowingStarts++
	}
	if gpus < p.job.ReqGPUs {
		s.m.SizedDownJobs++
	}
}

// scheduleFIFO: one strict FIFO queue per (department, preferred model);
// the head starts when the department's static quota of that model has room.
func (s *sim) scheduleFIFO(t int) {
	blocked := map[[2]int]bool{}
	keep := s.queue[:0]
	for _, p := range s.queue {
		d, m := p.job.Dept, p.job.Models[0]
		k := [2]int{d, m}
		g := p.gpusFor[m]
		if !blocked[k] && s.used[d][m]+g <= s.depts[d].Quota[s.models[m].Name] && g <= s.free[m] {
			s.start(p, m, g, t, scheduler.WithinQuota, 0)
			continue
		}
		blocked[k] = true
		keep = append(keep, p)
	}
	s.queue = keep
}

// deptUtil is the department's busy share of its allocated GPUs now.
func (s *sim) deptUtil() []float64 {
	busy := make([]float64, len(s.depts))
	alloc := make([]float64, len(s.depts))
	for _, r := range s.running {
		busy[r.job.Dept] += math.Min(float64(r.alloc), r.job.Need)
		alloc[r.job.Dept] += float64(r.alloc)
	}
	out := make([]float64, len(s.depts))
	for d := range out {
		out[d] = -1
		if alloc[d] > 0 {
			out[d] = busy[d] / alloc[d]
		}
	}
	return out
}

func (s *sim) usage(d int) scheduler.Usage {
	u := scheduler.Usage{}
	for m, n := range s.used[d] {
		u[s.models[m].Name] = n
	}
	return u
}

func (s *sim) freeUsage() scheduler.Usage {
	u := scheduler.Usage{}
	for m, n := range s.free {
		u[s.models[m].Name] = n
	}
	return u
}

func (s *sim) modelIndex(name string) int {
	for i, m := range s.models {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// scheduleEbbflow: score every waiting job, then in score order start it on
// the first GPU model that fits within quota, else borrow, else (within
// quota on some model) pre-empt borrowers the guard allows.
func (s *sim) scheduleEbbflow(t int, wastedMin *float64) {
	if len(s.queue) == 0 {
		return
	}
	util := s.deptUtil()
	type scored struct {
		p     *pending
		score int64
	}
	list := make([]scored, 0, len(s.queue))
	for _, p := range s.queue {
		d := p.job.Dept
		pref := p.job.Models[0]
		st := scheduler.Standing(s.depts[d], s.usage(d), s.models[pref].Name, p.gpusFor[pref])
		for _, mi := range p.job.Models[1:] {
			if scheduler.Standing(s.depts[d], s.usage(d), s.models[mi].Name, p.gpusFor[mi]) == scheduler.WithinQuota {
				st = scheduler.WithinQuota
			}
		}
		sc := scheduler.Score(s.o.Sched.Score, scheduler.ScoreInput{Standing: st, Waited: time.Duration(t-p.job.Arrival) * time.Minute, DeptUtil: util[d]})
		list = append(list, scored{p, sc.Total})
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].score > list[j].score })
	now := s.at(t)
	for _, e := range list {
		p := e.p
		d := p.job.Dept
		names := make([]string, len(p.job.Models))
		for i, mi := range p.job.Models {
			names[i] = s.models[mi].Name
		}
		gpusFor := func(name string) int { return p.gpusFor[s.modelIndex(name)] }
		if ch, ok := scheduler.ChooseFlavor(s.depts[d], s.usage(d), s.freeUsage(), names, gpusFor); ok {
			s.start(p, s.modelIndex(ch.Model), ch.GPUs, t, ch.Standing, e.score)
			continue
		}
		s.tryPreempt(p, e.score, t, now, wastedMin)
	}
	keep := s.queue[:0]
	for _, p := range s.queue {
		if !p.started {
			keep = append(keep, p)
		}
	}
	s.queue = keep
}

// tryPreempt frees GPUs for a job that would be within quota on one of its
// models by pre-empting runs of departments that borrow on that model,
// lowest score first, youngest first among equals (least work lost), each
// checked by the guard. It pre-empts only if enough GPUs can be freed.
func (s *sim) tryPreempt(p *pending, score int64, t int, now time.Time, wastedMin *float64) {
	d := p.job.Dept
	for _, mi := range p.job.Models {
		g := p.gpusFor[mi]
		if scheduler.Standing(s.depts[d], s.usage(d), s.models[mi].Name, g) != scheduler.WithinQuota {
			continue
		}
		over := make([]int, len(s.depts)) // GPUs each department borrows on mi
		for od := range s.depts {
			over[od] = max(0, s.used[od][mi]-s.depts[od].Quota[s.models[mi].Name])
		}
		var cands []*runState
		for _, r := range s.running {
			if r.model == mi && over[r.job.Dept] > 0 && r.job.Dept != d {
				cands = append(cands, r)
			}
		}
		sort.SliceStable(cands, func(i, j int) bool {
			if cands[i].score != cands[j].score {
				return cands[i].score < cands[j].score
			}
			return cands[i].start > cands[j].start
		})
		freed := s.free[mi]
		var victims []*runState
		budgetLeft := s.budget.Remaining(now)
		for _, r := range cands {
			if freed >= g {
				break
			}
			if over[r.job.Dept] <= 0 {
				continue // that department is back within its quota
			}
			v := scheduler.Victim{Name: fmt.Sprint(r.job.ID), Standing: scheduler.Borrowing, Score: r.score, Started: s.at(r.start)}
			chk := scheduler.CanPreempt(s.o.Sched, s.budget, score, v, now)
			if chk.Allowed && len(victims) >= budgetLeft {
				chk.Allowed, chk.Reason = false, scheduler.PreemptKillBudget
			}
			if !chk.Allowed {
				s.m.PreemptionsBlocked[string(chk.Reason)]++
				continue
			}
			victims = append(victims, r)
			freed += r.alloc
			over[r.job.Dept] -= r.alloc
		}
		if freed < g {
			continue
		}
		for _, v := range victims {
			s.preempt(v, t, wastedMin)
			s.budget.Record(now)
		}
		s.start(p, mi, g, t, scheduler.WithinQuota, score)
		return
	}
}

func (s *sim) preempt(v *runState, t int, wastedMin *float64) {
	for i, r := range s.running {
		if r == v {
			s.running = append(s.running[:i], s.running[i+1:]...)
			break
		}
	}
	s.release(v)
	*wastedMin += v.useful
	s.m.Preemptions++
	// Requeue from scratch; its wait keeps counting from submission but
	// the wait metric records only the first start.
	s.queue = append(s.queue, &pending{job: v.job, gpusFor: s.sizesFor(v.job), started: true})
}

// sizesFor sizes a job on each model it allows with scheduler.Size: from
// its family's completed runs (ebbflow), or (the oracle) from one run
// that used exactly what this run will use.
func (s *sim) sizesFor(j *Job) []int {
	runs := s.history[j.Family]
	if s.policy == PolicyOracle {
		runs = []scheduler.RunStats{{Run: "oracle", GPUs: j.ReqGPUs, GPUUtilMean: j.Need / float64(j.ReqGPUs), GPUMemPeakMiB: j.MemMiB}}
	}
	out := make([]int, len(s.models))
	for _, mi := range j.Models {
		out[mi] = scheduler.Size(s.o.Sched.Sizing, s.models[mi], j.ReqGPUs, 1, runs).GPUs
	}
	return out
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// quantile is the nearest-rank quantile.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	c := append([]float64(nil), xs...)
	sort.Float64s(c)
	i := int(math.Ceil(q*float64(len(c)))) - 1
	return c[max(0, min(len(c)-1, i))]
}
