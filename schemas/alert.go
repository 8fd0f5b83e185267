package schemas

import "time"

// Alert kinds.
const (
	AlertScaleRatio   = "scale_ratio"
	AlertMaxReplicas  = "max_replicas"
	AlertActionFailed = "action_failed"
	// AlertBadPolicy: a policy annotation on a workload was rejected; the
	// decider uses the configured policy for the rejected keys.
	AlertBadPolicy = "bad_policy"
)

// Alert is a notable event for people: a large scaling step, a service
// pinned at its maximum, a failed action. Published on NATS
// ebbflow.alerts.<severity>.<kind> (AlertSubject), JSON per
// json/alert.schema.json.
type Alert struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Kind     string `json:"kind"`
	Summary  string `json:"summary"`
	// Target is the object the alert is about, when there is one.
	Target     *Target `json:"target,omitempty"`
	Entity     string  `json:"entity,omitempty"`
	DecisionID string  `json:"decision_id,omitempty"`
	AtMs       int64   `json:"at_ms"`
	Source     string  `json:"source"`
	// Values holds the numbers behind the alert (from, to, ratio, …).
	Values map[string]float64 `json:"values,omitempty"`
}

// EventType implements Event.
func (a Alert) EventType() string { return "io.ebbflow.alert.v1" }

// EventID implements Event.
func (a Alert) EventID() string { return a.ID }

// EventTime implements Event.
func (a Alert) EventTime() time.Time { return time.UnixMilli(a.AtMs).UTC() }

// EventKey implements Event: the target's key, else the entity.
func (a Alert) EventKey() string {
	if a.Target != nil {
		return a.Target.Key()
	}
	return a.Entity
}
