// Package backtest replays a Philly-shaped training job stream through two
// schedulers in the same run, on the same simulated GPU cluster: ebbflow's
// (sizing from history, WPAI's score, borrowing within a cohort, GPU-model
// fallback, pre-emption guarded by minimum runtime and the kill budget) and
// FIFO with static quotas (requested sizes, preferred GPU model only, no
// borrowing). It reports GPU allocation utilisation, waits and
// pre-emptions for both. Everything is pure Go, seeded and deterministic:
// the same trace, options and seed give the same report.
//
// The Philly trace (philly_node_sequence.csv) is a curve of busy nodes per
// minute, not a list of jobs; Generate turns it into a job stream whose
// offered GPU demand follows the curve. docs/training.md lists every
// assumption of the generator.
package backtest
