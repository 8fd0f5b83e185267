package mixing

import (
	"fmt"
	"time"
)

// Labels, taints and annotations that hold the mixing state on the nodes
// and pods themselves, so a restarted decider or actuator reads where every
// node stands from the API server.
const (
	// LabelNodeGroup is the default group label (Config.GroupLabel).
	LabelNodeGroup = "ebbflow.io/node-group"
	// LabelPool holds the node's pool: online, offline or fixed. During a
	// handover it still names the pool the node is leaving.
	LabelPool = "ebbflow.io/pool"
	// LabelHandover is set while a node is between pools: to-offline or
	// to-online. It comes with a cordon and TaintHandover.
	LabelHandover = "ebbflow.io/handover"
	// TaintHandover is the NoSchedule taint of a node in handover.
	TaintHandover = "ebbflow.io/handover"
	// AnnotationDecisionID is the id of the last nodes decision applied to
	// the node (idempotency).
	AnnotationDecisionID = "ebbflow.io/nodes-decision-id"
	// AnnotationDecisionSeq is that decision's sequence: an older decision
	// redelivered later is skipped as stale.
	AnnotationDecisionSeq = "ebbflow.io/nodes-decision-seq"
	// LabelWorkload on a pod says which side it belongs to: inference or
	// training. Pods without it are neither evicted nor counted.
	LabelWorkload = "ebbflow.io/workload"
	// AnnotationLastCheckpoint on a training pod is the RFC 3339 time of
	// its last checkpoint; without it the pod's start time is used.
	AnnotationLastCheckpoint = "ebbflow.io/last-checkpoint"
)

// Workload label values.
const (
	WorkloadInference = "inference"
	WorkloadTraining  = "training"
)

// Pool is a node's pool.
type Pool string

// Pools. Fixed nodes never change pool.
const (
	PoolOnline  Pool = "online"
	PoolOffline Pool = "offline"
	PoolFixed   Pool = "fixed"
)

// Handover is the direction of a handover in progress ("" when none).
type Handover string

// Handover directions.
const (
	HandoverNone      Handover = ""
	HandoverToOffline Handover = "to-offline"
	HandoverToOnline  Handover = "to-online"
)

// Target is the pool a handover leads to.
func (h Handover) Target() Pool {
	switch h {
	case HandoverToOffline:
		return PoolOffline
	case HandoverToOnline:
		return PoolOnline
	}
	return ""
}

// HandoverTo returns the handover that leads to a pool.
func HandoverTo(p Pool) Handover {
	switch p {
	case PoolOffline:
		return HandoverToOffline
	case PoolOnline:
		return HandoverToOnline
	}
	return HandoverNone
}

// NodeState is what the labels say about a node.
type NodeState struct {
	Group    string
	Pool     Pool
	Handover Handover
}

// ReadNode reads a node's mixing state from its labels. A node without the
// pool label is not managed (ok false); a pool or handover value ebbflow
// does not know is an error naming the label.
func ReadNode(labels map[string]string, groupLabel string) (st NodeState, ok bool, err error) {
	p, has := labels[LabelPool]
	if !has {
		return NodeState{}, false, nil
	}
	st.Group = labels[groupLabel]
	switch Pool(p) {
	case PoolOnline, PoolOffline, PoolFixed:
		st.Pool = Pool(p)
	default:
		return NodeState{}, false, fmt.Errorf("label %s: %q is not online, offline or fixed", LabelPool, p)
	}
	switch h := Handover(labels[LabelHandover]); h {
	case HandoverNone, HandoverToOffline, HandoverToOnline:
		st.Handover = h
	default:
		return NodeState{}, false, fmt.Errorf("label %s: %q is not to-offline or to-online", LabelHandover, h)
	}
	if st.Pool == PoolFixed && st.Handover != HandoverNone {
		return NodeState{}, false, fmt.Errorf("label %s: a fixed node never hands over (found %q)", LabelHandover, st.Handover)
	}
	return st, true, nil
}

// Node is the decider's view of one node of a group.
type Node struct {
	Name     string
	Pool     Pool
	Handover Handover
	// InferencePods and TrainingPods are the node's running pods by side.
	InferencePods int
	TrainingPods  []TrainingPod
}

// Ready reports whether the node serves its pool (no handover running).
func (n Node) Ready() bool { return n.Handover == HandoverNone }

// TrainingPod is a training pod on a mixed node, with what evicting it
// would cost.
type TrainingPod struct {
	Namespace, Name string
	Started         time.Time
	// LastCheckpoint is zero when the pod has not reported one.
	LastCheckpoint time.Time
}

// LostWork is the work an eviction at now would throw away: the time since
// the last checkpoint, or since the start when there is none.
func (p TrainingPod) LostWork(now time.Time) time.Duration {
	from := p.Started
	if p.LastCheckpoint.After(from) {
		from = p.LastCheckpoint
	}
	if now.Before(from) {
		return 0
	}
	return now.Sub(from)
}

// LostWork sums the work lost by evicting every training pod of the node.
func (n Node) LostWork(now time.Time) time.Duration {
	var d time.Duration
	for _, p := range n.TrainingPods {
		d += p.LostWork(now)
	}
	return d
}
