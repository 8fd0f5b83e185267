package mixing

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"
)

// BacktestConfig describes one offline replay.
type BacktestConfig struct {
	// TracesDir holds the shared traces (trace.Dir: $EBBFLOW_TRACES_DIR or ../shared/traces).
	TracesDir string
	// Inference names the inference trace (a key of InferenceTraces).
	Inference string
	// StartDay skips whole days at the start of both traces. WarmupDays
	// fill the forecaster's history and the cluster before the measured
	// Days; TailDays let jobs started in the span finish (nothing started
	// in the tail is counted).
	StartDay, WarmupDays, Days, TailDays int
	// MixableNodes can flip; FixedNodes never do (training only).
	MixableNodes, FixedNodes int
	// PeakShare sizes inference demand: the 99.5th percentile of the
	// smoothed demand over the replay needs PeakShare × MixableNodes.
	PeakShare float64
	// DemandWindowMinutes smooths the per-minute trace (trailing mean),
	// as an autoscaler's window does.
	DemandWindowMinutes int
	// CheckpointEvery is how often training jobs write a checkpoint; an
	// evicted job restarts from its last one.
	CheckpointEvery time.Duration
	// LongJob: jobs expected to run longer go to the fixed pool.
	LongJob time.Duration
	// WindowHorizon is how far ahead the offline windows look.
	WindowHorizon time.Duration
	Policy        Policy
	Jobs          JobGenConfig
	// ShortTerm, when set, adds the ebbflow-xgb variant: the decider's
	// forecast for the first minutes comes from the forecaster it builds
	// (the seasonal profile covers the rest of the horizon and the
	// offline windows).
	ShortTerm ShortTermTrainer `json:"-"`
}

// ShortTermForecaster forecasts demand (in nodes) 1 … len(dst) minutes
// after minute now of the replay, reading nothing after now. ok is false
// when it cannot (too little history).
type ShortTermForecaster interface {
	Forecast(now int, dst []float64) (ok bool)
}

// ShortTermTrainer builds a short-term forecaster for one replay: demand
// is the replay's demand per minute from start; it may learn only from
// minutes before trainTo, where the measured span begins.
type ShortTermTrainer func(ctx context.Context, start time.Time, demand []float64, trainTo int) (ShortTermForecaster, error)

// DefaultBacktest returns the documented backtest defaults for a trace.
func DefaultBacktest(tracesDir, inference string) BacktestConfig {
	c := BacktestConfig{
		TracesDir: tracesDir, Inference: inference,
		WarmupDays: 7, Days: 5, TailDays: 1,
		MixableNodes: 40, FixedNodes: 12, PeakShare: 0.6, DemandWindowMinutes: 5,
		CheckpointEvery: 30 * time.Minute, LongJob: 12 * time.Hour, WindowHorizon: 12 * time.Hour,
		Policy: DefaultPolicy(), Jobs: DefaultJobGen(),
	}
	// Philly's busy share is scaled to every node that can train.
	c.Jobs.Nodes = 0
	return c
}

// Validate names the first bad field.
func (c BacktestConfig) Validate() error {
	if _, ok := InferenceTraces[c.Inference]; !ok {
		return fmt.Errorf("inference: unknown trace %q (nasa, elb, vm_cpu)", c.Inference)
	}
	switch {
	case c.StartDay < 0 || c.WarmupDays < 1 || c.Days < 1 || c.TailDays < 0:
		return fmt.Errorf("days: start_day %d ≥ 0, warmup_days %d ≥ 1, days %d ≥ 1, tail_days %d ≥ 0 required", c.StartDay, c.WarmupDays, c.Days, c.TailDays)
	case c.MixableNodes < 1 || c.FixedNodes < 1:
		return fmt.Errorf("nodes: mixable %d and fixed %d must be at least 1", c.MixableNodes, c.FixedNodes)
	case !(c.PeakShare > 0 && c.PeakShare <= 1):
		return fmt.Errorf("peak_share: %v is not in (0, 1]", c.PeakShare)
	case c.DemandWindowMinutes < 1:
		return fmt.Errorf("demand_window_minutes: %d must be at least 1", c.DemandWindowMinutes)
	case c.CheckpointEvery <= 0 || c.LongJob <= 0 || c.WindowHorizon <= 0:
		return fmt.Errorf("checkpoint_every, long_job, window_horizon: must be positive")
	}
	return c.Policy.Validate()
}

