// Package mixing is the node-mixing component: whole nodes of a node group
// (cpu, t4, a100, … from a configurable node label) move between the
// inference pool (online) and the training pool (offline, "mixed" nodes),
// while fixed training nodes never move.
//
// The package holds:
//
//   - the pure decision core (Decide): per group, from the group's inference
//     utilisation now and forecast, Pending inference pods and the nodes'
//     state, which nodes to hand over and why, one small function per guard
//     with a typed reason (Reason*, Guard*);
//   - the node state on labels (ReadNode, the Label* constants), so a
//     restarted decider or actuator resumes a handover from the node itself;
//   - the offline windows (ReturnSchedule, FitsWindows): when each offline
//     node will be needed back, so a training scheduler places only jobs
//     expected to end before then;
//   - the offline backtest (Backtest): a replayed inference trace and a
//     Philly-shaped training job stream, ebbflow's policy against WPAI's
//     reactive threshold rule in the same run.
//
// Nothing here does I/O except Backtest's trace reading; the loop that feeds
// Decide lives beside it and the node actuator is actuators/nodes.
package mixing
