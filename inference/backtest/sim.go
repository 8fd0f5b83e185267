package backtest

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config is the simulated service every policy runs against, and the
// span scored. The zero value is not valid; start from DefaultConfig.
type Config struct {
	// Capacity is what one ready replica serves at utilisation 1, in the
	// series' unit.
	Capacity float64
	// Target is the utilisation target in (0, 1]: demand above
	// ready × Capacity × Target is under-provisioned. Every policy aims at it.
	Target float64
	// StartupDelay is how long a new replica takes to become ready.
	StartupDelay time.Duration
	// Tick is the simulation step and the HPA's sync period (15 s).
	Tick time.Duration
	// MinReplicas and MaxReplicas bound every policy.
	MinReplicas, MaxReplicas int32
	// InitialReplicas are ready at the start of the span; 0 means the count
	// the first value needs at the target, within the bounds.
	InitialReplicas int32
	// BaseLatencyMs and LatencySLOMs drive the latency model.
	BaseLatencyMs, LatencySLOMs float64
	// ReversalWindow: a scale event opposite to the previous one less
	// than this after it is a reversal.
	ReversalWindow time.Duration
	// MetricWindow is the span the reactive metric (View.Metric) averages,
	// like a metrics pipeline's rate window.
	MetricWindow time.Duration
	// FromMs and ToMs bound the scored span (0: the whole series). Values
	// before FromMs are history the policies may read; the simulation
	// starts at FromMs.
	FromMs, ToMs int64
	// PlotStep is the resolution of the series kept for plots (0: none).
	PlotStep time.Duration
}

// DefaultConfig returns the simulated service of `ebbflow dev` (base 25
// ms, SLO 100 ms, start-up 90 s, target 0.7) for a capacity.
func DefaultConfig(capacity float64) Config {
	return Config{
		Capacity: capacity, Target: 0.7, StartupDelay: 90 * time.Second, Tick: 15 * time.Second,
		MinReplicas: 1, MaxReplicas: 40, BaseLatencyMs: 25, LatencySLOMs: 100,
		ReversalWindow: 10 * time.Minute, MetricWindow: time.Minute, PlotStep: time.Minute,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case !(c.Capacity > 0):
		return fmt.Errorf("capacity: %g must be positive", c.Capacity)
	case !(c.Target > 0 && c.Target <= 1):
		return fmt.Errorf("target: %g must be in (0, 1]", c.Target)
	case c.StartupDelay < 0:
		return fmt.Errorf("startup delay: %s must not be negative", c.StartupDelay)
	case c.Tick <= 0 || c.Tick%time.Millisecond != 0:
		return fmt.Errorf("tick: %s must be a positive whole number of milliseconds", c.Tick)
	case c.MinReplicas < 0 || c.MaxReplicas < 1 || c.MaxReplicas < c.MinReplicas:
		return fmt.Errorf("min/max replicas: %d..%d must satisfy 0 ≤ min ≤ max, max ≥ 1", c.MinReplicas, c.MaxReplicas)
	case c.InitialReplicas < 0:
		return fmt.Errorf("initial replicas: %d must not be negative", c.InitialReplicas)
	case !(c.BaseLatencyMs > 0) || !(c.LatencySLOMs > 0):
		return errors.New("base latency and latency SLO: must be positive")
	case c.ReversalWindow < 0 || c.MetricWindow <= 0:
		return errors.New("reversal window must not be negative, metric window must be positive")
	case c.ToMs != 0 && c.ToMs <= c.FromMs:
		return fmt.Errorf("span: to %d must be after from %d", c.ToMs, c.FromMs)
	}
	return nil
}

