// Package dev is `ebbflow dev`: the whole pipeline in one process on
// embedded Kafka (kfake) and nats-server, a simulated cluster driving the
// load (generated, or a CSV trace read by internal/sim/trace), a tap on
// the topics, a terminal view and an end-of-run summary. The components
// are wire.Components under wire.Run, the same lifecycle as their
// subcommands; the simulated clock and the view are its foreground.
package dev
