package dev

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/scaling"
	"github.com/ebbflow/ebbflow/ingest"
	"github.com/ebbflow/ebbflow/ingest/window"
	"github.com/ebbflow/ebbflow/internal/config"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// env is what every component gets in `ebbflow dev`: the configuration
// pointed at the embedded parts, the simulated cluster's clientset, and
// the process's logger, registry and readiness.
type env struct {
	cfg   config.Config
	kube  kubernetes.Interface
	log   *slog.Logger
	reg   prometheus.Registerer
	ready *telemetry.Readiness
	nc    *nats.Conn
	js    jetstream.JetStream
	// now is the simulated clock, for components that compare event time
	// with a clock (the actuator's decision TTLs).
	now func() time.Time
}

// component is one pipeline stage as `ebbflow dev` runs it: the same Run
// its own subcommand calls, given the embedded parts.
type component struct {
	name string
	run  func(ctx context.Context, e *env) error
}

// components are the pipeline stages, in flow order. Adding a stage is
// one entry here.
var components = []component{
	{"ingest", func(ctx context.Context, e *env) error {
		return ingest.Run(ctx, e.cfg.Ingest, ingest.Deps{Kafka: e.cfg.Kafka, Kube: e.kube, Logger: e.log, Registerer: e.reg,
			Cluster: e.cfg.Kubernetes.Cluster, Readiness: e.ready})
	}},
	{"window", func(ctx context.Context, e *env) error {
		fsys, err := history.Open(ctx, e.cfg.History)
		if err != nil {
			return err
		}
		return window.Run(ctx, e.cfg.Window, window.Deps{Kafka: e.cfg.Kafka, History: fsys, HistoryRoot: e.cfg.History.Root,
			Logger: e.log.With("component", "window"), Registerer: e.reg, Source: "/ebbflow/dev/window"})
	}},
	{"forecast", func(ctx context.Context, e *env) error {
		return forecast.Run(ctx, e.cfg.Forecast, forecast.Deps{Kafka: e.cfg.Kafka, Logger: e.log, Registerer: e.reg, Instance: "dev"})
	}},
	{"decide", func(ctx context.Context, e *env) error {
		wl, err := scaling.NewWorkloadInformer(ctx, e.kube, time.Minute)
		if err != nil {
			return err
		}
		return scaling.Run(ctx, e.cfg.Decide, scaling.Deps{Kafka: e.cfg.Kafka, Cluster: e.cfg.Kubernetes.Cluster, Workloads: wl,
			JetStream: e.js, Log: e.log.With("component", "decide"), Registerer: e.reg})
	}},
	{"actuate", func(ctx context.Context, e *env) error {
		return actuators.Run(ctx, e.cfg.Actuate, actuators.Deps{Kafka: e.cfg.Kafka, Cluster: e.cfg.Kubernetes.Cluster, Kube: e.kube,
			JetStream: e.js, Clock: actuators.ClockFunc(e.now), Log: e.log.With("component", "actuate"), Registerer: e.reg})
	}},
}

// devConfig adapts every component's section to the embedded parts and the
// simulated cluster: what a user would write in a config file for them.
func devConfig(cfg config.Config, scrapeEvery time.Duration) config.Config {
	d := cfg.Dev
	// ingest: scrape the simulated pods found through the fake clientset;
	// the pods' own annotation sets the (wall-clock) interval.
	cfg.Ingest.RemoteWrite.Listen = ""
	cfg.Ingest.Scrape.Static = nil
	cfg.Ingest.Scrape.Kubernetes.Enabled = true
	cfg.Ingest.Scrape.Kubernetes.Namespaces = []string{d.Namespace, sim.KSMNamespace}
	cfg.Ingest.Scrape.Interval = scrapeEvery
	cfg.Ingest.Scrape.Timeout = min(scrapeEvery, 5*time.Second)
	// decide: the services' bounds and capacity, and read the topics from
	// the start (they are new).
	cfg.Decide.InitialOffset = "oldest"
	p := cfg.Decide.Policy.Clone()
	p.MinReplicas, p.MaxReplicas = d.MinReplicas, d.MaxReplicas
	p.StartupTime = d.StartupDelay
	p.LatencySLOMs = d.LatencySLOMs
	p.Signals = map[string]scaling.SignalPolicy{
		schemas.SignalQPS:     {ExpectRate: 0.7, Capacity: d.CapacityRPS},
		schemas.SignalGPUUtil: {ExpectRate: 0.7, Capacity: 100},
	}
	cfg.Decide.Policy = p
	// At --speed max the simulated clock may run up to max_lag ahead of the
	// newest window, and a decision is stamped with its window's end: a TTL
	// shorter than that lag, a window and a step would expire decisions only
	// because the machine is busy, not because they are stale.
	cfg.Decide.DecisionTTL = max(cfg.Decide.DecisionTTL, d.MaxLag+2*d.Step+time.Minute)
	// window: simulated time runs apart from the wall clock, so a quiet
	// partition must not advance its watermark with the wall clock.
	cfg.Window.IdleTimeout = 0
	cfg.Window.StartFrom = "oldest"
	// forecast: the bundled models, wherever the process runs from.
	cfg.Forecast.ModelDir = findUp(cfg.Forecast.ModelDir)
	// actuate: one process, no leader election; the services' bound.
	cfg.Actuate.InitialOffset = "oldest"
	cfg.Actuate.LeaderElection.Enabled = false
	cfg.Actuate.MaxReplicas = d.MaxReplicas
	if cfg.Actuate.Identity == "" {
		cfg.Actuate.Identity = "ebbflow-dev"
	}
	return cfg
}

// findUp returns a relative path as found from the working directory or
// the nearest parent holding it (so `go test` in a package directory finds
// testdata/models of the repository root); other paths as they are.
func findUp(rel string) string {
	if rel == "" || filepath.IsAbs(rel) {
		return rel
	}
	dir, err := os.Getwd()
	if err != nil {
		return rel
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return rel
		}
		dir = parent
	}
}

func (e *env) close() {
	if e.nc != nil {
		e.nc.Close()
	}
}

func newEnv(cfg config.Config, kube kubernetes.Interface, now func() time.Time, log *slog.Logger, reg prometheus.Registerer, ready *telemetry.Readiness) (*env, error) {
	e := &env{cfg: cfg, kube: kube, now: now, log: log, reg: reg, ready: ready}
	nc, js, err := natsbus.ConnectJetStream(cfg.NATS, "ebbflow-dev")
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	e.nc, e.js = nc, js
	return e, nil
}
