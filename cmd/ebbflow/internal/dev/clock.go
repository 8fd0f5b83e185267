package dev

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/sim"
)

// clock says how simulated time advances.
type clock struct {
	// speed is the factor over real time; 0 is as fast as possible.
	speed float64
	step  time.Duration
	// until stops after this much simulated time; 0 never.
	until time.Duration
	// maxLag holds the simulation while the newest window is older than this.
	maxLag time.Duration
	// gateOnScrapes waits at each step (speed 0) until every ready pod
	// was scraped, so no simulated state goes unobserved.
	gateOnScrapes bool
	// gateOnWindows applies maxLag (only when a window processor runs).
	gateOnWindows bool
	// gateOnActions waits until every decision read has its action, so a
	// busy machine cannot let simulated time run past the decisions' TTL
	// while the actuator catches up (only when the actuator runs).
	gateOnActions bool
}

// stepWait bounds how long --speed max waits for scrapes or the pipeline
// before it advances anyway (a stuck component must not freeze the view).
const stepWait = 5 * time.Second

// clockMetrics describe the simulated clock.
type clockMetrics struct {
	steps, forced prometheus.Counter
	simTime       prometheus.Gauge
}

func newClockMetrics(reg prometheus.Registerer) *clockMetrics {
	m := &clockMetrics{
		steps: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_dev_sim_steps_total",
			Help: "Steps the simulated cluster advanced."}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_dev_sim_forced_steps_total",
			Help: "Steps taken at --speed max without every ready pod scraped or the windows caught up (after waiting 5s)."}),
		simTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_dev_sim_time_seconds",
			Help: "The simulated time, Unix seconds."}),
	}
	if reg != nil {
		reg.MustRegister(m.steps, m.forced, m.simTime)
	}
	return m
}

// drive advances the simulation until ctx ends (ctx.Err()) or the
// simulated duration has passed (nil).
func drive(ctx context.Context, s *sim.Sim, t *tap, m *clockMetrics, c clock, log *slog.Logger) error {
	start := s.Now()
	next := time.Now()
	for {
		if c.until > 0 && !s.Now().Before(start.Add(c.until)) {
			return nil
		}
		if c.speed > 0 {
			next = next.Add(time.Duration(float64(c.step) / c.speed))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(next)):
			}
		} else {
			waitStart := time.Now()
			for {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				scraped := !c.gateOnScrapes || s.ScrapedAll()
				newest := t.newestWindowEnd()
				if newest.IsZero() {
					newest = start
				}
				caughtUp := !c.gateOnWindows || s.Now().Sub(newest) <= c.maxLag
				caughtUp = caughtUp && (!c.gateOnActions || t.unactioned() <= 0)
				if scraped && caughtUp {
					break
				}
				if time.Since(waitStart) > stepWait {
					m.forced.Inc()
					log.Debug("dev: advancing without the pipeline", "scraped", scraped, "caught_up", caughtUp, "sim", s.Now())
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		if err := s.Step(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn("dev: simulation step", "err", err)
		}
		m.steps.Inc()
		m.simTime.Set(float64(s.Now().UnixMilli()) / 1000)
	}
}