// PolicyResult is what one policy achieved over the measured days.
type PolicyResult struct {
	Policy string `json:"policy"`
	// JobsOnMixed started at least one attempt on a mixed node in the
	// span and have an outcome; CompletedOnMixed finished there and were
	// never killed; Censored were still running at the end of the tail.
	JobsOnMixed      int     `json:"jobs_on_mixed"`
	CompletedOnMixed int     `json:"completed_on_mixed"`
	CompletedShare   float64 `json:"completed_share"`
	Censored         int     `json:"censored"`
	// Attempts started on mixed nodes in the span; Killed of those were
	// evicted before completion. KillRate = Killed ÷ Attempts.
	Attempts int     `json:"attempts"`
	Killed   int     `json:"killed"`
	KillRate float64 `json:"kill_rate"`
	// Flips counts pool changes started in the span.
	Flips        int     `json:"flips"`
	FlipsPerHour float64 `json:"flips_per_hour"`
	// PendingMinutes: minutes demand exceeded the ready online capacity.
	PendingMinutes int `json:"pending_minutes"`
	// OfflineNodeHours were spent by nodes in the offline pool, of which
	// MixedBusyNodeHours running training.
	OfflineNodeHours   float64 `json:"offline_node_hours"`
	MixedBusyNodeHours float64 `json:"mixed_busy_node_hours"`
	// LostWorkNodeHours: work thrown away by evictions (since checkpoint).
	LostWorkNodeHours float64 `json:"lost_work_node_hours"`
	// JobsCompleted in the span on any pool.
	JobsCompleted int `json:"jobs_completed"`
}

// BacktestResult is one replay's figures for every policy.
type BacktestResult struct {
	Trace         string         `json:"trace"`
	From          time.Time      `json:"from"`
	To            time.Time      `json:"to"`
	Jobs          int            `json:"jobs"`
	GeneratorMAE  float64        `json:"generator_mae_nodes"`
	FilledMinutes int            `json:"filled_minutes"`
	Policies      []PolicyResult `json:"policies"`
}

// Policy variants replayed side by side.
const (
	// PolicyEbbflowSeasonal is ebbflow's decider fed by the seasonal-profile
	// forecaster (median of the same minute over the previous 7 days,
	// levelled by the last 30 minutes), with offline windows and the kill
	// budget.
	PolicyEbbflowSeasonal = "ebbflow-seasonal"
	// PolicyEbbflowNoWindows is the same without offline windows (training
	// jobs take any mixed node): what the windows contribute.
	PolicyEbbflowNoWindows = "ebbflow-seasonal-no-windows"
	// PolicyEbbflowXGB is ebbflow-seasonal with the first minutes of the
	// forecast from ebbflow's XGBoost forecaster trained on the warm-up
	// days (only with BacktestConfig.ShortTerm).
	PolicyEbbflowXGB = "ebbflow-xgb"
	// PolicyReactive is WPAI's rule: flip on current utilisation against
	// min/max rate, no forecast, no windows, no kill budget.
	PolicyReactive = "wpai-reactive"
)

type variant struct {
	name                         string
	forecast, windows, killLimit bool
	short                        ShortTermForecaster
}

var variants = []variant{
	{name: PolicyEbbflowSeasonal, forecast: true, windows: true, killLimit: true},
	{name: PolicyEbbflowNoWindows, forecast: true, killLimit: true},
	{name: PolicyReactive},
}

// Backtest replays the configured days for every policy variant. It is
// deterministic for a given configuration (seeded job stream).
func Backtest(cfg BacktestConfig) (BacktestResult, error) {
	return BacktestContext(context.Background(), cfg)
}

