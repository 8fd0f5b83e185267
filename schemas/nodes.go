package schemas

import "time"

// DecisionNodes is the decision kind that hands whole nodes between the
// inference (online) and training (offline) pools.
const DecisionNodes = "nodes"

// TargetKindNodeGroup is the Target.Kind of a nodes decision: the target is
// a node group (cluster-scoped, Namespace empty, Name the group).
const TargetKindNodeGroup = "NodeGroup"

// NodeGroupTarget is the target of a nodes decision about one group.
func NodeGroupTarget(cluster, group string) Target {
	return Target{Cluster: cluster, Kind: TargetKindNodeGroup, Name: group}
}

// NodeFlip is one node a nodes decision moves, with why it was chosen.
type NodeFlip struct {
	Node string `json:"node"`
	// From and To are pools: online, offline (fixed never moves).
	From string `json:"from"`
	To   string `json:"to"`
	// Cancel undoes a handover in progress (From == To).
	Cancel        bool    `json:"cancel,omitempty"`
	Why           string  `json:"why"`
	InferencePods int     `json:"inference_pods"`
	TrainingPods  int     `json:"training_pods"`
	LostWorkS     float64 `json:"lost_work_s"`
}

// UtilisationPoint is one forecast point of a group's inference utilisation.
type UtilisationPoint struct {
	AtMs        int64   `json:"at_ms"`
	Utilisation float64 `json:"utilisation"`
}

// NodesReason explains a nodes decision: the rule (Code) and the guard
// that bound it, the thresholds applied, the numbers read and the forecast.
type NodesReason struct {
	Summary string `json:"summary"`
	// Code is the trigger (UtilisationAboveMaxRate,
	// ForecastAboveMaxRateWithinLeadTime, InferencePodsPending,
	// UtilisationBelowMinRateForDwell).
	Code  string `json:"code"`
	Guard string `json:"guard,omitempty"`
	// Thresholds: min_rate, max_rate, expect_rate, spare_nodes, dwell_s,
	// lead_time_s, forecast_horizon_s, max_flips, flip_interval_s,
	// kill_budget_per_hour.
	Thresholds map[string]float64 `json:"thresholds"`
	// Inputs: utilisation, peak_lead_time, peak_horizon, demand_nodes,
	// online, offline, fixed, incoming, outgoing, required,
	// pending_inference, low_for_s, flips_left, kills_left.
	Inputs   map[string]float64 `json:"inputs"`
	Forecast []UtilisationPoint `json:"forecast,omitempty"`
}

// NodesDecision hands nodes of one group to the other pool. Topic
// decisions, key = Target.Key() (<cluster>//NodeGroup/<group>); NATS
// subject DecisionSubject("nodes", cluster, group).
type NodesDecision struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Seq grows per group; the node actuator records the decision id on
	// each node it changes, so a redelivered decision is skipped.
	Seq       int64  `json:"seq"`
	Target    Target `json:"target"`
	Group     string `json:"group"`
	AtMs      int64  `json:"at_ms"`
	ExpiresMs int64  `json:"expires_ms"`
	// Direction is to-offline or to-online.
	Direction string      `json:"direction"`
	Nodes     []NodeFlip  `json:"nodes"`
	DryRun    bool        `json:"dry_run,omitempty"`
	Reason    NodesReason `json:"reason"`
	DecidedBy string      `json:"decided_by"`
}

// EventType implements Event.
func (d NodesDecision) EventType() string { return "io.ebbflow.decision.nodes.v1" }

// EventID implements Event.
func (d NodesDecision) EventID() string { return d.ID }

// EventTime implements Event.
func (d NodesDecision) EventTime() time.Time { return time.UnixMilli(d.AtMs).UTC() }

// EventKey implements Event.
func (d NodesDecision) EventKey() string { return d.Target.Key() }

// Subject is the NATS subject of the decision: the group stands where a
// namespaced decision has its namespace.
func (d NodesDecision) Subject() string {
	return DecisionSubject(DecisionNodes, d.Target.Cluster, d.Group)
}
