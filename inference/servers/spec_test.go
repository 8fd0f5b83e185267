package servers

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/inference/autoscale"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// specFiles are the example specs in testdata, each a valid spec.
func specFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no specs in testdata: %v", err)
	}
	return files
}

func loadFile(t *testing.T, path string) (Spec, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

func TestExampleSpecsAreValid(t *testing.T) {
	cfg := DefaultConfig()
	for _, f := range specFiles(t) {
		s, _ := loadFile(t, f)
		if err := s.Validate(cfg); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseIsStrict(t *testing.T) {
	_, err := ParseBytes([]byte("name: x\nversion: 1\nmax_batch: 8\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "max_batch") {
		t.Fatalf("want an error naming line 3 and field max_batch, got %v", err)
	}
	_, err = ParseBytes([]byte("name: x\nscaling:\n  min_replica: 2\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "min_replica") {
		t.Fatalf("want an error naming line 3 and field min_replica, got %v", err)
	}
	if _, err := ParseBytes(nil); err == nil {
		t.Fatal("empty document accepted")
	}
}

func TestParseScalingDefaults(t *testing.T) {
	s, err := ParseBytes([]byte("name: x\ndevice: cpu\nscaling:\n  max_replicas: 9\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := autoscale.DefaultPolicy()
	if s.Scaling.MaxReplicas != 9 || s.Scaling.MinReplicas != d.MinReplicas || s.Scaling.StartupTime != d.StartupTime {
		t.Errorf("scaling = %+v: want max 9 and the other defaults", s.Scaling)
	}
	if _, ok := s.Scaling.Signals["cpu"]; !ok || len(s.Scaling.Signals) != 1 {
		t.Errorf("cpu device signals = %v, want cpu only", s.Scaling.Signals)
	}
	s, _ = ParseBytes([]byte("name: x\ndevice: a100\nscaling:\n  signals:\n    qps: {expect_rate: 0.5, capacity: 100}\n"))
	if _, ok := s.Scaling.Signals["qps"]; !ok || len(s.Scaling.Signals) != 1 {
		t.Errorf("explicit signals = %v, want qps only (not merged with the defaults)", s.Scaling.Signals)
	}
}

// TestValidationNamesTheField breaks one rule at a time in a valid spec
// and checks that the error names the field.
func TestValidationNamesTheField(t *testing.T) {
	cfg := DefaultConfig()
	base, _ := loadFile(t, filepath.Join("testdata", "resnet50-int8.yaml"))
	ovms, _ := loadFile(t, filepath.Join("testdata", "ocr-ovms.yaml"))
	cases := []struct {
		name  string
		from  Spec
		edit  func(s *Spec)
		field string
		msg   string
	}{
		{"int8 without calibration", base, func(s *Spec) { s.Precision.CalibrationTable = "" }, "precision.calibration_table", "calibration table"},
		{"qdq with calibration", base, func(s *Spec) { s.Precision.QDQ = true }, "precision.calibration_table", "Q/DQ"},
		{"batch above the max", base, func(s *Spec) { s.MaxBatchSize = 4096 }, "max_batch_size", "above the limit 256"},
		{"preferred batch above max", base, func(s *Spec) { s.Batching.PreferredBatchSizes = []int{8, 64} }, "batching.preferred_batch_sizes[1]", "above max_batch_size 32"},
		{"unknown device", base, func(s *Spec) { s.Device = "v100" }, "device", `unknown device "v100"`},
		{"ovms cannot load a plan", ovms, func(s *Spec) { s.Format = FormatTensorRTPlan }, "format", "ovms cannot load a tensorrt_plan"},
		{"plan needs a gpu", base, func(s *Spec) {
			s.Format, s.Device, s.Precision, s.Resources.GPUs = FormatTensorRTPlan, DeviceCPU, Precision{Mode: PrecisionFP32}, 0
		}, "device", "only on a GPU"},
		{"ovms on a gpu", ovms, func(s *Spec) { s.Device = "a100" }, "device", "ovms serves on the CPU"},
		{"ovms int8 needs a quantized model", ovms, func(s *Spec) { s.Precision = Precision{Mode: PrecisionINT8} }, "precision.qdq", "quantized model"},
		{"fp16 on cpu", ovms, func(s *Spec) { s.Precision.Mode = PrecisionFP16 }, "precision.mode", "fp16 needs a GPU"},
		{"unknown precision", base, func(s *Spec) { s.Precision.Mode = "int4" }, "precision.mode", "not fp32, fp16 or int8"},
		{"unknown server", base, func(s *Spec) { s.Server = "torchserve" }, "server", "not triton or ovms"},
		{"unknown format", base, func(s *Spec) { s.Format = "savedmodel" }, "format", "not onnx"},
		{"bad name", base, func(s *Spec) { s.Name = "ResNet_50" }, "name", "DNS-1035"},
		{"version", base, func(s *Spec) { s.Version = 0 }, "version", "positive"},
		{"data type", base, func(s *Spec) { s.Outputs[0].DataType = "float" }, "outputs[0].data_type", `"float" is not one of`},
		{"dims", base, func(s *Spec) { s.Inputs[0].Dims = []int64{3, 0, 224} }, "inputs[0].dims[1]", "positive or -1"},
		{"duplicate tensor", base, func(s *Spec) { s.Outputs[0].Name = "input" }, "outputs[0].name", "also inputs[0]"},
		{"instances", base, func(s *Spec) { s.Instances = 0 }, "instances", "at least 1"},
		{"quantity", base, func(s *Spec) { s.Resources.Memory = "lots" }, "resources.memory", "not a Kubernetes quantity"},
		{"gpus on cpu", ovms, func(s *Spec) { s.Resources.GPUs = 1 }, "resources.gpus", "on device cpu"},
		{"model uri", base, func(s *Spec) { s.ModelURI = "" }, "model_uri", "required"},
		{"policy field", base, func(s *Spec) { s.Scaling.MaxReplicas = 1 }, "autoscale.max_replicas", "≥ min_replicas"},
		{"policy not carried", base, func(s *Spec) { s.Scaling.Tolerance = 0.2 }, "autoscale.tolerance", "annotations"},
		{"batching without batch", base, func(s *Spec) { s.MaxBatchSize, s.Batching.PreferredBatchSizes = 0, nil }, "batching", "max_batch_size > 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := clone(c.from)
			c.edit(&s)
			err := s.Validate(cfg)
			if err == nil {
				t.Fatal("accepted")
			}
			var found bool
			for _, e := range unwrap(err) {
				var fe *FieldError
				if errors.As(e, &fe) && fe.Field == c.field && strings.Contains(fe.Msg, c.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error on field %s containing %q; got:\n%v", c.field, c.msg, err)
			}
		})
	}
}

func unwrap(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func clone(s Spec) Spec {
	c := s
	c.Inputs = append([]Tensor(nil), s.Inputs...)
	c.Outputs = append([]Tensor(nil), s.Outputs...)
	for i := range c.Inputs {
		c.Inputs[i].Dims = append([]int64(nil), s.Inputs[i].Dims...)
	}
	c.Batching.PreferredBatchSizes = append([]int(nil), s.Batching.PreferredBatchSizes...)
	c.Scaling = s.Scaling.Clone()
	return c
}

// TestPolicyAnnotationsRoundTrip: what the renderer writes onto the
// Deployment, the autoscaler reads back as the spec's policy.
func TestPolicyAnnotationsRoundTrip(t *testing.T) {
	for _, f := range specFiles(t) {
		s, _ := loadFile(t, f)
		// Start the reader from a different base, so nothing passes by
		// coincidence of defaults.
		base := autoscale.DefaultPolicy()
		base.MinReplicas, base.MaxReplicas, base.StartupTime, base.Signals = 7, 70, 1, map[string]autoscale.SignalPolicy{"memory": {ExpectRate: 0.1, Capacity: 1}}
		got, err := autoscale.PolicyFromAnnotations(base, PolicyAnnotations(s.Scaling))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		delete(got.Signals, "memory")
		if !reflect.DeepEqual(got, s.Scaling) {
			t.Errorf("%s: read back %+v\nwant %+v", f, got, s.Scaling)
		}
	}
}