// View is what a policy sees at one tick. It holds nothing from the future.
type View struct {
	// NowMs is the event time of the tick.
	NowMs int64
	// Replicas is the current count (spec); Ready of them serve, Starting
	// wait for their start-up delay.
	Replicas, Ready, Starting int32
	// Known are the values of the windows closed by now (a prefix of the
	// series); Known[i] starts at StartMs + i×StepS.
	Known   []float64
	StartMs int64
	StepS   int64
	// NewWindow is true on the first tick after a window closed.
	NewWindow bool
	// Metric is the mean demand over the last Config.MetricWindow (the
	// value a reactive autoscaler's metrics pipeline reports); NaN when
	// the window held no value.
	Metric float64
	// Capacity and Target are the service's (Config).
	Capacity, Target float64
}

// Decision is a policy's answer: the replica count it wants and why
// (a short reason, counted per policy in the result).
type Decision struct {
	Replicas int32
	Reason   string
}

// Policy decides a replica count each tick. A Policy keeps state; use a
// fresh one per run. Not safe for concurrent use.
type Policy interface {
	// Name is the policy's name in results.
	Name() string
	// Decide is called every tick, in event-time order.
	Decide(v View) Decision
}

// PolicyResult is one policy's score over the span.
type PolicyResult struct {
	Policy string `json:"policy"`
	// ReplicaMinutes integrates the replicas that exist (ready or starting).
	ReplicaMinutes float64 `json:"replica_minutes"`
	// ReadyReplicaMinutes integrates ready replicas only.
	ReadyReplicaMinutes float64 `json:"ready_replica_minutes"`
	// UnderProvisionedMinutes is time with demand above ready × capacity × target.
	UnderProvisionedMinutes float64 `json:"under_provisioned_minutes"`
	// MinutesOverSLO counts whole minutes whose mean latency exceeded the SLO.
	MinutesOverSLO int `json:"minutes_over_slo"`
	// ScaleEvents = ScaleUps + ScaleDowns (changes of the replica count).
	ScaleEvents int `json:"scale_events"`
	ScaleUps    int `json:"scale_ups"`
	ScaleDowns  int `json:"scale_downs"`
	// Reversals counts scale events opposite to the previous one within the reversal window.
	Reversals int `json:"reversals"`
	// MinReplicas and MaxReplicas bound the counts used.
	MinReplicas int32 `json:"min_replicas"`
	MaxReplicas int32 `json:"max_replicas"`
	// Reasons counts the policy's decisions that changed the count, by reason.
	Reasons map[string]int `json:"reasons"`
	// Plot holds the mean ready replicas per Config.PlotStep.
	Plot []float64 `json:"-"`
}

// Result is a backtest of one series.
type Result struct {
	Service string `json:"service"`
	Signal  string `json:"signal"`
	// FromMs and ToMs bound the scored span; Minutes is the time in it
	// that had a demand value (gaps are not scored).
	FromMs  int64   `json:"from_ms"`
	ToMs    int64   `json:"to_ms"`
	StepS   int64   `json:"step_s"`
	Minutes float64 `json:"minutes"`
	// Capacity, Target, StartupDelayS, MinReplicas and MaxReplicas are the
	// simulated service every policy ran against.
	Capacity      float64 `json:"capacity"`
	Target        float64 `json:"target"`
	StartupDelayS float64 `json:"startup_delay_s"`
	TickS         float64 `json:"tick_s"`
	MinReplicas   int32   `json:"min_replicas"`
	MaxReplicas   int32   `json:"max_replicas"`
	LatencySLOMs  float64 `json:"latency_slo_ms"`
	// PeakLoad is the largest value in the span.
	PeakLoad float64        `json:"peak_load"`
	Policies []PolicyResult `json:"policies"`
	// Notes say what the reader should know (missing model inputs, …).
	Notes []string `json:"notes,omitempty"`
	// PlotStepMs and PlotLoad are the mean demand per plot step.
	PlotStepMs int64     `json:"-"`
	PlotLoad   []float64 `json:"-"`
}

// Policy returns the result of the named policy, or nil.
func (r *Result) Policy(name string) *PolicyResult {
	for i := range r.Policies {
		if r.Policies[i].Policy == name {
			return &r.Policies[i]
		}
	}
	return nil
}

