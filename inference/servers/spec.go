package servers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/schemas"
)

// Formats a model file may have.
const (
	FormatONNX         = "onnx"
	FormatTensorRTPlan = "tensorrt_plan"
	FormatOpenVINOIR   = "openvino_ir"
)

// Servers that can serve a model.
const (
	ServerTriton = "triton"
	ServerOVMS   = "ovms"
)

// Precisions a model is served at.
const (
	PrecisionFP32 = "fp32"
	PrecisionFP16 = "fp16"
	PrecisionINT8 = "int8"
)

// DeviceCPU is the device of a CPU-only server; any other device names a
// GPU model from the configuration (servers.gpu_models).
const DeviceCPU = "cpu"

// Spec is a model serving spec: one model version served by one server on
// one kind of device. It is loaded from YAML strictly (Parse).
type Spec struct {
	// Name is the model's name: the Deployment, Service and Triton model
	// directory are named after it (a DNS-1035 label).
	Name string `yaml:"name"`
	// Version is the model version, a positive integer that grows with
	// every change (Triton and OVMS version directories are numbers).
	Version int64 `yaml:"version"`
	// Namespace overrides servers.namespace.
	Namespace string `yaml:"namespace,omitempty"`
	// Format is onnx, tensorrt_plan or openvino_ir.
	Format string `yaml:"format"`
	// ModelURI is the directory in the model store holding the model files
	// (model.onnx, model.plan, or model.xml + model.bin; and the INT8
	// calibration table), copied into the pod at start.
	ModelURI string `yaml:"model_uri"`
	// Server is triton or ovms.
	Server string `yaml:"server"`
	// Device is "cpu" or a GPU model from servers.gpu_models.
	Device string `yaml:"device"`
	// Precision is what the server computes in.
	Precision Precision `yaml:"precision"`
	// MaxBatchSize is the largest batch the server forms (0 = no batching:
	// dims then include the batch dimension).
	MaxBatchSize int `yaml:"max_batch_size"`
	// Batching is Triton's dynamic batcher (ignored by OVMS, which batches
	// by nireq and its performance hint).
	Batching Batching `yaml:"batching,omitempty"`
	Inputs   []Tensor `yaml:"inputs"`
	Outputs  []Tensor `yaml:"outputs"`
	// Instances is the model instances per replica (Triton instance_group
	// count; OVMS nireq).
	Instances int `yaml:"instances"`
	// Resources are each replica's requests and limits.
	Resources Resources `yaml:"resources,omitempty"`
	// Scaling is the elastic scaler's policy for this server, written onto
	// the Deployment as ebbflow.io/ annotations the autoscaler reads.
	Scaling autoscale.Policy `yaml:"scaling"`
}

// Precision says what the server computes in. INT8 needs either a
// calibration table or a model that carries its own quantization (Q/DQ
// nodes).
type Precision struct {
	Mode string `yaml:"mode"`
	// CalibrationTable is the file name, inside model_uri, of the INT8
	// calibration table (TensorRT needs it unless the model has Q/DQ nodes).
	CalibrationTable string `yaml:"calibration_table,omitempty"`
	// QDQ says the model already contains quantize/dequantize nodes.
	QDQ bool `yaml:"qdq,omitempty"`
}

// Batching configures Triton's dynamic batcher.
type Batching struct {
	PreferredBatchSizes []int `yaml:"preferred_batch_sizes,omitempty"`
	MaxQueueDelayUs     int64 `yaml:"max_queue_delay_us,omitempty"`
}

// Tensor is one model input or output.
type Tensor struct {
	Name string `yaml:"name"`
	// DataType is fp32, fp16, bf16, int8, uint8, int16, int32, int64,
	// bool or string.
	DataType string `yaml:"data_type"`
	// Dims leave out the batch dimension when max_batch_size > 0; -1 is a
	// variable dimension.
	Dims []int64 `yaml:"dims"`
}

