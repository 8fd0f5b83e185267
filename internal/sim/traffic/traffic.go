// Package traffic generates, deterministically, the traffic `ebbflow dev`
// simulates: each service's offered load comes from internal/sim's own
// [sim.Pattern] (the LoadFunc the simulated cluster serves), averaged over
// the simulation's 15 s steps into one-minute windows, and the cpu and
// gpu_util windows follow from that load and a simple reactive replica
// policy with sim's formulas (per ready pod: cpu 0.3 + 3·util cores,
// gpu_util 3 + 95·util %, util = load per pod / capacity).
//
// The bundled models in testdata/models are trained on it (see
// forecast/bundled and forecast/bundled/retrain) and tested against it with held-out seeds,
// so the models `ebbflow dev` loads have seen traffic of the shape dev
// produces, including the cold start dev begins with (no day or week of
// history, too few steps for the longest lags).
package traffic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/schemas"
)

// Service is one simulated service: its load pattern and the replica
// policy that drives its cpu and gpu_util.
type Service struct {
	Entity  string
	Pattern sim.Pattern
	// CapacityRPS is what one replica serves at full utilisation.
	CapacityRPS float64
	// MinReplicas and MaxReplicas bound the policy; TargetUtil is the
	// utilisation it scales to; StartupMin is how many minutes a new
	// replica takes to become ready.
	MinReplicas, MaxReplicas int
	TargetUtil               float64
	StartupMin               int
	// SubSteps is how many simulation steps a one-minute window averages:
	// 4 at dev's default 15 s step, 1 at a 60 s step (the end-to-end tests'),
	// where the window holds the load at mid-minute. 0 means 4.
	SubSteps int
	// MissRate is the chance a minute's counter windows (qps, cpu) miss
	// one ready pod's increase, which then, more often than not, lands in
	// the next window: a dip of 1/ready and a spike, as a scrape that
	// falls on the other side of a window boundary gives in dev. A pod
	// that just became ready is always missed in its first window (its
	// counter has no earlier sample), a dip of 1/ready at each scale-up.
	MissRate float64
}

// Services returns n varied services, deterministic in seed. The ranges
// cover (and go beyond) the shapes internal/dev builds: peaks from tens to
// thousands of requests per second, valleys 5–40 % of peak, morning and
// evening peaks of different widths and weights, smooth noise 2–10 %,
// 0–4 bursts a day of 10–60 % of peak. Each pattern's phase (StartHour, in
// its week) is drawn independently of the window timestamps, as in dev
// where the pattern's hour need not match the simulated clock's.
func Services(n int, seed int64) []Service {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	u := func(a, b float64) float64 { return a + (b-a)*r.Float64() }
	out := make([]Service, n)
	for i := range out {
		capRPS := u(10, 80)
		maxR := 4 + r.IntN(13)
		peak := u(0.5, 0.9) * float64(maxR) * capRPS
		out[i] = Service{
			Entity: schemas.ServiceEntity("simtraffic", fmt.Sprintf("s%d", seed), fmt.Sprintf("svc-%03d", i)),
			Pattern: sim.Pattern{
				Peak: peak, Valley: u(0.05, 0.4),
				MorningHour: u(7, 13), EveningHour: u(17, 22), EveningWeight: u(0.4, 1.3), WidthHours: u(1.5, 3.5),
				StartHour: u(0, 168), Noise: u(0.02, 0.1),
				BurstsPerDay: u(0, 4), BurstSize: u(0.1, 0.6), BurstMinutes: u(5, 30),
				Seed: seed*100003 + int64(i),
			},
			CapacityRPS: capRPS, MinReplicas: 1, MaxReplicas: maxR,
			TargetUtil: u(0.5, 0.8), StartupMin: 1 + r.IntN(3),
			SubSteps: []int{1, 2, 4, 4}[r.IntN(4)], MissRate: u(0, 0.015),
		}
	}
	return out
}

// Generate returns the qps, cpu and gpu_util one-minute windows of s for
// minutes minutes, the first window starting at startMs, with the pattern
// at elapsed offset (so episodes of one service can start anywhere in
// its pattern).
func Generate(s Service, startMs int64, offset time.Duration, minutes int) []schemas.Window {
	return GenerateFunc(s, s.Pattern.Func(), startMs, offset, minutes)
}

