// Package nodes is the node actuator: the handler of `nodes` decisions
// (actuators.Handler) and the reconciler that finishes every handover.
//
// A handover goes through an intermediate state held on the node itself:
// the node is cordoned, tainted ebbflow.io/handover:NoSchedule and labelled
// ebbflow.io/handover=to-offline|to-online; the pods of the pool it leaves
// (ebbflow.io/workload=training when going online, inference when going
// offline) are evicted through the Eviction API (policy/v1), training pods
// with a grace period for a checkpoint, PodDisruptionBudgets respected (a
// 429 leaves the pod for the next pass and is reported); once none is
// left the node is relabelled into its new pool, untainted and uncordoned.
// Because every step's state is on the node, a restarted actuator resumes
// each handover from the labels (Reconcile).
//
// The handler is idempotent (the decision id is recorded on each node it
// changes), bounded (nodes per decision, training evictions per hour),
// honours dry run, records a Kubernetes Event on the node per step and
// exports ebbflow_actuate_nodes_* metrics.
package nodes