// span resolves the scored span to whole ticks inside the series.
func (c Config) span(s *Series) (from, to int64, err error) {
	from, to = c.FromMs, c.ToMs
	if from == 0 || from < s.StartMs {
		from = s.StartMs
	}
	if to == 0 || to > s.EndMs() {
		to = s.EndMs()
	}
	tick := c.Tick.Milliseconds()
	from = s.StartMs + (from-s.StartMs+tick-1)/tick*tick
	if to-from < tick {
		return 0, 0, fmt.Errorf("backtest: span %s to %s holds no whole tick of %s within the series (%s to %s)",
			fmtMs(c.FromMs), fmtMs(c.ToMs), c.Tick, fmtMs(s.StartMs), fmtMs(s.EndMs()))
	}
	return from, to, nil
}

func fmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// Progress is told how many ticks of how many are done.
type Progress func(done, total int64)

// Run replays the series through each policy in turn and scores them.
// Policies must be fresh (they keep state). progress may be nil.
func Run(s *Series, cfg Config, policies []Policy, progress Progress) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	if s == nil || len(s.Values) == 0 || s.StepS <= 0 {
		return nil, errors.New("backtest: empty series")
	}
	if len(policies) == 0 {
		return nil, errors.New("backtest: no policies")
	}
	from, to, err := cfg.span(s)
	if err != nil {
		return nil, err
	}
	tick := cfg.Tick.Milliseconds()
	ticks := (to - from) / tick
	res := &Result{
		Service: s.Name, Signal: s.Signal, FromMs: from, ToMs: from + ticks*tick, StepS: s.StepS,
		Capacity: cfg.Capacity, Target: cfg.Target, StartupDelayS: cfg.StartupDelay.Seconds(), TickS: cfg.Tick.Seconds(),
		MinReplicas: cfg.MinReplicas, MaxReplicas: cfg.MaxReplicas, LatencySLOMs: cfg.LatencySLOMs,
	}
	fi, ti := s.Index(from), s.Index(res.ToMs-1)+1
	res.PeakLoad = s.Quantile(fi, ti, 1)
	if math.IsNaN(res.PeakLoad) {
		return nil, fmt.Errorf("backtest: %s has no value between %s and %s", s.Name, fmtMs(from), fmtMs(res.ToMs))
	}
	total := ticks * int64(len(policies))
	seen := map[string]bool{}
	for i, p := range policies {
		if seen[p.Name()] {
			return nil, fmt.Errorf("backtest: policy %q given twice", p.Name())
		}
		seen[p.Name()] = true
		var prog func(int64)
		if progress != nil {
			base := int64(i) * ticks
			prog = func(done int64) { progress(base+done, total) }
		}
		pr, minutes, plotLoad := runOne(s, cfg, from, ticks, p, prog)
		res.Policies = append(res.Policies, pr)
		res.Minutes = minutes
		if cfg.PlotStep > 0 {
			res.PlotStepMs, res.PlotLoad = cfg.PlotStep.Milliseconds(), plotLoad
		}
	}
	return res, nil
}

// initialReplicas is the count the first known value needs at the target.
func initialReplicas(s *Series, cfg Config, from int64) int32 {
	if cfg.InitialReplicas > 0 {
		return min(max(cfg.InitialReplicas, cfg.MinReplicas), cfg.MaxReplicas)
	}
	v := math.NaN()
	for i := min(s.Index(from), len(s.Values)-1); i >= 0 && math.IsNaN(v); i-- {
		v = s.Values[i]
	}
	n := int32(1)
	if !math.IsNaN(v) {
		n = int32(math.Ceil(v / (cfg.Capacity * cfg.Target)))
	}
	return min(max(n, cfg.MinReplicas), cfg.MaxReplicas)
}