// GenerateFunc is [Generate] with another load function than s.Pattern's
// (a replayed trace, or a pattern built elsewhere).
func GenerateFunc(s Service, load sim.LoadFunc, startMs int64, offset time.Duration, minutes int) []schemas.Window {
	out := make([]schemas.Window, 0, 3*minutes)
	ready := max(s.MinReplicas, int(math.Ceil(load(offset)/(s.TargetUtil*s.CapacityRPS))))
	ready = min(ready, s.MaxReplicas)
	sub := s.SubSteps
	if sub <= 0 {
		sub = 4
	}
	var pending []int // minutes left for each starting replica
	below := 0        // minutes the policy has wanted fewer replicas
	fresh := 0        // replicas that became ready at the start of this minute
	r := rand.New(rand.NewPCG(uint64(s.Pattern.Seed), 0x6117c4))
	var carryQ, carryC float64 // a missed pod's increase, counted in the next window
	for i := range minutes {
		var q float64
		for j := range sub {
			el := offset + time.Duration(i)*time.Minute + time.Duration((float64(j)+0.5)*float64(time.Minute)/float64(sub))
			q += load(el)
		}
		q /= float64(sub)
		n := max(ready, 1)
		util := math.Min(1, q/(float64(n)*s.CapacityRPS))
		cpu := float64(ready) * (0.3 + 3*util)
		gpu := 3 + 95*util
		start := startMs + int64(i)*60_000
		// What the counter windows see: the pods that just started and a
		// pod whose scrape missed the window are not in it.
		missed := min(fresh, ready)
		if r.Float64() < s.MissRate && missed < ready {
			missed++
		}
		wq := q*float64(ready-missed)/float64(n) + carryQ
		wc := cpu*float64(ready-missed)/float64(n) + carryC
		carryQ, carryC = 0, 0
		if missed > fresh && r.Float64() < 0.6 {
			carryQ, carryC = q/float64(n), cpu/float64(n)
		}
		out = append(out,
			window(s.Entity, schemas.SignalQPS, schemas.KindCounter, start, sub, wq, true),
			window(s.Entity, schemas.SignalCPU, schemas.KindCounter, start, sub, wc, true),
			window(s.Entity, schemas.SignalGPUUtil, schemas.KindGauge, start, sub, gpu, false))

		// The policy: scale up at once, down after 5 minutes of wanting less.
		want := int(math.Ceil(q / (s.TargetUtil * s.CapacityRPS)))
		want = min(max(want, s.MinReplicas), s.MaxReplicas)
		total := ready + len(pending)
		switch {
		case want > total:
			for range want - total {
				pending = append(pending, s.StartupMin)
			}
			below = 0
		case want < total:
			below++
			if below >= 5 {
				if len(pending) > 0 {
					pending = pending[:0]
				} else {
					ready = max(want, s.MinReplicas)
				}
				below = 0
			}
		default:
			below = 0
		}
		k := 0
		fresh = 0
		for _, p := range pending {
			if p <= 1 {
				ready++
				fresh++
				continue
			}
			pending[k] = p - 1
			k++
		}
		pending = pending[:k]
	}
	return out
}

func window(entity, signal, kind string, start int64, n int, v float64, rate bool) schemas.Window {
	w := schemas.Window{Entity: entity, Signal: signal, Kind: kind, SizeS: 60, StartMs: start, EndMs: start + 60_000,
		Count: int64(n), Sum: float64(n) * v, Min: v, Max: v, Mean: v, Last: v, P50: v, P95: v, P99: v}
	if rate {
		r := v
		w.Rate = &r
	}
	return w
}

// Epoch is where generated histories start (a Monday, 00:00 UTC).
var Epoch = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)

// Episode is one stretch of a service's traffic: Minutes windows from
// StartMin minutes after Epoch, the pattern at Offset.
type Episode struct {
	Service  Service
	StartMin int
	Offset   time.Duration
	Minutes  int
}

// Windows generates the episode's windows; each episode is its own
// entity (a suffix on the service's), so each starts with empty history.
func (e Episode) Windows(idx int) []schemas.Window {
	s := e.Service
	s.Entity = fmt.Sprintf("%s/e%d", s.Entity, idx)
	return Generate(s, Epoch.Add(time.Duration(e.StartMin)*time.Minute).UnixMilli(), e.Offset, e.Minutes)
}

// TrainingEpisodes is the training set the bundled models are fitted on,
// deterministic in seed: long runs (days, so the model sees a day and a
// week of history) and many short ones that start from nothing, like an
// `ebbflow dev` run, spread over days days.
func TrainingEpisodes(seed int64, long, short, days int) []Episode {
	r := rand.New(rand.NewPCG(uint64(seed), 0xe915))
	svcs := Services(long+short, seed)
	var eps []Episode
	for i := range long {
		eps = append(eps, Episode{Service: svcs[i], Minutes: days * 1440})
	}
	for i := range short {
		m := 240 + r.IntN(26*60) // 4 h to 30 h
		start := r.IntN(days*1440 - m)
		eps = append(eps, Episode{Service: svcs[long+i], StartMin: start, Offset: time.Duration(r.IntN(7*1440)) * time.Minute, Minutes: m})
	}
	return eps
}
