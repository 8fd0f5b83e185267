// Command ebbflow is ebbflow's one binary: one subcommand per component
// (ingest, window, forecast, autoscale, actuate, replay, …) and `dev`, which
// runs them all in one process on embedded parts. main only parses flags and
// loads the configuration; internal/wire wires each component once (the
// root configuration, the Env every component is built from, and Serve,
// the one process lifecycle) and internal/dev runs them all on embedded
// parts. Each component is a library package with its own Run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// globals are the persistent flags every subcommand shares.
type globals struct {
	configFile string
	sets       []string
	logLevel   string
}

// load reads the configuration the flags point at.
func (g *globals) load() (wire.Config, error) {
	sets := g.sets
	if g.logLevel != "" {
		sets = append([]string{"telemetry.log_level=" + g.logLevel}, sets...)
	}
	return wire.Load(wire.Options{File: g.configFile, Env: os.Environ(), Sets: sets})
}

// subcommands are added by the files of this package, one per component.
var subcommands []func(*globals) *cobra.Command

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "ebbflow",
		Short: "Elastic AI platform pipeline: metrics → Kafka → windows → forecasts → decisions → Kubernetes",
		Long: `ebbflow makes a Kubernetes AI platform elastic. It ingests Prometheus metrics
into Kafka, windows them in event time, forecasts each service's load 1–5
minutes ahead with XGBoost, decides scaling, and acts through the Kubernetes API.

Every component reads one YAML configuration file (--config). Any field can be
overridden by an environment variable EBBFLOW_<SECTION>_<FIELD> (for example
EBBFLOW_KAFKA_BROKERS=10.0.0.1:9092,10.0.0.2:9092) or by --set section.field=value.
'ebbflow config defaults' prints every field with its default.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVarP(&g.configFile, "config", "c", "", "YAML configuration file")
	root.PersistentFlags().StringArrayVar(&g.sets, "set", nil, "override a configuration field: section.field=value (repeatable)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (overrides telemetry.log_level)")
	for _, sc := range subcommands {
		root.AddCommand(sc(g))
	}
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ebbflow:", err)
		os.Exit(1)
	}
}