// BacktestContext is Backtest with a context for the short-term trainer.
func BacktestContext(ctx context.Context, cfg BacktestConfig) (BacktestResult, error) {
	if err := cfg.Validate(); err != nil {
		return BacktestResult{}, fmt.Errorf("mixing: backtest: %w", err)
	}
	inf, filled, err := ReadTrace(cfg.TracesDir, cfg.Inference, InferenceTraces[cfg.Inference])
	if err != nil {
		return BacktestResult{}, err
	}
	tr, filledT, err := ReadTrace(cfg.TracesDir, "philly", TrainingTrace)
	if err != nil {
		return BacktestResult{}, err
	}
	total := (cfg.WarmupDays + cfg.Days + cfg.TailDays) * 1440
	off := cfg.StartDay * 1440
	if off+total > len(inf.Values) || off+total > len(tr.Values) {
		return BacktestResult{}, fmt.Errorf("mixing: backtest: %d days from day %d exceed the traces (%s %d days, philly %d days)",
			total/1440, cfg.StartDay, cfg.Inference, len(inf.Values)/1440, len(tr.Values)/1440)
	}
	demand := scaleDemand(smooth(inf.Values[off:off+total], cfg.DemandWindowMinutes), cfg)
	fc := newSeasonal(demand)
	gen := cfg.Jobs
	if gen.Nodes == 0 {
		gen.Nodes = float64(cfg.FixedNodes + cfg.MixableNodes)
	}
	jobs, mae := GenerateJobs(tr.Values[off:off+total], gen)
	res := BacktestResult{
		Trace: cfg.Inference, Jobs: len(jobs), GeneratorMAE: mae, FilledMinutes: filled + filledT,
		From: inf.Start.Add(minutes(off + cfg.WarmupDays*1440)), To: inf.Start.Add(minutes(off + (cfg.WarmupDays+cfg.Days)*1440)),
	}
	vs := variants
	if cfg.ShortTerm != nil {
		short, err := cfg.ShortTerm(ctx, inf.Start.Add(minutes(off)), demand, cfg.WarmupDays*1440)
		if err != nil {
			return BacktestResult{}, fmt.Errorf("mixing: backtest: short-term forecaster: %w", err)
		}
		vs = append([]variant{{name: PolicyEbbflowXGB, forecast: true, windows: true, killLimit: true, short: short}}, variants...)
	}
	for _, v := range vs {
		s := newSim(cfg, v, demand, fc, jobs, inf.Start.Add(minutes(off)))
		res.Policies = append(res.Policies, s.run())
	}
	return res, nil
}

// smooth is a trailing mean over w minutes.
func smooth(v []float64, w int) []float64 {
	out := make([]float64, len(v))
	sum := 0.0
	for i, x := range v {
		sum += x
		if i >= w {
			sum -= v[i-w]
		}
		out[i] = sum / float64(min(i+1, w))
	}
	return out
}

// scaleDemand turns the trace into node units: its 99.5th percentile needs
// PeakShare of the mixable nodes.
func scaleDemand(v []float64, cfg BacktestConfig) []float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	p := s[int(0.995*float64(len(s)-1))]
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / p * cfg.PeakShare * float64(cfg.MixableNodes)
	}
	return out
}

// seasonal is the forecaster of the ebbflow-seasonal variant. For a target
// minute it takes the median (and, for offline windows, the maximum) of
// the same minute-of-day over the previous 7 days, levelled by the ratio
// of the last 30 minutes' actual demand to their profile. It only reads
// minutes before the forecast origin.
type seasonal struct {
	demand, med, hi []float64
}

func newSeasonal(d []float64) *seasonal {
	s := &seasonal{demand: d, med: make([]float64, len(d)), hi: make([]float64, len(d))}
	buf := make([]float64, 0, 7)
	for m := range d {
		buf = buf[:0]
		for k := 1; k <= 7 && m-k*1440 >= 0; k++ {
			buf = append(buf, d[m-k*1440])
		}
		if len(buf) == 0 {
			s.med[m], s.hi[m] = math.NaN(), math.NaN()
			continue
		}
		sort.Float64s(buf)
		s.med[m], s.hi[m] = buf[len(buf)/2], buf[len(buf)-1]
	}
	return s
}

