package dev

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/internal/config"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// Options are the per-run choices `ebbflow dev` takes as flags.
type Options struct {
	// Speed is how much faster than real time the simulation runs: "1x",
	// "60x" (or "60"), or "max" (as fast as the pipeline keeps up).
	Speed string
	// For stops the run after this much simulated time; 0 runs until ctx ends.
	For time.Duration
	// Headless prints plain log lines instead of the refreshing view.
	Headless bool
	// Trace is a CSV file of (timestamp, value) rows that drives every
	// service's load instead of the generated pattern.
	Trace string
	// TraceColumn names the trace's value column; empty picks it.
	TraceColumn string
	// TraceOffset starts the replay this far into the trace.
	TraceOffset time.Duration
	// Start is the simulated time the run starts at; zero is now,
	// truncated to the minute.
	Start time.Time
	// Logger receives the components' logs; nil builds one from the
	// telemetry section writing to stderr.
	Logger *slog.Logger
}

// Run starts the embedded parts, the simulated cluster and every pipeline
// component, prints where each listens to out, and runs until ctx ends or
// opts.For of simulated time has passed; it then stops everything and
// returns the summary computed from the events on the topics.
func Run(ctx context.Context, cfg config.Config, opts Options, out io.Writer) (Summary, error) {
	log := opts.Logger
	if log == nil {
		log = telemetry.NewLogger(cfg.Telemetry, nil)
	}
	reg := telemetry.NewRegistry()
	ready := &telemetry.Readiness{}
	p, cfg, err := startParts(ctx, cfg, reg, ready, log)
	if err != nil {
		return Summary{}, err
	}
	defer p.close()
	printEndpoints(out, p.ep)
	<-ctx.Done()
	return Summary{Endpoints: p.ep}, nil
}

// printEndpoints tells the user where to look.
func printEndpoints(w io.Writer, ep Endpoints) {
	b := strings.Join(ep.KafkaBrokers, ",")
	fmt.Fprintf(w, "ebbflow dev: everything runs in this process\n")
	fmt.Fprintf(w, "  kafka (kfake)   %s   e.g. kcat -C -b %s -t %s\n", b, b, ep.Topics[schemas.TopicDecisions])
	fmt.Fprintf(w, "  topics          %s\n", strings.Join(topicList(ep), " "))
	fmt.Fprintf(w, "  nats            %s   e.g. nats --server %s sub 'ebbflow.decisions.>'\n", ep.NATSURL, ep.NATSURL)
	fmt.Fprintf(w, "  history         %s\n", ep.HistoryDir)
	if ep.MetricsURL != "" {
		fmt.Fprintf(w, "  metrics         %s\n", ep.MetricsURL)
	}
	if ep.SimURL != "" {
		fmt.Fprintf(w, "  simulated pods  %s\n", ep.SimURL)
	}
}

func topicList(ep Endpoints) []string {
	out := make([]string, 0, len(schemas.AllTopics))
	for _, b := range schemas.AllTopics {
		out = append(out, ep.Topics[b])
	}
	return out
}

// Summary is what a finished run reports.
type Summary struct {
	Endpoints Endpoints
}
