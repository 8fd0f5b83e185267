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

// TestOpenVINOCompilesWithThePluginConfig compiles a tiny ONNX model
// (built in Python) with OpenVINO (PyPI openvino) on the CPU, with the
// target_device, batch range and plugin_config of every rendered OVMS
// config.json, and runs one inference — what OVMS does when it loads the
// model. A made-up plugin key must fail, so the check is not vacuous.
func TestOpenVINOCompilesWithThePluginConfig(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: point it at the venv python with openvino and onnx (deploy/dev/requirements.txt; make test sets it)")
	}
	dir := t.TempDir()
	var files []string
	hints := map[string]string{}
	for name, o := range renderAll(t) {
		if o.ModelConfigName != OVMSConfigFile {
			continue
		}
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(o.ModelConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		var c ovmsConfig
		if err := json.Unmarshal([]byte(o.ModelConfig), &c); err != nil {
			t.Fatal(err)
		}
		hints[p] = c.ModelConfigList[0].Config.PluginConfig["PERFORMANCE_HINT"]
	}
	bad := filepath.Join(dir, "bad.json")
	first, _ := os.ReadFile(files[0])
	if err := os.WriteFile(bad, []byte(strings.Replace(string(first), `"PERFORMANCE_HINT"`, `"PERFORMANCE_HINTS"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{filepath.Join("testdata", "compile_ovms.py")}, append(files, bad)...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", py, err, stderr.String())
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		n++
		var r struct {
			File  string      `json:"file"`
			OK    bool        `json:"ok"`
			Error string      `json:"error"`
			Hint  string      `json:"hint"`
			Out   [][]float64 `json:"out"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		if r.File == bad {
			if r.OK {
				t.Error("OpenVINO accepted a made-up plugin key")
			}
			continue
		}
		if !r.OK {
			t.Errorf("%s: OpenVINO refuses the rendered plugin_config: %s", filepath.Base(r.File), r.Error)
			continue
		}
		if r.Hint != hints[r.File] {
			t.Errorf("%s: compiled with hint %s, config says %s", filepath.Base(r.File), r.Hint, hints[r.File])
		}
		// relu([1,-2,3,-4]·W) = relu([4,-6]) = [4,0]; [0.5…]·W = [1,1].
		if len(r.Out) < 1 || r.Out[0][0] != 4 || r.Out[0][1] != 0 || (len(r.Out) > 1 && (r.Out[1][0] != 1 || r.Out[1][1] != 1)) {
			t.Errorf("%s: inference gave %v", filepath.Base(r.File), r.Out)
		}
	}
	if n != len(files)+1 {
		t.Fatalf("python reported %d configs, want %d:\n%s", n, len(files)+1, out)
	}
}
