package wire

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/ingest"
	"github.com/ebbflow/ebbflow/ingest/window"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// Env is what every component is wired from: the configuration, the
// process's logger, registry and readiness, and the connections the
// process made. Both a component's own subcommand (Serve) and `ebbflow dev`
// build one and call the same Component.Run.
type Env struct {
	Cfg Config
	// Kube returns the Kubernetes client; it is called only by components
	// whose configuration needs one (a real clientset in a subcommand, the
	// simulated cluster's fake clientset in dev).
	Kube func() (kubernetes.Interface, error)
	// KubeAs returns a client acting as another identity (impersonation),
	// for handlers with a least-privilege identity of their own; nil uses
	// Kube (dev's fake clientset has no identities).
	KubeAs func(user string) (kubernetes.Interface, error)
	// JetStream publishes decisions and alerts; nil when nats.url is empty.
	JetStream jetstream.JetStream
	Log       *slog.Logger
	Reg       prometheus.Registerer
	Ready     *telemetry.Readiness
	// Clock is the actuator's clock for decision TTLs; nil = wall clock
	// (dev passes the simulated clock).
	Clock actuators.Clock
	// Instance names this process in CloudEvents sources (empty: the
	// components' defaults, which use the hostname).
	Instance string
	// InformerResync is the workload informer's resync period (0: none).
	InformerResync time.Duration
	// UIListener is the web UI's listener when the caller opened it (dev
	// prints its address first); nil: the UI listens on ui.listen.
	UIListener net.Listener
	// SigningKey, when set, is an in-process decision key (ebbflow dev):
	// deciders sign with it and the actuator trusts only its public key,
	// whatever the signing section's files say.
	SigningKey ed25519.PrivateKey
}

// Component is one pipeline stage: its name (the subcommand, the config
// section's component, the log component and metric prefix) and how it is
// wired from an Env. Run returns when ctx ends or the component fails.
type Component struct {
	Name string
	Run  func(ctx context.Context, e *Env) error
}

// Components are the long-running pipeline stages, in flow order; `ebbflow
// dev` runs them all and each subcommand runs its own. A new component (a
// decider, a processor) is one entry here, its section in Config and a
// subcommand calling Serve with it.
var Components = []Component{Ingest, Window, Forecast, Autoscale, Mixing, Servers, Actuate, UI}