// level is the ratio of the last 30 minutes' demand to their profile.
func (s *seasonal) level(now int) float64 {
	var a, p float64
	for i := max(0, now-29); i <= now; i++ {
		if math.IsNaN(s.med[i]) {
			return 1
		}
		a += s.demand[i]
		p += s.med[i]
	}
	if p <= 0 {
		return 1
	}
	return min(max(a/p, 0.5), 2)
}

// at forecasts the demand at minute target from origin now (median, or
// the high profile when hi); with no history it is the last value.
func (s *seasonal) at(now, target int, hi bool) float64 {
	if target >= len(s.med) || target-now >= 1440 || math.IsNaN(s.med[target]) {
		return s.demand[now]
	}
	p := s.med[target]
	if hi {
		p = s.hi[target]
	}
	return p * s.level(now)
}

// simulation of one policy.
type sim struct {
	cfg     BacktestConfig
	v       variant
	pol     Policy
	demand  []float64
	fc      *seasonal
	jobs    []jobState
	start   time.Time
	nodes   []*simNode
	queue   []*jobState
	running map[*jobState]*attempt
	st      State
	res     PolicyResult
	span    [2]int
	// shortBuf receives the short-term forecaster's minutes.
	shortBuf []float64
}

type simNode struct {
	name     string
	pool     Pool
	handover Handover
	readyAt  int
	att      *attempt
}

type jobState struct {
	Job
	left, expectedLeft int
	mixedInSpan        bool
	killed, done       bool
	doneOnMixed        bool
}

type attempt struct {
	js     *jobState
	start  int
	nodes  []*simNode
	mixed  bool
	inSpan bool
}

func newSim(cfg BacktestConfig, v variant, demand []float64, fc *seasonal, jobs []Job, start time.Time) *sim {
	s := &sim{cfg: cfg, v: v, pol: cfg.Policy, demand: demand, fc: fc, start: start, running: map[*jobState]*attempt{}, shortBuf: make([]float64, 5)}
	if !v.killLimit {
		s.pol.KillBudgetPerHour = math.MaxInt32
	}
	s.span = [2]int{cfg.WarmupDays * 1440, (cfg.WarmupDays + cfg.Days) * 1440}
	for i := range cfg.MixableNodes {
		s.nodes = append(s.nodes, &simNode{name: fmt.Sprintf("mix-%02d", i), pool: PoolOnline})
	}
	for i := range cfg.FixedNodes {
		s.nodes = append(s.nodes, &simNode{name: fmt.Sprintf("fixed-%02d", i), pool: PoolFixed})
	}
	s.jobs = make([]jobState, len(jobs))
	for i, j := range jobs {
		s.jobs[i] = jobState{Job: j, left: j.Minutes, expectedLeft: j.Expected}
	}
	s.res.Policy = v.name
	return s
}

func (s *sim) inSpan(m int) bool { return m >= s.span[0] && m < s.span[1] }

func (s *sim) run() PolicyResult {
	next := 0
	for m := range s.demand {
		s.finishJobs(m)
		s.finishHandovers(m)
		online := s.count(func(n *simNode) bool { return n.pool == PoolOnline && n.handover == HandoverNone })
		d := s.demand[m]
		if s.inSpan(m) {
			if d > float64(online)+1e-9 {
				s.res.PendingMinutes++
			}
			for _, n := range s.nodes {
				if n.pool == PoolOffline && n.handover == HandoverNone {
					s.res.OfflineNodeHours += 1.0 / 60
					if n.att != nil {
						s.res.MixedBusyNodeHours += 1.0 / 60
					}
				}
			}
		}
		s.decide(m, d, online)
		for next < len(s.jobs) && s.jobs[next].Arrive <= m {
			s.queue = append(s.queue, &s.jobs[next])
			next++
		}
		s.schedule(m)
	}
	return s.result()
}

func (s *sim) count(f func(*simNode) bool) int {
	c := 0
	for _, n := range s.nodes {
		if f(n) {
			c++
		}
	}
	return c
}