// cluster is the simulated replicas of one service: ready ones and the
// ready times of starting ones (ascending: the start-up delay is fixed).
type cluster struct {
	ready    int32
	starting []int64
}

func (c *cluster) total() int32 { return c.ready + int32(len(c.starting)) }

func (c *cluster) promote(now int64) {
	k := 0
	for k < len(c.starting) && c.starting[k] <= now {
		k++
	}
	if k > 0 {
		c.ready += int32(k)
		c.starting = c.starting[k:]
	}
}

// set changes the count like the ReplicaSet controller: new pods start;
// removals take starting pods first (newest first), then ready ones.
func (c *cluster) set(n int32, now, startup int64) {
	for c.total() < n {
		c.starting = append(c.starting, now+startup)
	}
	for c.total() > n {
		if len(c.starting) > 0 {
			c.starting = c.starting[:len(c.starting)-1]
		} else {
			c.ready--
		}
	}
}

// runOne simulates one policy from `from` for `ticks` ticks.
func runOne(s *Series, cfg Config, from, ticks int64, p Policy, progress func(int64)) (PolicyResult, float64, []float64) {
	tick := cfg.Tick.Milliseconds()
	dtMin := cfg.Tick.Minutes()
	startup := cfg.StartupDelay.Milliseconds()
	pr := PolicyResult{Policy: p.Name(), Reasons: map[string]int{}, MinReplicas: math.MaxInt32}
	c := &cluster{ready: initialReplicas(s, cfg, from)}
	var minutes float64
	var sc scaleCounter
	sc.window = cfg.ReversalWindow.Milliseconds()
	var lat latencyMinutes
	lat.init(cfg, from)
	// Metric window, as a ring of tick demands.
	mw := max(int(cfg.MetricWindow.Milliseconds()/tick), 1)
	ring := make([]float64, mw)
	for i := range ring {
		ring[i] = math.NaN()
	}
	// Pre-fill the metric ring with the demand before the span.
	for k := 0; k < mw; k++ {
		t := from - int64(mw-k)*tick
		ring[k] = demandAt(s, t)
	}
	rpos := 0
	var plot plotAcc
	plot.init(cfg, from, ticks*tick)
	lastClosed := -1
	every := max(ticks/200, 1)
	for k := int64(0); k < ticks; k++ {
		now := from + k*tick
		c.promote(now)
		closed := min(max(s.Index(now), 0), len(s.Values)) // windows that ended by now
		v := View{
			NowMs: now, Replicas: c.total(), Ready: c.ready, Starting: int32(len(c.starting)),
			Known: s.Values[:closed], StartMs: s.StartMs, StepS: s.StepS, NewWindow: closed != lastClosed,
			Metric: meanNaN(ring), Capacity: cfg.Capacity, Target: cfg.Target,
		}
		lastClosed = closed
		d := p.Decide(v)
		want := min(max(d.Replicas, cfg.MinReplicas), cfg.MaxReplicas)
		if want != c.total() {
			sc.add(now, want > c.total(), &pr)
			pr.Reasons[d.Reason]++
			c.set(want, now, startup)
			c.promote(now) // a zero start-up delay makes pods ready at once
		}
		pr.MinReplicas = min(pr.MinReplicas, c.total())
		pr.MaxReplicas = max(pr.MaxReplicas, c.total())
		// Score [now, now+tick).
		dem := demandAt(s, now)
		ring[rpos] = dem
		rpos = (rpos + 1) % mw
		if !math.IsNaN(dem) {
			minutes += dtMin
			pr.ReplicaMinutes += float64(c.total()) * dtMin
			pr.ReadyReplicaMinutes += float64(c.ready) * dtMin
			if dem > float64(c.ready)*cfg.Capacity*cfg.Target*(1+1e-12) {
				pr.UnderProvisionedMinutes += dtMin
			}
			lat.add(now, dem, c.ready, cfg)
		}
		plot.add(now, dem, c.ready)
		if progress != nil && (k%every == 0 || k == ticks-1) {
			progress(k + 1)
		}
	}
	pr.MinutesOverSLO = lat.finish()
	pr.Plot = plot.ready()
	return pr, minutes, plot.load()
}

