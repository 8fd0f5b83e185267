// Package backtest replays a load series (a CSV trace or the Parquet
// history) through scaling policies against a simulated service, in event
// time, with no Kafka and no Kubernetes: the shape of promtool's rule unit
// tests, applied to autoscaling.
//
// Every policy sees the same service: the same demand, the same capacity
// per replica, the same start-up delay before a new replica serves and
// the same replica bounds. The simulation advances in ticks (15 s, the
// HPA's sync period); each tick it makes started replicas ready, asks the
// policy for a replica count, applies it, and scores the tick:
//
//   - replica-minutes: replicas that exist (ready or starting), integrated
//     over time — what the service pays for;
//   - under-provisioned minutes: time the demand exceeded the ready
//     capacity at the target utilisation (ready × capacity × target);
//   - minutes over the latency SLO: whole minutes whose request-weighted
//     mean latency, by the M/M/1-like model of internal/sim (base/(1−ρ),
//     ρ capped at 0.95 with the excess failing), exceeded the SLO;
//   - scale events, and reversals: scale events whose direction is
//     opposite to the previous event less than ReversalWindow (10 min)
//     before.
//
// Policies ([Policy]) are plain values with state, one per run:
// [NewHPA] (the Kubernetes HPA v2 algorithm, upstream defaults),
// [NewDecider] (ebbflow's autoscale decider fed by a [Forecaster]: the
// real model through [NewModelForecaster], or [LastValue]) and
// [NewStatic] (the series' peak, an oracle). A policy sees only windows
// that have closed ([View.Known]) and the reactive metric a real
// autoscaler would read ([View.Metric]); the future is out of its reach.
//
// The same input gives the same output: there is no randomness and no
// wall clock.
package backtest