// Resources of one replica. CPU and Memory are Kubernetes quantities
// (requests = limits, so the pod is Guaranteed); GPUs is the number of
// GPUs of the device's model (default 1 on GPU devices).
type Resources struct {
	CPU    string `yaml:"cpu,omitempty"`
	Memory string `yaml:"memory,omitempty"`
	GPUs   int    `yaml:"gpus,omitempty"`
}

// dataTypes maps spec data types to Triton's.
var dataTypes = map[string]string{
	"bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int16": "TYPE_INT16",
	"int32": "TYPE_INT32", "int64": "TYPE_INT64", "fp16": "TYPE_FP16", "bf16": "TYPE_BF16",
	"fp32": "TYPE_FP32", "fp64": "TYPE_FP64", "string": "TYPE_STRING",
}

// FieldError is a spec that breaks a rule, naming the field
// ("precision.calibration_table", "inputs[1].dims").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Parse decodes a spec strictly: an unknown field is an error naming its
// line and field; a missing scaling section gets the default policy, and a
// scaling section without signals gets the device's default signal. The
// result is not validated (see Validate).
func Parse(r io.Reader) (Spec, error) {
	var s Spec
	s.Scaling = autoscale.DefaultPolicy()
	s.Scaling.Signals = nil
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return s, errors.New("spec: empty document")
		}
		return s, fmt.Errorf("spec: %w", err)
	}
	if len(s.Scaling.Signals) == 0 {
		s.Scaling.Signals = defaultSignals(s.Device)
	}
	return s, nil
}

// ParseBytes is Parse over a byte slice.
func ParseBytes(b []byte) (Spec, error) { return Parse(bytes.NewReader(b)) }

func defaultSignals(device string) map[string]autoscale.SignalPolicy {
	if device == DeviceCPU {
		return map[string]autoscale.SignalPolicy{schemas.SignalCPU: {ExpectRate: 0.7, Capacity: 1}}
	}
	return map[string]autoscale.SignalPolicy{schemas.SignalGPUUtil: {ExpectRate: 0.7, Capacity: 100}}
}

// Digest is the sha256 of a spec document: decisions carry it and the
// actuator records it, so an unchanged spec is never applied twice.
func Digest(doc []byte) string {
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}

