package dev

import (
	"bytes"
	"context"
	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// runDev is `ebbflow dev --speed max --for <d> --headless [--trace …]`
// as a library call, with a deterministic simulated start.
func runDev(t *testing.T, d time.Duration, opts Options, tweak func(c *wire.DevConfig)) (Summary, string) {
	t.Helper()
	return runDevCfg(t, testConfig(t), d, opts, func(c *wire.Config) {
		if tweak != nil {
			tweak(&c.Dev)
		}
	})
}

// runDevCfg is runDev with the whole configuration to tweak.
func runDevCfg(t *testing.T, cfg wire.Config, d time.Duration, opts Options, tweak func(c *wire.Config)) (Summary, string) {
	t.Helper()
	// One state a simulated minute keeps a run of hours within a couple
	// of minutes of wall time on a busy machine.
	cfg.Dev.Step = 60 * time.Second
	cfg.Dev.StartupDelay = 90 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	opts.Speed, opts.For, opts.Headless = "max", d, true
	opts.Start = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).Add(time.Duration(cfg.Dev.StartHour * float64(time.Hour)))
	var logs bytes.Buffer
	opts.Logger = telemetry.NewLogger(cfg.Telemetry, &syncWriter{w: &logs})
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := Run(ctx, cfg, opts, &out)
	if err != nil {
		t.Fatalf("dev run: %v\n%s", err, out.String())
	}
	t.Logf("summary:\n%s", out.String()[strings.Index(out.String(), "ebbflow dev: simulated"):])
	return s, out.String()
}

// checkLoop asserts the loop worked, from the events on the topics, and
// that the figures agree with the simulation's own counters.
func checkLoop(t *testing.T, s Summary, minR, maxR int32, sloMs float64) {
	t.Helper()
	if s.Forecasts == 0 || s.Windows == 0 || s.Decisions == 0 || s.Actions == 0 {
		t.Fatalf("the loop did not run: %d windows, %d forecasts, %d decisions, %d actions", s.Windows, s.Forecasts, s.Decisions, s.Actions)
	}
	if s.Undecodable != 0 || s.DeadLetters != 0 {
		t.Errorf("%d undecodable events and %d dead letters in a clean run", s.Undecodable, s.DeadLetters)
	}
	if len(s.Services) != len(s.Sim) {
		t.Fatalf("summary has %d services, the simulation %d", len(s.Services), len(s.Sim))
	}
	simBy := map[string]sim.ServiceStats{}
	for _, st := range s.Sim {
		simBy[st.Entity] = st
	}
	rising, fallingAfterRise := false, false
	var topicChanges, simChanges int
	for _, sv := range s.Services {
		st, ok := simBy[sv.Entity]
		if !ok {
			t.Errorf("%s: not a simulated service", sv.Entity)
			continue
		}
		minutes := map[int64]sim.Minute{}
		for _, m := range s.SimMinutes[sv.Entity] {
			minutes[m.Start.UnixMilli()] = m
		}
		load := func(at time.Time) float64 { return minutes[at.Truncate(time.Minute).UnixMilli()].Load }

		// Forecasts at every horizon, judged against later windows.
		if sv.Forecasts == 0 {
			t.Errorf("%s: no qps forecasts", sv.Entity)
		}
		for h := 1; h <= 5; h++ {
			if sv.ForecastN[h] == 0 {
				t.Errorf("%s: no forecast at +%d min could be judged", sv.Entity, h)
			}
		}
		// Bounds, from the topics and from the simulation.
		if sv.MinReplicas < minR || sv.MaxReplicas > maxR || st.MinDesired < minR || st.MaxDesired > maxR {
			t.Errorf("%s: replicas %d..%d (simulation saw %d..%d) outside %d..%d", sv.Entity, sv.MinReplicas, sv.MaxReplicas, st.MinDesired, st.MaxDesired, minR, maxR)
		}
		// A scale-up while the traffic is still rising, and a scale-down
		// after a scale-up.
		for _, u := range sv.Ups {
			if load(u.Add(5*time.Minute)) > load(u) {
				rising = true
			}
			for _, d := range sv.Downs {
				if d.After(u) {
					fallingAfterRise = true
				}
			}
		}
		topicChanges += sv.ScaleUps + sv.ScaleDowns
		simChanges += st.ScaleUps + st.ScaleDowns

		// The topics' figures against the simulation's, minute by minute
		// over the windows that closed.
		var repT, repS, qpsErr, qpsSum float64
		var n, overT, overS int
		for start, v := range sv.Replicas {
			m, ok := minutes[start]
			if !ok {
				continue
			}
			n++
			repT += v
			repS += m.Replicas
			if q, ok := sv.QPS[start]; ok {
				qpsErr += math.Abs(q - m.Load)
				qpsSum += m.Load
			}
			if lat, ok := sv.Latency[start]; ok {
				if lat > sloMs {
					overT++
				}
				if m.OverSLO {
					overS++
				}
			}
		}
		if n < 30 {
			t.Errorf("%s: only %d minutes of replicas windows matched the simulation", sv.Entity, n)
			continue
		}
		if math.Abs(repT-repS) > 0.03*repS {
			t.Errorf("%s: replica-minutes from the topics %.1f, simulation %.1f", sv.Entity, repT, repS)
		}
		if qpsErr > 0.05*qpsSum {
			t.Errorf("%s: qps windows deviate %.1f%% from the simulated load", sv.Entity, 100*qpsErr/qpsSum)
		}
		if d := overT - overS; d > 3 || d < -3 {
			t.Errorf("%s: minutes over the SLO from the topics %d, simulation %d", sv.Entity, overT, overS)
		}
		if sv.ReplicaMinutes > st.ReplicaMinutes*1.01 || sv.ReplicaMinutes < st.ReplicaMinutes*0.85 {
			t.Errorf("%s: replica-minutes %.1f from the topics, %.1f simulated in all", sv.Entity, sv.ReplicaMinutes, st.ReplicaMinutes)
		}
	}
	if !rising {
		t.Error("no scale-up while the traffic was rising")
	}
	if !fallingAfterRise {
		t.Error("no scale-down after a scale-up")
	}
	if t.Failed() {
		for _, sv := range s.Services {
			t.Logf("%s: actions by outcome: %v", sv.Entity, sv.Outcomes)
		}
	}
	if simChanges == 0 || topicChanges < simChanges {
		t.Errorf("applied scale actions on the topics %d, replica changes the simulation saw %d", topicChanges, simChanges)
	}
}

func TestDevGeneratedTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three simulated hours of the whole pipeline (about a minute)")
	}
	var cfg wire.DevConfig
	dir := t.TempDir()
	// 09:00 to 13:00 holds the morning rise and, past the 10:00 and 11:00
	// peaks, a fall deep enough for a scale-down whatever the machine's load.
	s, _ := runDev(t, 4*time.Hour, Options{}, func(c *wire.DevConfig) { c.StartHour = 9; c.HistoryDir = dir; cfg = *c })
	checkLoop(t, s, cfg.MinReplicas, cfg.MaxReplicas, cfg.LatencySLOMs)

	// The window processors wrote the same windows to the local history.
	fsys, err := history.Open(context.Background(), history.Config{Backend: history.BackendLocal, Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, sv := range s.Services {
		hist, err := history.ReadWindows(context.Background(), fsys, dir, history.Query{SizeS: 60, Entities: []string{sv.Entity}, Signals: []string{schemas.SignalReplicas}})
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) < len(sv.Replicas)*9/10 {
			t.Errorf("%s: %d replicas windows in the history, %d on the topic", sv.Entity, len(hist), len(sv.Replicas))
		}
		for _, w := range hist {
			if v, ok := sv.Replicas[w.StartMs]; ok && v != w.Value() {
				t.Errorf("%s: history says %v replicas at %d, the topic %v", sv.Entity, w.Value(), w.StartMs, v)
				break
			}
		}
	}
}

func TestDevNASATrace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three simulated hours of the whole pipeline (about a minute)")
	}
	var cfg wire.DevConfig
	s, _ := runDev(t, 3*time.Hour, Options{Trace: sharedTrace(t, "nasa_requests_per_minute.csv"), TraceOffset: 8 * time.Hour},
		func(c *wire.DevConfig) { cfg = *c })
	checkLoop(t, s, cfg.MinReplicas, cfg.MaxReplicas, cfg.LatencySLOMs)
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
