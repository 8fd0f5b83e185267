package dev

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/internal/sim"
)

// view shows the run as it goes: a refreshing table when out is a
// terminal, else (or with --headless) a log line per service every five
// simulated minutes.
type view struct {
	out      io.Writer
	sim      *sim.Sim
	tap      *tap
	ep       Endpoints
	terminal bool
	log      *slog.Logger
}

func newView(out io.Writer, s *sim.Sim, t *tap, ep Endpoints, headless bool, log *slog.Logger) *view {
	return &view{out: out, sim: s, tap: t, ep: ep, terminal: isTerminal(out, headless), log: log}
}

// isTerminal says whether the refreshing view is drawn on out.
func isTerminal(out io.Writer, headless bool) bool {
	if f, ok := out.(*os.File); ok && !headless {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return true
		}
	}
	return false
}

func (v *view) run(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if v.terminal {
			io.WriteString(v.out, "\x1b[H\x1b[2J"+v.render())
			continue
		}
		now := v.sim.Now()
		if now.Sub(lastLog) < 5*time.Minute {
			continue
		}
		lastLog = now
		for _, st := range v.sim.State() {
			l := v.tap.latestOf(st.Entity)
			v.log.Info("dev", "sim_time", now.Format(time.DateTime), "service", st.Entity,
				"load_rps", round1(st.Load), "qps_window", round1(l.qps.Value()), "forecast", forecastText(l),
				"replicas", fmt.Sprintf("%d/%d→%d", st.Ready, st.Pods, st.Desired), "latency_ms", round1(st.LatencyMs),
				"last_decision", decisionText(l))
		}
	}
}

func (v *view) render() string {
	var b strings.Builder
	now := v.sim.Now()
	fmt.Fprintf(&b, "ebbflow dev — simulated %s   (Ctrl-C stops)\n\n", now.Format("Mon 2006-01-02 15:04:05"))
	fmt.Fprintf(&b, "%-32s %9s %9s %-30s %-12s %8s  %s\n", "service", "load r/s", "qps win", "forecast +1..+5 min", "ready/pods→", "lat ms", "last decision")
	for _, st := range v.sim.State() {
		l := v.tap.latestOf(st.Entity)
		fmt.Fprintf(&b, "%-32s %9.1f %9.1f %-30s %-12s %8.1f  %s\n", st.Entity, st.Load, l.qps.Value(), forecastText(l),
			fmt.Sprintf("%d/%d→%d", st.Ready, st.Pods, st.Desired), st.LatencyMs, decisionText(l))
	}
	fmt.Fprintf(&b, "\nkafka %s   nats %s\nhistory %s   metrics %s\n", strings.Join(v.ep.KafkaBrokers, ","), v.ep.NATSURL, v.ep.HistoryDir, v.ep.MetricsURL)
	if v.ep.LogFile != "" {
		fmt.Fprintf(&b, "logs %s\n", v.ep.LogFile)
	}
	return b.String()
}

func forecastText(l latest) string {
	if len(l.forecast.Horizons) == 0 {
		return "-"
	}
	var parts []string
	for _, h := range l.forecast.Horizons {
		parts = append(parts, fmt.Sprintf("%.0f", h.Value))
	}
	s := strings.Join(parts, " ")
	if l.forecast.Fallback != "" {
		s += " (" + l.forecast.Fallback + ")"
	}
	return s
}

func decisionText(l latest) string {
	d := l.decision
	if d.ID == "" {
		return "-"
	}
	return fmt.Sprintf("%s %d→%d: %s", time.UnixMilli(d.AtMs).UTC().Format("15:04"), d.From, d.To, d.Reason.Summary)
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