func (s *sim) finishJobs(m int) {
	for js, a := range s.running {
		if m-a.start < js.left {
			continue
		}
		js.done = true
		js.doneOnMixed = a.mixed
		for _, n := range a.nodes {
			n.att = nil
		}
		delete(s.running, js)
		if s.inSpan(m) {
			s.res.JobsCompleted++
		}
	}
}

func (s *sim) finishHandovers(m int) {
	for _, n := range s.nodes {
		if n.handover != HandoverNone && n.readyAt <= m {
			n.pool, n.handover = n.handover.Target(), HandoverNone
		}
	}
}

func (s *sim) now(m int) time.Time { return s.start.Add(minutes(m)) }

// decide runs the decider for the group and carries out its decision.
func (s *sim) decide(m int, d float64, online int) {
	in := Input{Group: "sim", Now: s.now(m), Utilisation: d / math.Max(float64(online), 1e-9)}
	if d > float64(online) {
		in.PendingInference = int(math.Ceil(d - float64(online)))
	}
	if s.v.forecast {
		from := 5
		if s.v.short != nil {
			if s.v.short.Forecast(m, s.shortBuf) {
				for k, v := range s.shortBuf {
					in.Forecast = append(in.Forecast, Point{At: s.now(m + k + 1), Utilisation: v / math.Max(float64(online), 1e-9)})
				}
				from = len(s.shortBuf) + 5
			}
		}
		for h := from; h <= int(s.pol.ForecastHorizon/time.Minute); h += 5 {
			in.Forecast = append(in.Forecast, Point{At: s.now(m + h), Utilisation: s.fc.at(m, m+h, false) / math.Max(float64(online), 1e-9)})
		}
	}
	for _, n := range s.nodes {
		node := Node{Name: n.name, Pool: n.pool, Handover: n.handover}
		if n.att != nil && n.pool != PoolOnline {
			ck := s.lastCheckpoint(n.att, m)
			node.TrainingPods = []TrainingPod{{Name: fmt.Sprintf("job-%d", n.att.js.ID), Started: s.now(n.att.start), LastCheckpoint: s.now(ck)}}
		}
		if n.pool == PoolOnline {
			node.InferencePods = 1
		}
		in.Nodes = append(in.Nodes, node)
	}
	dec, st := Decide(s.pol, s.st, in)
	s.st = st
	byName := map[string]*simNode{}
	for _, n := range s.nodes {
		byName[n.name] = n
	}
	for _, c := range dec.Nodes {
		n := byName[c.Node]
		if s.inSpan(m) {
			s.res.Flips++
		}
		switch {
		case c.To == PoolOffline:
			n.handover, n.readyAt = HandoverToOffline, m+1
		case n.handover == HandoverToOffline: // cancel
			n.handover = HandoverNone
		default:
			ready := m + int(s.pol.PodStartup/time.Minute)
			if n.att != nil {
				ready += int(s.pol.DrainGrace / time.Minute)
				s.kill(n.att, m)
			}
			n.handover, n.readyAt = HandoverToOnline, ready
		}
	}
}

func (s *sim) lastCheckpoint(a *attempt, m int) int {
	every := int(s.cfg.CheckpointEvery / time.Minute)
	return a.start + (m-a.start)/every*every
}

// kill evicts an attempt: the job restarts from its last checkpoint.
func (s *sim) kill(a *attempt, m int) {
	js := a.js
	saved := s.lastCheckpoint(a, m) - a.start
	if a.inSpan && a.mixed {
		s.res.Killed++
		js.killed = true
	}
	if s.inSpan(m) {
		s.res.LostWorkNodeHours += float64((m-a.start-saved)*js.Nodes) / 60
	}
	js.left -= saved
	js.expectedLeft = max(1, js.expectedLeft-saved)
	for _, n := range a.nodes {
		n.att = nil
	}
	delete(s.running, js)
	s.queue = append([]*jobState{js}, s.queue...)
}

