package schemas

import "time"

// DecisionInference is the kind of decisions that launch, update and
// retire model servers (json/decision.inference.schema.json).
const DecisionInference = "inference"

// Inference decision actions.
const (
	InferenceLaunch = "launch"
	InferenceUpdate = "update"
	InferenceRetire = "retire"
)

// Inference decision triggers: what the model store showed.
const (
	TriggerRegistered = "registered"
	TriggerChanged    = "changed"
	TriggerRemoved    = "removed"
)

// ModelServer summarises the model a decision is about.
type ModelServer struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	// Server is triton or ovms; Format onnx, tensorrt_plan or
	// openvino_ir; Device cpu or a GPU model; Precision fp32, fp16, int8.
	Server    string `json:"server,omitempty"`
	Format    string `json:"format,omitempty"`
	Device    string `json:"device,omitempty"`
	Precision string `json:"precision,omitempty"`
}

// InferenceReason explains an inference decision.
type InferenceReason struct {
	Summary string `json:"summary"`
	// Trigger is what the model store showed: registered, changed, removed.
	Trigger string `json:"trigger"`
	// StorePath is the spec file in the model store.
	StorePath string `json:"store_path"`
	// FromVersion/FromDigest are what was serving (update, retire);
	// ToVersion/ToDigest what will serve (launch, update).
	FromVersion int64  `json:"from_version,omitempty"`
	ToVersion   int64  `json:"to_version,omitempty"`
	FromDigest  string `json:"from_digest,omitempty"`
	ToDigest    string `json:"to_digest,omitempty"`
}

// InferenceDecision launches, updates (a new version rolled out while the
// old one serves) or retires a model server. The target is the model's
// Deployment. Topic decisions, key = Target.Key().
type InferenceDecision struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Seq    int64  `json:"seq"`
	Target Target `json:"target"`
	// Action is launch, update or retire.
	Action string      `json:"action"`
	Model  ModelServer `json:"model"`
	// Spec is the serving spec document (YAML) for launch and update, so
	// the actuator needs no access to the model store; SpecDigest is its
	// sha256.
	Spec       string          `json:"spec,omitempty"`
	SpecDigest string          `json:"spec_digest,omitempty"`
	AtMs       int64           `json:"at_ms"`
	ExpiresMs  int64           `json:"expires_ms"`
	DryRun     bool            `json:"dry_run,omitempty"`
	Reason     InferenceReason `json:"reason"`
	DecidedBy  string          `json:"decided_by"`
}

// EventType implements Event.
func (d InferenceDecision) EventType() string { return "io.ebbflow.decision.inference.v1" }

// EventID implements Event.
func (d InferenceDecision) EventID() string { return d.ID }

// EventTime implements Event.
func (d InferenceDecision) EventTime() time.Time { return time.UnixMilli(d.AtMs).UTC() }

// EventKey implements Event.
func (d InferenceDecision) EventKey() string { return d.Target.Key() }