// demandAt is the value of the step holding t (NaN outside the series).
func demandAt(s *Series, t int64) float64 {
	i := s.Index(t)
	if i < 0 || i >= len(s.Values) {
		return math.NaN()
	}
	return s.Values[i]
}

func meanNaN(xs []float64) float64 {
	sum, n := 0.0, 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// scaleCounter counts scale events and reversals.
type scaleCounter struct {
	window   int64
	lastMs   int64
	lastUp   bool
	hasEvent bool
}

func (sc *scaleCounter) add(now int64, up bool, pr *PolicyResult) {
	pr.ScaleEvents++
	if up {
		pr.ScaleUps++
	} else {
		pr.ScaleDowns++
	}
	if sc.hasEvent && sc.lastUp != up && now-sc.lastMs < sc.window {
		pr.Reversals++
	}
	sc.lastMs, sc.lastUp, sc.hasEvent = now, up, true
}

// latencyMinutes judges whole minutes of event time by their
// request-weighted mean latency (internal/sim's model).
type latencyMinutes struct {
	minute          int64
	durMs, served   float64
	unserved        bool
	any             bool
	over            int
	base, slo, capa float64
}

const rhoMax = 0.95

func (l *latencyMinutes) init(cfg Config, from int64) {
	l.minute = from - from%60000
	l.base, l.slo, l.capa = cfg.BaseLatencyMs, cfg.LatencySLOMs, cfg.Capacity
}

func (l *latencyMinutes) close() {
	if l.any && (l.unserved || (l.served > 0 && l.durMs/l.served > l.slo)) {
		l.over++
	}
	l.durMs, l.served, l.unserved, l.any = 0, 0, false, false
}

func (l *latencyMinutes) add(now int64, demand float64, ready int32, _ Config) {
	if m := now - now%60000; m != l.minute {
		l.close()
		l.minute = m
	}
	l.any = true
	if demand <= 0 {
		return
	}
	if ready <= 0 {
		l.unserved = true
		return
	}
	rho := demand / (float64(ready) * l.capa)
	served := demand
	if rho > rhoMax {
		served = rhoMax * float64(ready) * l.capa
	}
	lat := l.base / (1 - math.Min(rho, rhoMax))
	l.durMs += served * lat
	l.served += served
}

func (l *latencyMinutes) finish() int {
	l.close()
	return l.over
}

// plotAcc averages demand and ready replicas per plot step.
type plotAcc struct {
	step, from    int64
	loadS, readyS []float64
	loadN, readyN []float64
	enabled       bool
}

func (a *plotAcc) init(cfg Config, from, span int64) {
	if cfg.PlotStep <= 0 {
		return
	}
	a.enabled = true
	a.step, a.from = cfg.PlotStep.Milliseconds(), from
	n := int((span + a.step - 1) / a.step)
	a.loadS, a.readyS, a.loadN, a.readyN = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
}

func (a *plotAcc) add(now int64, demand float64, ready int32) {
	if !a.enabled {
		return
	}
	i := int((now - a.from) / a.step)
	if i >= len(a.loadS) {
		return
	}
	a.readyS[i] += float64(ready)
	a.readyN[i]++
	if !math.IsNaN(demand) {
		a.loadS[i] += demand
		a.loadN[i]++
	}
}

func (a *plotAcc) ready() []float64 { return divide(a.readyS, a.readyN) }
func (a *plotAcc) load() []float64  { return divide(a.loadS, a.loadN) }

func divide(s, n []float64) []float64 {
	if s == nil {
		return nil
	}
	out := make([]float64, len(s))
	for i := range s {
		if n[i] == 0 {
			out[i] = math.NaN()
		} else {
			out[i] = s[i] / n[i]
		}
	}
	return out
}