var dns1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// Validate checks a spec against the configuration and returns every
// broken rule as a *FieldError (joined with errors.Join), or nil.
func (s Spec) Validate(cfg Config) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	// Names end up in object names "<name>-v<version>" (≤ 63 characters).
	if !dns1035.MatchString(s.Name) || len(s.Name) > 40 {
		bad("name", "%q must be a lower-case DNS-1035 label of at most 40 characters", s.Name)
	}
	if s.Version < 1 {
		bad("version", "%d must be a positive integer", s.Version)
	}
	if s.Namespace != "" && !dns1035.MatchString(s.Namespace) {
		bad("namespace", "%q is not a valid namespace name", s.Namespace)
	}
	if s.ModelURI == "" {
		bad("model_uri", "required: the model store directory holding the model files")
	}
	gpu := s.Device != DeviceCPU
	if s.Device == "" {
		bad("device", `required: "cpu" or a GPU model (%s)`, strings.Join(sortedKeys(cfg.GPUModels), ", "))
	} else if _, ok := cfg.GPUModels[s.Device]; gpu && !ok {
		bad("device", `unknown device %q: not "cpu" and not a GPU model in servers.gpu_models (%s)`, s.Device, strings.Join(sortedKeys(cfg.GPUModels), ", "))
	}
	switch s.Format {
	case FormatONNX, FormatTensorRTPlan, FormatOpenVINOIR:
	default:
		bad("format", "%q is not onnx, tensorrt_plan or openvino_ir", s.Format)
	}
	switch s.Server {
	case ServerTriton:
		if s.Format == FormatTensorRTPlan && !gpu {
			bad("device", "triton serves a tensorrt_plan only on a GPU, not on %q", s.Device)
		}
		if s.Format == FormatOpenVINOIR && gpu {
			bad("device", "triton's openvino backend runs on the CPU; device must be cpu for openvino_ir, not %q", s.Device)
		}
	case ServerOVMS:
		if s.Format == FormatTensorRTPlan {
			bad("format", "ovms cannot load a tensorrt_plan (it loads onnx and openvino_ir)")
		}
		if gpu && s.Device != "" {
			bad("device", "ovms serves on the CPU here (NVIDIA GPUs are Triton's); device must be cpu, not %q", s.Device)
		}
	default:
		bad("server", "%q is not triton or ovms", s.Server)
	}
	s.validatePrecision(gpu, bad)
	if s.MaxBatchSize < 0 {
		bad("max_batch_size", "%d must not be negative", s.MaxBatchSize)
	} else if s.MaxBatchSize > cfg.MaxBatchSize {
		bad("max_batch_size", "%d is above the limit %d (servers.max_batch_size)", s.MaxBatchSize, cfg.MaxBatchSize)
	}
	for i, b := range s.Batching.PreferredBatchSizes {
		switch {
		case b < 1:
			bad(fmt.Sprintf("batching.preferred_batch_sizes[%d]", i), "%d must be at least 1", b)
		case b > s.MaxBatchSize:
			bad(fmt.Sprintf("batching.preferred_batch_sizes[%d]", i), "%d is above max_batch_size %d", b, s.MaxBatchSize)
		}
	}
	if s.Batching.MaxQueueDelayUs < 0 {
		bad("batching.max_queue_delay_us", "%d must not be negative", s.Batching.MaxQueueDelayUs)
	}
	if s.MaxBatchSize == 0 && (len(s.Batching.PreferredBatchSizes) > 0 || s.Batching.MaxQueueDelayUs > 0) {
		bad("batching", "dynamic batching needs max_batch_size > 0")
	}
	if len(s.Inputs) == 0 {
		bad("inputs", "at least one input is required")
	}
	if len(s.Outputs) == 0 {
		bad("outputs", "at least one output is required")
	}
	seen := map[string]string{}
	// Inputs first, then outputs: the error names the later of two tensors
	// sharing a name, the same one every time.
	for _, group := range []struct {
		kind string
		ts   []Tensor
	}{{"inputs", s.Inputs}, {"outputs", s.Outputs}} {
		kind, ts := group.kind, group.ts
		for i, t := range ts {
			at := fmt.Sprintf("%s[%d]", kind, i)
			if t.Name == "" {
				bad(at+".name", "required")
			} else if prev, dup := seen[t.Name]; dup {
				bad(at+".name", "%q is also %s", t.Name, prev)
			} else {
				seen[t.Name] = at
			}
			if _, ok := dataTypes[t.DataType]; !ok {
				bad(at+".data_type", "%q is not one of %s", t.DataType, strings.Join(sortedKeys(dataTypes), ", "))
			}
			if len(t.Dims) == 0 {
				bad(at+".dims", "at least one dimension is required")
			}
			for j, d := range t.Dims {
				if d == 0 || d < -1 {
					bad(fmt.Sprintf("%s.dims[%d]", at, j), "%d must be positive or -1 (variable)", d)
				}
			}
		}
	}
	if s.Instances < 1 {
		bad("instances", "%d must be at least 1 per replica", s.Instances)
	}
	for field, q := range map[string]string{"resources.cpu": s.Resources.CPU, "resources.memory": s.Resources.Memory} {
		if q == "" {
			continue
		}
		if v, err := resource.ParseQuantity(q); err != nil {
			bad(field, "%q is not a Kubernetes quantity: %v", q, err)
		} else if v.Sign() <= 0 {
			bad(field, "%q must be positive", q)
		}
	}
	if s.Resources.GPUs < 0 {
		bad("resources.gpus", "%d must not be negative", s.Resources.GPUs)
	} else if !gpu && s.Resources.GPUs > 0 {
		bad("resources.gpus", "%d GPUs asked for on device cpu", s.Resources.GPUs)
	}
	if err := s.Scaling.Validate(); err != nil {
		bad("autoscale."+fieldOf(err), "%s", msgOf(err))
	}
	s.validateScalingCarried(bad)
	// Sorted for stable output: map iteration above is random.
	sortFieldErrors(errs)
	return errors.Join(errs...)
}

