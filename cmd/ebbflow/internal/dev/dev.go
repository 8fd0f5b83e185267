package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/ingest/replay"
	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// Options are the per-run choices `ebbflow dev` takes as flags.
type Options struct {
	// Speed is how much faster than real time the simulation runs: "1x",
	// "60x", or "max" (replay.ParseSpeed); empty is 60x (as fast as the pipeline keeps up).
	Speed string
	// For stops the run after this much simulated time; 0 runs until ctx ends.
	For time.Duration
	// Headless prints plain log lines instead of the refreshing view; the
	// view is only drawn when out is a terminal anyway.
	Headless bool
	// Trace is a CSV file of (timestamp, value) rows that drives every
	// service's load (each with its own phase) instead of the generated pattern.
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

// maxSpeedScrape is the scrape interval (wall clock) at --speed max; the
// simulation advances as soon as every ready pod has been scraped.
const maxSpeedScrape = 250 * time.Millisecond

// Run starts the embedded parts, the simulated cluster and every pipeline
// component, prints where each listens to out, and runs until ctx ends or
// opts.For of simulated time has passed; it then stops everything and
// returns the summary computed from the events on the topics.
func Run(ctx context.Context, cfg wire.Config, opts Options, out io.Writer) (Summary, error) {
	if opts.Speed == "" {
		opts.Speed = "60x"
	}
	speed, err := replay.ParseSpeed(opts.Speed)
	if err != nil {
		return Summary{}, fmt.Errorf("dev: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Summary{}, fmt.Errorf("dev: %w", err)
	}
	log := opts.Logger
	logFile := ""
	if log == nil {
		var w io.Writer
		if isTerminal(out, opts.Headless) {
			// The components' logs would tear the view: they go to a file.
			f, err := os.CreateTemp("", "ebbflow-dev-*.log")
			if err != nil {
				return Summary{}, fmt.Errorf("dev: log file: %w", err)
			}
			defer f.Close()
			w, logFile = f, f.Name()
		}
		log = telemetry.NewLogger(cfg.Telemetry, w)
	}
	d := cfg.Dev
	start := opts.Start
	if start.IsZero() {
		start = time.Now().UTC().Truncate(time.Minute)
	}
	scrapeEvery := maxSpeedScrape
	if speed > 0 {
		scrapeEvery = max(time.Duration(float64(d.Step)/speed), 10*time.Millisecond)
	}
	simCfg, err := simConfig(cfg, opts, start, scrapeEvery)
	if err != nil {
		return Summary{}, err
	}

	reg := telemetry.NewRegistry()
	ready := &telemetry.Readiness{}
	p, cfg, err := startParts(ctx, cfg)
	if err != nil {
		return Summary{}, err
	}
	defer p.close()
	cluster, err := sim.Start(ctx, simCfg)
	if err != nil {
		return Summary{}, err
	}
	defer cluster.Close()
	p.ep.SimURL = "http://" + cluster.Addr() + "/pods/<namespace>/<pod>/metrics"
	p.ep.LogFile = logFile
	printEndpoints(out, p.ep)
	cfg = devConfig(cfg, scrapeEvery)
	if err := os.MkdirAll(cfg.Servers.StoreDir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("dev: model store: %w", err)
	}

	t, err := startTap(ctx, cfg.Kafka, reg, log)
	if err != nil {
		return Summary{}, err
	}
	defer t.close()
	nc, js, err := natsbus.ConnectJetStream(cfg.NATS, "ebbflow-dev")
	if err != nil {
		return Summary{}, fmt.Errorf("dev: %w", err)
	}
	defer nc.Close()
	kube := cluster.Clientset()
	// Decisions are signed and verified as in production, with a key pair
	// that lives only in this process.
	_, devKey, err := decisionsig.GenerateKey()
	if err != nil {
		return Summary{}, fmt.Errorf("dev: decision signing key: %w", err)
	}
	e := &wire.Env{Cfg: cfg, Kube: func() (kubernetes.Interface, error) { return kube, nil }, JetStream: js,
		Log: log, Reg: reg, Ready: ready, Clock: actuators.ClockFunc(cluster.Now), Instance: "dev", InformerResync: time.Minute,
		UIListener: p.ui,
		SigningKey: devKey}

	// The components run with the same wiring and lifecycle as their
	// subcommands (wire.Components, wire.Run: telemetry server, then the
	// components, then the foreground — the simulated clock and the view;
	// stopped in reverse). The tap drains after.
	var names []string
	for _, c := range wire.Components {
		names = append(names, c.Name)
	}
	log.Info("ebbflow dev running", "components", names, "speed", opts.Speed, "for", opts.For, "start", start)

	hasIngest, hasWindow, hasActuate := false, false, false
	for _, n := range names {
		hasIngest = hasIngest || n == "ingest"
		hasWindow = hasWindow || n == "window"
		hasActuate = hasActuate || n == "actuate"
	}
	finished := false
	simEnd := cluster.Now()
	foreground := func(ctx context.Context) (err error) {
		if d.LaunchAfter > 0 {
			// The model the servers component launches appears in the
			// store at start + dev.launch_after of simulated time.
			launchDone := make(chan error, 1)
			go func() {
				launchDone <- registerModel(ctx, cluster.Now, start.Add(d.LaunchAfter), cfg.Servers.StoreDir, launchSpec(d))
			}()
			defer func() {
				if lerr := <-launchDone; lerr != nil {
					log.Error("register the launched model", "err", lerr)
					err = errors.Join(err, lerr)
				}
			}()
		}
		clockCtx, stopClock := context.WithCancel(ctx)
		defer stopClock()
		clockDone := make(chan error, 1)
		go func() {
			clockDone <- drive(clockCtx, cluster, t, newClockMetrics(reg), clock{speed: speed, step: d.Step, until: opts.For, maxLag: d.MaxLag, gateOnScrapes: hasIngest, gateOnWindows: hasWindow, gateOnActions: hasActuate}, log)
		}()
		view := newView(out, cluster, t, p.ep, opts.Headless, log)
		viewCtx, stopView := context.WithCancel(ctx)
		defer stopView()
		viewDone := make(chan struct{})
		go func() { defer close(viewDone); view.run(viewCtx) }()

		var clockErr error
		select {
		case <-ctx.Done():
		case clockErr = <-clockDone:
			finished = clockErr == nil
		}
		stopClock()
		simEnd = cluster.Now()
		if finished && hasWindow {
			// Let the pipeline catch up with the last simulated minutes.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) && ctx.Err() == nil && t.newestWindowEnd().Before(simEnd.Add(-2*time.Minute)) {
				time.Sleep(50 * time.Millisecond)
			}
		}
		stopView()
		<-viewDone
		return clockErr
	}
	var runErr error
	if err := wire.Run(ctx, e, reg, wire.RunOptions{Telemetry: p.telemetry, Foreground: foreground}, wire.Components...); err != nil {
		runErr = fmt.Errorf("dev: %w", err)
	}
	t.drain(context.Background(), time.Second, 10*time.Second)
	ev := t.snapshot()
	s := Summary{
		Endpoints: p.ep, Start: start, End: simEnd, Components: names,
		Services: summarise(ev, 60, d.LatencySLOMs), Sim: cluster.Stats(),
		Windows: len(ev.Windows), Forecasts: len(ev.Forecasts), Decisions: len(ev.Decisions), Actions: len(ev.Actions),
		DeadLetters: ev.Dead, Undecodable: ev.Bad, SimMinutes: map[string][]sim.Minute{}, Servers: serverEvents(ev),
	}
	for _, st := range s.Sim {
		s.SimMinutes[st.Entity] = cluster.Minutes(st.Entity)
		if v, err := versusHPA(s.SimMinutes[st.Entity], d); err == nil {
			if s.VsHPA == nil {
				s.VsHPA = map[string]VsHPA{}
			}
			s.VsHPA[st.Entity] = v
		} else {
			log.Warn("dev: no vs-HPA comparison", "service", st.Entity, "err", err)
		}
	}
	if d.NodeGroup != "" {
		s.Mixing = &MixingSummary{Group: d.NodeGroup, Flips: ev.Nodes, Sim: cluster.MixingStats()}
	}
	if finished || ctx.Err() != nil {
		s.Print(out)
	}
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	return s, runErr
}

// printEndpoints tells the user where to look.
func printEndpoints(w io.Writer, ep Endpoints) {
	b := strings.Join(ep.KafkaBrokers, ",")
	fmt.Fprintf(w, "ebbflow dev: everything runs in this process\n")
	if ep.UIURL != "" {
		fmt.Fprintf(w, "  web UI          %s   (forms' token: %s)\n", ep.UIURL, ep.UIToken)
	}
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
	if ep.LogFile != "" {
		fmt.Fprintf(w, "  logs            %s\n", ep.LogFile)
	}
}

func topicList(ep Endpoints) []string {
	out := make([]string, 0, len(schemas.AllTopics))
	for _, b := range schemas.AllTopics {
		out = append(out, ep.Topics[b])
	}
	return out
}

// serviceNames are the simulated services' names, in order.
var serviceNames = []string{"chat-llm", "image-embed", "speech-asr", "rerank", "vision-detect", "translate", "ocr", "tts"}

// simConfig builds the simulated cluster from the dev section and options:
// generated traffic with a different shape and phase per service, or the
// trace replayed with a phase shift per service.
func simConfig(cfg wire.Config, opts Options, start time.Time, scrapeEvery time.Duration) (sim.Config, error) {
	d := cfg.Dev
	sc := sim.Config{
		Cluster: cfg.Kubernetes.Cluster, Namespace: d.Namespace, Start: start, Step: d.Step,
		StartupDelay: d.StartupDelay, Nodes: d.Nodes, GPUsPerNode: d.GPUsPerNode, LatencySLOMs: d.LatencySLOMs,
		ScrapeInterval: scrapeEvery,
	}
	var trace *sim.Trace
	if opts.Trace != "" {
		var err error
		if trace, err = sim.LoadTrace(opts.Trace, opts.TraceColumn); err != nil {
			return sc, fmt.Errorf("dev: --trace: %w", err)
		}
	}
	sizes := []float64{1, 0.6, 0.8, 0.5, 0.9, 0.7}
	for i := range d.Services {
		name := serviceNames[i%len(serviceNames)]
		if i >= len(serviceNames) {
			name += "-" + strconv.Itoa(i/len(serviceNames)+1)
		}
		peak := d.PeakUtilisation * float64(d.MaxReplicas) * d.CapacityRPS * sizes[i%len(sizes)]
		var load sim.LoadFunc
		if trace != nil {
			load = trace.Func(opts.TraceOffset+time.Duration(i)*3*time.Hour, peak)
		} else {
			load = sim.Pattern{
				Peak: peak, Valley: []float64{0.15, 0.25, 0.1}[i%3],
				MorningHour: []float64{11, 10, 13}[i%3], EveningHour: []float64{20, 21.5, 18}[i%3],
				EveningWeight: []float64{0.8, 1.1, 0.6}[i%3], WidthHours: []float64{2.5, 2, 3}[i%3],
				StartHour: d.StartHour, Noise: 0.05,
				BurstsPerDay: []float64{2, 1, 3}[i%3], BurstSize: 0.3, BurstMinutes: 15,
				Seed: d.Seed*1000 + int64(i),
			}.Func()
		}
		sc.Services = append(sc.Services, sim.Service{
			Name: name, Model: strings.ReplaceAll(name, "-", "_"), CapacityRPS: d.CapacityRPS, BaseLatencyMs: d.BaseLatencyMs,
			ModelMemMiB: 12000 + 4000*float64(i%3), InitialReplicas: initialReplicas(d, load(0)), Load: load,
		})
	}
	if d.LaunchAfter > 0 {
		sc.Services = append(sc.Services, launchedService(d))
	}
	if d.NodeGroup != "" {
		m, err := simMixing(d)
		if err != nil {
			return sc, err
		}
		sc.Mixing = m
	}
	return sc, nil
}

// initialReplicas is dev.initial_replicas, or when 0 what the starting
// load needs at 70% utilisation, within the bounds.
func initialReplicas(d wire.DevConfig, load float64) int32 {
	if d.InitialReplicas > 0 {
		return d.InitialReplicas
	}
	n := int32(math.Ceil(load / (0.7 * d.CapacityRPS)))
	return min(max(n, d.MinReplicas), d.MaxReplicas)
}
