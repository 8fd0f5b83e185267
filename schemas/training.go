package schemas

import "time"

// DecisionTraining is the kind of training-scheduler decisions.
const DecisionTraining = "training"

// Training decision actions.
const (
	// TrainingLaunch: a job was submitted (sized, placed, created suspended
	// for Kueue to admit).
	TrainingLaunch = "launch"
	// TrainingAdmit: the job's score was written as its Workload priority
	// so Kueue admits it in score order.
	TrainingAdmit = "admit"
	// TrainingPreempt: a running job is pre-empted for a higher score.
	TrainingPreempt = "preempt"
	// TrainingResize: the job's GPU or CPU request changed from what was
	// submitted (sizing from history, or a fallback GPU model).
	TrainingResize = "resize"
)

// TrainingJob is the job a training decision is about.
type TrainingJob struct {
	Name       string `json:"name"`
	Namespace  string `json:"namespace"`
	Department string `json:"department"`
	User       string `json:"user,omitempty"`
	Family     string `json:"family"`
	// Pool is "fixed" or the mixed pool's name.
	Pool string `json:"pool"`
	// Models are the GPU models in the order tried; Model the one chosen
	// ("" while none is).
	Models   []string `json:"models"`
	Model    string   `json:"model,omitempty"`
	Fallback bool     `json:"fallback,omitempty"`
	// RequestedGPUs is what the spec asked for, GPUs what was granted.
	RequestedGPUs int     `json:"requested_gpus"`
	GPUs          int     `json:"gpus"`
	CPURequest    float64 `json:"cpu_request"`
	CPULimit      float64 `json:"cpu_limit"`
	// ExpectedS is the expected duration in seconds.
	ExpectedS int64 `json:"expected_s"`
}

// TrainingScore is WPAI's score with every term: Total = Base +
// WaitCredit − UtilPenalty.
type TrainingScore struct {
	// Standing is within_quota or borrowing.
	Standing      string  `json:"standing"`
	Base          int64   `json:"base"`
	WaitCredit    int64   `json:"wait_credit"`
	UtilPenalty   int64   `json:"util_penalty"`
	Total         int64   `json:"total"`
	WaitedMinutes float64 `json:"waited_minutes"`
	// DeptUtil is the department's recent GPU utilisation, 0–1 (−1 unknown).
	DeptUtil float64 `json:"dept_util"`
}

// TrainingRun is one past run sizing read.
type TrainingRun struct {
	Run           string  `json:"run"`
	EndMs         int64   `json:"end_ms"`
	GPUs          int     `json:"gpus"`
	GPUUtilMean   float64 `json:"gpu_util_mean"`
	GPUMemPeakMiB float64 `json:"gpu_mem_peak_mib"`
	CPUMean       float64 `json:"cpu_mean"`
	CPUPeak       float64 `json:"cpu_peak"`
}

// TrainingSizing is how the job was sized, with every input.
type TrainingSizing struct {
	Model         string        `json:"model"`
	FromHistory   bool          `json:"from_history"`
	Runs          []TrainingRun `json:"runs,omitempty"`
	RequestedGPUs int           `json:"requested_gpus"`
	RequestedCPU  float64       `json:"requested_cpu"`
	BusyGPUs      float64       `json:"busy_gpus"`
	PeakMemMiB    float64       `json:"peak_mem_mib"`
	MemGPUs       float64       `json:"mem_gpus"`
	MemPerGPUMiB  int           `json:"mem_per_gpu_mib"`
	MemFraction   float64       `json:"mem_fraction"`
	GPUs          int           `json:"gpus"`
	CPUMean       float64       `json:"cpu_mean"`
	CPUPeak       float64       `json:"cpu_peak"`
	CPURequest    float64       `json:"cpu_request"`
	CPULimit      float64       `json:"cpu_limit"`
	Formula       string        `json:"formula"`
}

// TrainingReason explains a training decision.
type TrainingReason struct {
	Summary string `json:"summary"`
	// Guard names the guard that had the last word ("" when none did):
	// min_runtime, kill_budget, victim_within_quota, not_lower_score.
	Guard string `json:"guard,omitempty"`
	// PreemptedBy names the job a pre-emption makes room for.
	PreemptedBy string             `json:"preempted_by,omitempty"`
	Inputs      map[string]float64 `json:"inputs,omitempty"`
}

// TrainingDecision is a training-scheduler decision about one batch/v1
// Job managed by Kueue. Topic decisions, key = Target.Key().
type TrainingDecision struct {
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	Seq       int64           `json:"seq"`
	Target    Target          `json:"target"`
	Action    string          `json:"action"`
	AtMs      int64           `json:"at_ms"`
	ExpiresMs int64           `json:"expires_ms"`
	DryRun    bool            `json:"dry_run,omitempty"`
	Job       TrainingJob     `json:"job"`
	Score     TrainingScore   `json:"score"`
	Sizing    *TrainingSizing `json:"sizing,omitempty"`
	Reason    TrainingReason  `json:"reason"`
	DecidedBy string          `json:"decided_by"`
}

// EventType implements Event.
func (d TrainingDecision) EventType() string { return "io.ebbflow.decision.training.v1" }

// EventID implements Event.
func (d TrainingDecision) EventID() string { return d.ID }

// EventTime implements Event.
func (d TrainingDecision) EventTime() time.Time { return time.UnixMilli(d.AtMs).UTC() }

// EventKey implements Event.
func (d TrainingDecision) EventKey() string { return d.Target.Key() }
