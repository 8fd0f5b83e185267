package servers

import (
	"fmt"
	"strconv"
	"strings"
)

// Triton model repository file names: <repo>/<model>/config.pbtxt and
// <repo>/<model>/<version>/<file>.
const (
	TritonConfigFile = "config.pbtxt"
	// RepositoryPath is where the pod's model repository is mounted.
	RepositoryPath = "/models"
)

// ModelFile is the file name a server loads from <model>/<version>/ for a
// format (for openvino_ir, model.bin sits beside model.xml).
func ModelFile(format string) string {
	switch format {
	case FormatTensorRTPlan:
		return "model.plan"
	case FormatOpenVINOIR:
		return "model.xml"
	default:
		return "model.onnx"
	}
}

// RepositoryLayout lists the files of the model repository the pod sees,
// relative to RepositoryPath, for Triton (<model>/config.pbtxt and
// <model>/<version>/model.*) or OVMS (<model>/<version>/model.*; its
// config.json lives outside the repository).
func (s Spec) RepositoryLayout() []string {
	v := strconv.FormatInt(s.Version, 10)
	var out []string
	if s.Server == ServerTriton {
		out = append(out, s.Name+"/"+TritonConfigFile)
	}
	out = append(out, s.Name+"/"+v+"/"+ModelFile(s.Format))
	if s.Format == FormatOpenVINOIR {
		out = append(out, s.Name+"/"+v+"/model.bin")
	}
	if s.Precision.CalibrationTable != "" {
		out = append(out, s.Name+"/"+v+"/"+s.Precision.CalibrationTable)
	}
	return out
}

// TritonConfig renders the model's config.pbtxt (protobuf text format of
// Triton's ModelConfig). The spec must be valid.
func TritonConfig(s Spec, cfg Config) string {
	gpu := s.Device != DeviceCPU
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("name: %q\n", s.Name)
	switch s.Format {
	case FormatTensorRTPlan:
		w("platform: %q\n", "tensorrt_plan")
	case FormatOpenVINOIR:
		w("backend: %q\n", "openvino")
	default:
		w("backend: %q\n", "onnxruntime")
	}
	w("default_model_filename: %q\n", ModelFile(s.Format))
	w("max_batch_size: %d\n", s.MaxBatchSize)
	w("version_policy: { specific: { versions: [ %d ] } }\n", s.Version)
	writeTensors(&b, "input", s.Inputs)
	writeTensors(&b, "output", s.Outputs)
	if s.MaxBatchSize > 0 {
		w("dynamic_batching {\n")
		if len(s.Batching.PreferredBatchSizes) > 0 {
			w("  preferred_batch_size: [ %s ]\n", joinInts(s.Batching.PreferredBatchSizes))
		}
		w("  max_queue_delay_microseconds: %d\n", s.Batching.MaxQueueDelayUs)
		w("}\n")
	}
	kind := "KIND_CPU"
	if gpu {
		kind = "KIND_GPU"
	}
	w("instance_group [\n  {\n    count: %d\n    kind: %s\n  }\n]\n", s.Instances, kind)
	if s.Format == FormatONNX && gpu {
		// ONNX on a GPU goes through ONNX Runtime's TensorRT execution
		// provider: this is where FP16 and INT8 come from.
		w("optimization {\n  execution_accelerators {\n    gpu_execution_accelerator: [\n      {\n        name: \"tensorrt\"\n")
		param := func(k, v string) { w("        parameters { key: %q value: %q }\n", k, v) }
		param("precision_mode", strings.ToUpper(s.Precision.Mode))
		param("max_workspace_size_bytes", strconv.FormatInt(cfg.TensorRTWorkspaceBytes, 10))
		param("trt_engine_cache_enable", "1")
		param("trt_engine_cache_path", fmt.Sprintf("%s/%s/%d", RepositoryPath, s.Name, s.Version))
		if s.Precision.Mode == PrecisionINT8 && s.Precision.CalibrationTable != "" {
			param("int8_calibration_table_name", s.Precision.CalibrationTable)
		}
		w("      }\n    ]\n  }\n}\n")
	}
	return b.String()
}

func writeTensors(b *strings.Builder, field string, ts []Tensor) {
	fmt.Fprintf(b, "%s [\n", field)
	for i, t := range ts {
		fmt.Fprintf(b, "  {\n    name: %q\n    data_type: %s\n    dims: [ %s ]\n  }", t.Name, dataTypes[t.DataType], joinInts(t.Dims))
		if i < len(ts)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]\n")
}

func joinInts[T int | int64](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatInt(int64(x), 10)
	}
	return strings.Join(parts, ", ")
}
