package servers

import (
	"encoding/json"
	"fmt"
)

// OVMSConfigFile is the OpenVINO Model Server configuration's file name,
// mounted at OVMSConfigPath.
const (
	OVMSConfigFile = "config.json"
	OVMSConfigDir  = "/config"
)

// ovmsConfig mirrors the part of OVMS's config.json ebbflow writes:
// model_config_list[].config.
type ovmsConfig struct {
	ModelConfigList []ovmsModel `json:"model_config_list"`
}

type ovmsModel struct {
	Config ovmsModelConfig `json:"config"`
}

type ovmsModelConfig struct {
	Name               string            `json:"name"`
	BasePath           string            `json:"base_path"`
	TargetDevice       string            `json:"target_device"`
	Nireq              int               `json:"nireq"`
	BatchSize          string            `json:"batch_size,omitempty"`
	ModelVersionPolicy map[string]any    `json:"model_version_policy"`
	PluginConfig       map[string]string `json:"plugin_config"`
}

// OVMSConfig renders the server's config.json: one model, served from
// <repository>/<model>/<version>/, with nireq = instances per replica and
// a performance hint (THROUGHPUT when requests are batched, LATENCY
// otherwise). fp32 is pinned with INFERENCE_PRECISION_HINT, because
// OpenVINO on CPUs with bf16 or AMX otherwise lowers the precision on its
// own. The spec must be valid.
func OVMSConfig(s Spec) []byte {
	hint := "LATENCY"
	if s.MaxBatchSize > 1 {
		hint = "THROUGHPUT"
	}
	mc := ovmsModelConfig{
		Name:               s.Name,
		BasePath:           RepositoryPath + "/" + s.Name,
		TargetDevice:       "CPU",
		Nireq:              s.Instances,
		ModelVersionPolicy: map[string]any{"specific": map[string]any{"versions": []int64{s.Version}}},
		PluginConfig:       map[string]string{"PERFORMANCE_HINT": hint},
	}
	switch {
	case s.MaxBatchSize == 1:
		mc.BatchSize = "1"
	case s.MaxBatchSize > 1:
		// A batch range keeps the batch dimension dynamic up to the max.
		mc.BatchSize = fmt.Sprintf("1:%d", s.MaxBatchSize)
	}
	if s.Precision.Mode == PrecisionFP32 {
		mc.PluginConfig["INFERENCE_PRECISION_HINT"] = "f32"
	}
	b, err := json.MarshalIndent(ovmsConfig{ModelConfigList: []ovmsModel{{Config: mc}}}, "", "  ")
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return append(b, '\n')
}
