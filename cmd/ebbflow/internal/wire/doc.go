// Package wire is ebbflow's composition root: the root configuration
// (Config, one section per component), how each component is wired from
// an Env (Components: each wired once, used by its subcommand and by
// `ebbflow dev`), the one list of actuator handlers (Handlers), and the
// one process lifecycle (Serve for a subcommand; Run, its shared part,
// which `ebbflow dev` calls with its embedded parts):
//
//	start: logger, registry, readiness → NATS → telemetry server → components → foreground (dev)
//	stop:  foreground → components → telemetry server → NATS   (every error returned, joined)
package wire