func (s Spec) validatePrecision(gpu bool, bad func(string, string, ...any)) {
	p := s.Precision
	switch p.Mode {
	case PrecisionFP32, PrecisionFP16, PrecisionINT8:
	default:
		bad("precision.mode", "%q is not fp32, fp16 or int8", p.Mode)
		return
	}
	if p.Mode != PrecisionINT8 && (p.CalibrationTable != "" || p.QDQ) {
		bad("precision", "calibration_table and qdq apply to int8 only, not %s", p.Mode)
	}
	if p.Mode == PrecisionINT8 {
		switch {
		case p.QDQ && p.CalibrationTable != "":
			bad("precision.calibration_table", "a model with Q/DQ nodes must not have a calibration table (TensorRT refuses the session)")
		case s.Server == ServerOVMS && !p.QDQ:
			bad("precision.qdq", "ovms serves int8 only from a quantized model (Q/DQ nodes or an NNCF-quantized IR): set qdq: true")
		case s.Server == ServerTriton && s.Format == FormatONNX && gpu && !p.QDQ && p.CalibrationTable == "":
			bad("precision.calibration_table", "int8 through TensorRT needs a calibration table, or qdq: true for a model with Q/DQ nodes")
		case s.Server == ServerTriton && s.Format == FormatONNX && !gpu && !p.QDQ:
			bad("precision.qdq", "int8 on the CPU (onnxruntime) needs a quantized model: set qdq: true")
		}
	}
	if p.Mode == PrecisionFP16 && !gpu {
		bad("precision.mode", "fp16 needs a GPU device; %s on the CPU serves fp32 or a quantized int8 model", s.Server)
	}
}

// carriedDefaults are the policy fields the autoscaler cannot read from
// an object's annotations: a spec may not change them (they come from
// the autoscaler's own configuration).
func (s Spec) validateScalingCarried(bad func(string, string, ...any)) {
	d := autoscale.DefaultPolicy()
	p := s.Scaling
	why := "the autoscaler reads a server's policy from ebbflow.io/ annotations, which do not carry this field; set it in the autoscaler's configuration"
	if p.Tolerance != d.Tolerance {
		bad("autoscale.tolerance", "%s", why)
	}
	if p.ScaleUpCooldown != d.ScaleUpCooldown {
		bad("autoscale.scale_up_cooldown", "%s", why)
	}
	if p.ScaleDownCooldown != d.ScaleDownCooldown {
		bad("autoscale.scale_down_cooldown", "%s", why)
	}
	if p.BreachScaleRatio != d.BreachScaleRatio {
		bad("autoscale.breach_scale_ratio", "%s", why)
	}
	if p.ExpandOnErrors != d.ExpandOnErrors {
		bad("autoscale.expand_on_errors", "%s", why)
	}
}

// fieldOf and msgOf split the policy's "field: message" errors.
func fieldOf(err error) string {
	f, _, _ := strings.Cut(err.Error(), ":")
	return f
}

func msgOf(err error) string {
	_, m, ok := strings.Cut(err.Error(), ":")
	if !ok {
		return err.Error()
	}
	return strings.TrimSpace(m)
}

func sortFieldErrors(errs []error) {
	key := func(e error) string {
		var fe *FieldError
		if errors.As(e, &fe) {
			return fe.Field
		}
		return ""
	}
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && key(errs[j]) < key(errs[j-1]); j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

// NamespaceOr returns the namespace the spec is served in: its own, or
// the configured serving namespace.
func (s Spec) NamespaceOr(cfg Config) string {
	if s.Namespace != "" {
		return s.Namespace
	}
	return cfg.Namespace
}
