package servers

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// GPUModel is one GPU model pods may ask for by name in a spec's device.
type GPUModel struct {
	// NodeLabel selects nodes with this GPU model (key: value), e.g.
	// nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB.
	NodeLabel map[string]string `yaml:"node_label"`
	// Resource is the extended resource a GPU is requested as.
	Resource string `yaml:"resource"`
}

// Config is the `servers` section of the configuration file: what the
// renderer, the model-store decider and the inference actuator handler
// share.
type Config struct {
	// Namespace is the serving namespace model servers run in (the
	// handler's RBAC Role is bound there only).
	Namespace string `yaml:"namespace"`
	// TritonImage and OVMSImage are the server images.
	TritonImage string `yaml:"triton_image"`
	OVMSImage   string `yaml:"ovms_image"`
	// FetchImage runs `ebbflow inference fetch` as an init container that
	// copies the model files from the model store into the pod's model
	// repository (an emptyDir).
	FetchImage string `yaml:"fetch_image"`
	// GPUModels names the GPU models a spec's device may be; "cpu" is
	// always allowed.
	GPUModels map[string]GPUModel `yaml:"gpu_models"`
	// MaxBatchSize is the largest max_batch_size a spec may ask for.
	MaxBatchSize int `yaml:"max_batch_size"`
	// PoolLabel and Pool pin servers to the online (inference) node pool,
	// as node mixing labels it; pods tolerate the pool's NoSchedule taint.
	PoolLabel string `yaml:"pool_label"`
	Pool      string `yaml:"pool"`
	// TensorRTWorkspaceBytes is max_workspace_size_bytes of the TensorRT
	// accelerator for ONNX models on GPUs.
	TensorRTWorkspaceBytes int64 `yaml:"tensorrt_workspace_bytes"`
	// StoreDir is the model store: a directory of spec files (*.yaml) on
	// the history backend (local or HDFS), watched by `ebbflow inference run`.
	StoreDir string `yaml:"store_dir"`
	// PollInterval is how often the store is listed.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Source is the CloudEvents source and decided_by of decisions.
	Source string `yaml:"source"`
	// DecisionTTL sets expires_ms = at_ms + DecisionTTL.
	DecisionTTL time.Duration `yaml:"decision_ttl"`
	// DryRun marks every decision dry_run (actuators report, do not act).
	DryRun bool `yaml:"dry_run"`
	// Impersonate is the identity the actuator's inference handler acts
	// as (deploy/rbac/inference.yaml); "" acts as the actuator itself.
	Impersonate string `yaml:"impersonate"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Namespace:   "ebbflow-serving",
		TritonImage: "nvcr.io/nvidia/tritonserver:25.10-py3",
		OVMSImage:   "openvino/model_server:2025.3",
		FetchImage:  "ghcr.io/ebbflow/ebbflow:latest",
		GPUModels: map[string]GPUModel{
			"t4":   {NodeLabel: map[string]string{"nvidia.com/gpu.product": "Tesla-T4"}, Resource: "nvidia.com/gpu"},
			"a10":  {NodeLabel: map[string]string{"nvidia.com/gpu.product": "NVIDIA-A10"}, Resource: "nvidia.com/gpu"},
			"a100": {NodeLabel: map[string]string{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, Resource: "nvidia.com/gpu"},
			"h100": {NodeLabel: map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, Resource: "nvidia.com/gpu"},
		},
		MaxBatchSize:           256,
		PoolLabel:              "ebbflow.io/pool",
		Pool:                   "online",
		TensorRTWorkspaceBytes: 1 << 30,
		StoreDir:               "models",
		PollInterval:           10 * time.Second,
		Source:                 "/ebbflow/servers",
		DecisionTTL:            10 * time.Minute,
		Impersonate:            "system:serviceaccount:ebbflow:ebbflow-inference",
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Namespace == "":
		return errors.New("namespace: must not be empty")
	case c.TritonImage == "" || c.OVMSImage == "" || c.FetchImage == "":
		return errors.New("triton_image, ovms_image and fetch_image: must not be empty")
	case c.MaxBatchSize < 1:
		return fmt.Errorf("max_batch_size: %d must be at least 1", c.MaxBatchSize)
	case c.PoolLabel == "" || c.Pool == "":
		return errors.New("pool_label and pool: must not be empty")
	case c.TensorRTWorkspaceBytes <= 0:
		return errors.New("tensorrt_workspace_bytes: must be positive")
	case c.StoreDir == "":
		return errors.New("store_dir: must not be empty")
	case c.PollInterval <= 0:
		return errors.New("poll_interval: must be positive")
	case c.Source == "":
		return errors.New("source: must not be empty")
	case c.DecisionTTL <= 0:
		return errors.New("decision_ttl: must be positive")
	}
	for _, name := range sortedKeys(c.GPUModels) {
		if name == DeviceCPU {
			return fmt.Errorf("gpu_models.%s: %q is reserved for CPU serving", name, name)
		}
		if c.GPUModels[name].Resource == "" {
			return fmt.Errorf("gpu_models.%s.resource: must not be empty", name)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