// Lookup returns the component named name.
func Lookup(name string) (Component, bool) {
	for _, c := range Components {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// Ingest scrapes and receives remote_write, publishing to metrics.raw.
var Ingest = Component{Name: "ingest", Run: func(ctx context.Context, e *Env) error {
	var kube kubernetes.Interface
	if e.Cfg.Ingest.Scrape.Kubernetes.Enabled {
		var err error
		if kube, err = e.Kube(); err != nil {
			return err
		}
	}
	return ingest.Run(ctx, e.Cfg.Ingest, ingest.Deps{Kafka: e.Cfg.Kafka, Kube: kube, Logger: e.Log, Registerer: e.Reg,
		Cluster: e.Cfg.Kubernetes.Cluster, Readiness: e.Ready})
}}

// Window runs the event-time window processors and writes the history.
var Window = Component{Name: "window", Run: func(ctx context.Context, e *Env) error {
	deps := window.Deps{Kafka: e.Cfg.Kafka, HistoryRoot: e.Cfg.History.Root, Logger: e.Log, Registerer: e.Reg}
	if e.Instance != "" {
		deps.Source = "/ebbflow/" + e.Instance + "/window"
	}
	if e.Cfg.Window.History {
		fsys, err := history.Open(ctx, e.Cfg.History)
		if err != nil {
			return err
		}
		defer history.Close(fsys)
		deps.History = fsys
	}
	return window.Run(ctx, e.Cfg.Window, deps)
}}

// Forecast serves forecasts from metrics.windows.
var Forecast = Component{Name: "forecast", Run: func(ctx context.Context, e *Env) error {
	deps := forecast.Deps{Kafka: e.Cfg.Kafka, Logger: e.Log, Registerer: e.Reg, Instance: e.Instance}
	if e.Cfg.Forecast.ModelBackend == forecast.ModelsHistory {
		fsys, err := history.Open(ctx, e.Cfg.History)
		if err != nil {
			return err
		}
		defer history.Close(fsys)
		deps.ModelFS = fsys
	}
	if e.Cfg.Forecast.Retrain.Interval > 0 {
		hfs, err := history.Open(ctx, e.Cfg.History)
		if err != nil {
			return err
		}
		defer history.Close(hfs)
		deps.HistoryFS, deps.HistoryRoot = hfs, e.Cfg.History.Root
	}
	return forecast.Run(ctx, e.Cfg.Forecast, deps)
}}

// Autoscale is the elastic-scaling decider.
var Autoscale = Component{Name: "autoscale", Run: func(ctx context.Context, e *Env) error {
	kc, err := e.deciderKafka("autoscale")
	if err != nil {
		return err
	}
	deps := autoscale.Deps{Kafka: kc, Cluster: e.Cfg.Kubernetes.Cluster, JetStream: e.JetStream, Log: e.Log, Registerer: e.Reg}
	if e.Cfg.Autoscale.WatchWorkloads {
		cs, err := e.Kube()
		if err != nil {
			return fmt.Errorf("%w (or set autoscale.watch_workloads=false to take N from the replicas signal)", err)
		}
		if deps.Workloads, err = autoscale.NewWorkloadInformer(ctx, cs, e.InformerResync); err != nil {
			return err
		}
	}
	var joined atomic.Bool
	deps.Ready = func() { joined.Store(true) }
	e.Ready.Add("autoscale kafka", func() error {
		if !joined.Load() {
			return errors.New("autoscale: consumer group not joined yet")
		}
		return nil
	})
	return autoscale.Run(ctx, e.Cfg.Autoscale, deps)
}}

// Actuate carries out decisions on Kubernetes.
var Actuate = Component{Name: "actuate", Run: func(ctx context.Context, e *Env) error {
	cs, err := e.Kube()
	if err != nil {
		return err
	}
	clock := e.Clock
	if clock == nil {
		clock = actuators.WallClock{}
	}
	// A follower is ready (it is waiting for the lease by design);
	// liveness of the leader shows in ebbflow_actuate_* metrics.
	e.Ready.Add("kubernetes", func() error {
		if _, err := cs.Discovery().ServerVersion(); err != nil {
			return errors.New("kubernetes API unreachable: " + err.Error())
		}
		return nil
	})
	deps := actuators.Deps{Kafka: e.Cfg.Kafka, Cluster: e.Cfg.Kubernetes.Cluster, Kube: cs,
		JetStream: e.JetStream, Clock: clock, Log: e.Log, Registerer: e.Reg}
	if deps.Verifier, err = e.verifier(); err != nil {
		return err
	}
	if deps.Handlers, deps.Leading, err = Handlers(ctx, e, cs, clock); err != nil {
		return err
	}
	return actuators.Run(ctx, e.Cfg.Actuate, deps)
}}

// Mixing is the node-mixing decider: it hands idle inference nodes to
// training and takes them back before the peak (decisions of kind nodes,
// carried out by the node actuator inside Actuate).
var Mixing = Component{Name: "mixing", Run: func(ctx context.Context, e *Env) error {
	cs, err := e.Kube()
	if err != nil {
		return err
	}
	var now func() time.Time
	if e.Clock != nil {
		now = e.Clock.Now // dev: the simulated clock
	}
	kc, err := e.deciderKafka("mixing")
	if err != nil {
		return err
	}
	return mixing.Run(ctx, e.Cfg.Mixing, mixing.Deps{Kafka: kc, Cluster: e.Cfg.Kubernetes.Cluster, Kube: cs,
		JetStream: e.JetStream, Log: e.Log, Registerer: e.Reg, Now: now})
}}

// Servers watches the model store and decides to launch, update and
// retire model servers.
var Servers = Component{Name: "servers", Run: func(ctx context.Context, e *Env) error {
	fsys, err := history.Open(ctx, e.Cfg.History)
	if err != nil {
		return err
	}
	defer history.Close(fsys)
	kc, err := e.deciderKafka("servers")
	if err != nil {
		return err
	}
	deps := servers.Deps{Store: fsys, Kafka: kc, JetStream: e.JetStream, Cluster: e.Cfg.Kubernetes.Cluster,
		Log: e.Log, Registerer: e.Reg}
	if e.Clock != nil {
		deps.Clock = e.Clock.Now
	}
	return servers.Run(ctx, e.Cfg.Servers, deps)
}}
