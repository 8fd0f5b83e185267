package schemas

import (
	"encoding/json"
	"errors"
	"testing"
)

func sampleTrainingDecision() TrainingDecision {
	return TrainingDecision{ID: "t1", Kind: DecisionTraining, Seq: 1, Action: TrainingAdmit, AtMs: 10, ExpiresMs: 70, DecidedBy: "/ebbflow/training",
		Target: Target{Cluster: "c1", Namespace: "research", Kind: "Job", Name: "bert-20261129120000"},
		Job: TrainingJob{Name: "bert-20261129120000", Namespace: "research", Department: "research", User: "alice", Family: "bert", Pool: "offline",
			Models: []string{"a100", "v100"}, Model: "v100", Fallback: true, RequestedGPUs: 8, GPUs: 5, CPURequest: 11.25, CPULimit: 13.5, ExpectedS: 21600},
		Score: TrainingScore{Standing: "within_quota", Base: 1_000_000, WaitCredit: 300, UtilPenalty: 0, Total: 1_000_300, WaitedMinutes: 30, DeptUtil: 0.7},
		Sizing: &TrainingSizing{Model: "v100", FromHistory: true, RequestedGPUs: 8, RequestedCPU: 16, BusyGPUs: 3.2, PeakMemMiB: 131072, MemGPUs: 4.44,
			MemPerGPUMiB: 32768, MemFraction: 0.9, GPUs: 5, CPUMean: 7.5, CPUPeak: 9, CPURequest: 11.25, CPULimit: 13.5, Formula: "GPUs = ceil(max(3.20, 4.44)) = 5",
			Runs: []TrainingRun{{Run: "bert-20261128120000", EndMs: 5, GPUs: 8, GPUUtilMean: 0.4, GPUMemPeakMiB: 131072, CPUMean: 7.5, CPUPeak: 9}}},
		Reason: TrainingReason{Summary: "within quota on v100 (fallback: a100 full)", Inputs: map[string]float64{"free_a100": 2}},
	}
}

func TestTrainingDecisionNamesTheBadField(t *testing.T) {
	good, err := Marshal(sampleTrainingDecision())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"target is a Job", func(m map[string]any) { m["target"].(map[string]any)["kind"] = "Deployment" }, "/target/kind"},
		{"unknown action", func(m map[string]any) { m["action"] = "evict" }, "/action"},
		{"unknown standing", func(m map[string]any) { m["score"].(map[string]any)["standing"] = "vip" }, "/score/standing"},
		{"negative wait credit", func(m map[string]any) { m["score"].(map[string]any)["wait_credit"] = -1 }, "/score/wait_credit"},
		{"util over 1 in a run", func(m map[string]any) {
			m["sizing"].(map[string]any)["runs"].([]any)[0].(map[string]any)["gpu_util_mean"] = 40
		}, "/sizing/runs/0/gpu_util_mean"},
		{"unknown guard", func(m map[string]any) { m["reason"].(map[string]any)["guard"] = "mood" }, "/reason/guard"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			c.edit(m)
			bad, _ := json.Marshal(m)
			_, err := Decode[TrainingDecision](bad)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field {
				t.Fatalf("want field %s, got %v", c.field, err)
			}
		})
	}
}

func TestTrainingIsADecisionKind(t *testing.T) {
	found := false
	for _, k := range DecisionKinds {
		found = found || k == DecisionTraining
	}
	if !found {
		t.Fatalf("DecisionKinds %v lacks %s", DecisionKinds, DecisionTraining)
	}
	if f, ok := SchemaFileFor(TrainingDecision{}.EventType()); !ok || f != "decision.training.schema.json" {
		t.Fatalf("schema file %q %v", f, ok)
	}
}
