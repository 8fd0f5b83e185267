package dev

import (
	"os"
	"path/filepath"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/internal/sim"
	"github.com/ebbflow/ebbflow/schemas"
)

// devConfig adapts every component's section to the embedded parts and the
// simulated cluster: what a user would write in a config file for them.
func devConfig(cfg wire.Config, scrapeEvery time.Duration) wire.Config {
	d := cfg.Dev
	// ingest: scrape the simulated pods found through the fake clientset;
	// the pods' own annotation sets the (wall-clock) interval.
	cfg.Ingest.RemoteWrite.Listen = ""
	cfg.Ingest.Scrape.Static = nil
	cfg.Ingest.Scrape.Kubernetes.Enabled = true
	cfg.Ingest.Scrape.Kubernetes.Namespaces = []string{d.Namespace, sim.KSMNamespace}
	cfg.Ingest.Scrape.Interval = scrapeEvery
	cfg.Ingest.Scrape.Timeout = min(scrapeEvery, 5*time.Second)
	// training: one scrape per simulated step, so a run's GPU count is its
	// gpu_util samples per window ÷ (window ÷ step) — sizing reads the
	// simulated training runs from the dev history with this interval.
	cfg.Training.Sizing.ScrapeInterval = d.Step
	// autoscale: the services' bounds and capacity, and read the topics from
	// the start (they are new).
	cfg.Autoscale.InitialOffset = "oldest"
	p := cfg.Autoscale.Policy.Clone()
	p.MinReplicas, p.MaxReplicas = d.MinReplicas, d.MaxReplicas
	p.StartupTime = d.StartupDelay
	p.LatencySLOMs = d.LatencySLOMs
	p.Signals = map[string]autoscale.SignalPolicy{
		schemas.SignalQPS:     {ExpectRate: 0.7, Capacity: d.CapacityRPS},
		schemas.SignalGPUUtil: {ExpectRate: 0.7, Capacity: 100},
	}
	cfg.Autoscale.Policy = p
	// At --speed max the simulated clock may run up to max_lag ahead of the
	// newest window, and a decision is stamped with its window's end: a TTL
	// shorter than that lag, a window and a step would expire decisions only
	// because the machine is busy, not because they are stale.
	cfg.Autoscale.DecisionTTL = max(cfg.Autoscale.DecisionTTL, d.MaxLag+2*d.Step+time.Minute)
	// window: simulated time runs apart from the wall clock, so a quiet
	// partition must not advance its watermark with the wall clock.
	cfg.Window.IdleTimeout = 0
	// Nor is a window ahead of the wall clock out of range.
	cfg.Forecast.MaxFuture = 0
	cfg.Window.MaxFuture = 0
	cfg.Autoscale.MaxFuture = 0
	cfg.Actuate.MaxFuture = 0
	cfg.Mixing.MaxFuture = 0
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
	// servers: the model store is a directory of the history, the services'
	// namespace; the simulated cluster has no identities to impersonate.
	cfg.Servers.Namespace = d.Namespace
	cfg.Servers.StoreDir = filepath.Join(cfg.History.Root, "models")
	cfg.Servers.PollInterval = max(scrapeEvery, 100*time.Millisecond)
	cfg.Servers.Impersonate = ""
	cfg.Servers.DecisionTTL = max(cfg.Servers.DecisionTTL, cfg.Autoscale.DecisionTTL)
	// mixing: the node actuator, too, acts as the fake clientset itself.
	cfg.Mixing.Actuator.Impersonate = ""
	// Its loops tick on the wall clock: once per simulated minute, and
	// the handovers advance at every scrape; the decider reads the
	// simulated clock (wire.Env.Clock).
	cfg.Mixing.Interval = time.Duration(float64(scrapeEvery) * float64(time.Minute) / float64(d.Step))
	cfg.Mixing.Actuator.ReconcileInterval = scrapeEvery
	// As for autoscale's TTL: at --speed max the newest window may lag
	// the simulated clock by max_lag, a window and a step; a reading that
	// old is not stale, and calling it so would reset the dwell clock.
	cfg.Mixing.StaleAfter = max(cfg.Mixing.StaleAfter, d.MaxLag+2*d.Step+time.Minute)
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
