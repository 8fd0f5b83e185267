//go:build integration

package servers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTritonParsesEveryConfig parses every rendered config.pbtxt with
// Triton's own ModelConfig protobuf (PyPI tritonclient's model_config_pb2,
// in the test venv from deploy/dev/requirements.txt) and checks what it
// read back against the spec. A hand-broken config must fail, so the
// parser is shown to be strict.
func TestTritonParsesEveryConfig(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		py = os.Getenv("EBBFLOW_PYTHON")
	}
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: point it at the venv python with tritonclient[grpc] (deploy/dev/requirements.txt; make test sets it)")
	}
	dir := t.TempDir()
	type want struct {
		spec Spec
		file string
	}
	var files []string
	wants := map[string]want{}
	modes := map[string]bool{}
	kinds := map[string]bool{}
	for _, f := range specFiles(t) {
		s, doc := loadFile(t, f)
		if s.Server != ServerTriton {
			continue
		}
		o, err := Render(s, Digest(doc), DefaultConfig(), 1)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, s.Name+".pbtxt")
		if err := os.WriteFile(p, []byte(o.ModelConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		wants[p] = want{spec: s, file: f}
		modes[s.Precision.Mode] = true
		if s.Device == DeviceCPU {
			kinds["cpu"] = true
		} else {
			kinds["gpu"] = true
		}
	}
	for _, m := range []string{PrecisionFP32, PrecisionFP16, PrecisionINT8} {
		if !modes[m] {
			t.Fatalf("no Triton example spec at %s", m)
		}
	}
	broken := filepath.Join(dir, "broken.pbtxt")
	first := string(mustRead(t, files[0]))
	if err := os.WriteFile(broken, []byte(strings.Replace(first, "max_batch_size", "max_batch", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "parse_pbtxt.py"))
	cmd.Args = append(cmd.Args, append(files, broken)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", py, err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	seen := 0
	for sc.Scan() {
		var r struct {
			File          string   `json:"file"`
			OK            bool     `json:"ok"`
			Error         string   `json:"error"`
			Name          string   `json:"name"`
			Platform      string   `json:"platform"`
			Backend       string   `json:"backend"`
			MaxBatchSize  int      `json:"max_batch_size"`
			Kinds         []string `json:"kinds"`
			Inputs        []string `json:"inputs"`
			Preferred     []int    `json:"preferred"`
			PrecisionMode *string  `json:"precision_mode"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		seen++
		if r.File == broken {
			if r.OK || !strings.Contains(r.Error, "max_batch") {
				t.Errorf("the broken config was accepted or the error does not name the field: %+v", r)
			}
			continue
		}
		w := wants[r.File]
		if !r.OK {
			t.Errorf("%s: Triton's ModelConfig rejects the rendered config.pbtxt: %s", w.file, r.Error)
			continue
		}
		s := w.spec
		wantKind := "KIND_GPU"
		if s.Device == DeviceCPU {
			wantKind = "KIND_CPU"
		}
		if r.Name != s.Name || r.MaxBatchSize != s.MaxBatchSize || len(r.Kinds) != 1 || r.Kinds[0] != wantKind {
			t.Errorf("%s: parsed %+v, want name %s, max_batch_size %d, %s", w.file, r, s.Name, s.MaxBatchSize, wantKind)
		}
		if len(r.Inputs) != len(s.Inputs) || r.Inputs[0] != dataTypes[s.Inputs[0].DataType] {
			t.Errorf("%s: inputs %v", w.file, r.Inputs)
		}
		if len(r.Preferred) != len(s.Batching.PreferredBatchSizes) {
			t.Errorf("%s: preferred batch sizes %v, want %v", w.file, r.Preferred, s.Batching.PreferredBatchSizes)
		}
		onnxGPU := s.Format == FormatONNX && s.Device != DeviceCPU
		switch {
		case onnxGPU && (r.PrecisionMode == nil || *r.PrecisionMode != strings.ToUpper(s.Precision.Mode)):
			t.Errorf("%s: TensorRT precision_mode %v, want %s", w.file, r.PrecisionMode, strings.ToUpper(s.Precision.Mode))
		case !onnxGPU && r.PrecisionMode != nil:
			t.Errorf("%s: a TensorRT accelerator on a non-ONNX or CPU model", w.file)
		}
	}
	if seen != len(files)+1 {
		t.Fatalf("python reported %d configs, want %d:\n%s", seen, len(files)+1, out)
	}
	if !kinds["cpu"] || !kinds["gpu"] {
		t.Fatalf("examples cover %v, want CPU and GPU", kinds)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