// schedule starts queued jobs, first come first served with backfill:
// long jobs on fixed nodes only; others on mixed nodes when they fit (and,
// with windows, end before their node is needed back), else fixed nodes.
func (s *sim) schedule(m int) {
	var freeMixed, freeFixed []*simNode
	var busyUntil []time.Time
	offline := 0
	for _, n := range s.nodes {
		switch {
		case n.pool == PoolFixed && n.att == nil:
			freeFixed = append(freeFixed, n)
		case n.pool == PoolOffline && n.handover == HandoverNone:
			offline++
			if n.att == nil {
				freeMixed = append(freeMixed, n)
			} else {
				end := n.att.start + n.att.js.expectedLeft
				busyUntil = append(busyUntil, s.now(max(end, m)))
			}
		}
	}
	if len(freeMixed)+len(freeFixed) == 0 || len(s.queue) == 0 {
		return
	}
	var returns []time.Time
	if s.v.windows && len(freeMixed) > 0 {
		online := s.count(func(n *simNode) bool {
			return (n.pool == PoolOnline && n.handover == HandoverNone) || n.handover == HandoverToOnline
		})
		var pts []DemandPoint
		for h := 5; h <= int(s.cfg.WindowHorizon/time.Minute); h += 5 {
			pts = append(pts, DemandPoint{At: s.now(m + h), Nodes: s.fc.at(m, m+h, true)})
		}
		returns = ReturnSchedule(s.now(m), pts, online, offline, s.pol)
	}
	long := int(s.cfg.LongJob / time.Minute)
	kept := s.queue[:0]
	// A job that does not fit its windows rules out every later job of the
	// same size expected to end no sooner (fitting is monotone in the end).
	noFit := map[int]int{}
	for qi, js := range s.queue {
		if len(freeMixed) == 0 && len(freeFixed) == 0 {
			kept = append(kept, s.queue[qi:]...)
			break
		}
		placed := false
		if f, ok := noFit[js.Nodes]; js.Expected <= long && len(freeMixed) >= js.Nodes && (!ok || js.expectedLeft < f) {
			end := s.now(m + js.expectedLeft)
			ends := make([]time.Time, js.Nodes)
			for i := range ends {
				ends[i] = end
			}
			fits := !s.v.windows || FitsWindows(busyUntil, returns, ends...)
			if !fits {
				noFit[js.Nodes] = js.expectedLeft
			}
			if fits {
				s.start1(js, m, freeMixed[:js.Nodes], true)
				freeMixed = freeMixed[js.Nodes:]
				busyUntil = append(busyUntil, ends...)
				placed = true
			}
		}
		if !placed && len(freeFixed) >= js.Nodes {
			s.start1(js, m, freeFixed[:js.Nodes], false)
			freeFixed = freeFixed[js.Nodes:]
			placed = true
		}
		if !placed {
			kept = append(kept, js)
		}
	}
	s.queue = kept
}

func (s *sim) start1(js *jobState, m int, nodes []*simNode, mixed bool) {
	a := &attempt{js: js, start: m, nodes: append([]*simNode(nil), nodes...), mixed: mixed, inSpan: s.inSpan(m)}
	for _, n := range nodes {
		n.att = a
	}
	s.running[js] = a
	if mixed && a.inSpan {
		s.res.Attempts++
		js.mixedInSpan = true
	}
}

func (s *sim) result() PolicyResult {
	r := s.res
	for i := range s.jobs {
		js := &s.jobs[i]
		if !js.mixedInSpan {
			continue
		}
		switch {
		case js.killed:
			r.JobsOnMixed++
		case js.done && js.doneOnMixed:
			r.JobsOnMixed++
			r.CompletedOnMixed++
		case js.done:
			r.JobsOnMixed++
		default:
			r.Censored++
		}
	}
	if r.JobsOnMixed > 0 {
		r.CompletedShare = float64(r.CompletedOnMixed) / float64(r.JobsOnMixed)
	}
	if r.Attempts > 0 {
		r.KillRate = float64(r.Killed) / float64(r.Attempts)
	}
	r.FlipsPerHour = float64(r.Flips) / float64(s.cfg.Days*24)
	return r
}
