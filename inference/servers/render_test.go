package servers

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// renderAll renders every example spec.
func renderAll(t *testing.T) map[string]Objects {
	t.Helper()
	out := map[string]Objects{}
	for _, f := range specFiles(t) {
		s, doc := loadFile(t, f)
		o, err := Render(s, Digest(doc), DefaultConfig(), s.Scaling.MinReplicas)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = o
	}
	return out
}

// TestRenderGolden compares what each example renders to (objects as
// applied, and the model configuration) with testdata/golden.
func TestRenderGolden(t *testing.T) {
	for name, o := range renderAll(t) {
		y, err := o.YAML()
		if err != nil {
			t.Fatal(err)
		}
		got := []byte("# " + o.ModelConfigName + "\n" + o.ModelConfig + "---\n" + string(y))
		path := filepath.Join("testdata", "golden", name+".out.yaml")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to write it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (go test -update rewrites it after review):\n%s", name, path, got)
		}
	}
}

// TestRenderedObjectsDecode: the apply documents are valid Kubernetes
// objects for client-go's own decoder, and carry what the rest of ebbflow
// relies on: ownership labels, readiness, scrape annotations, the pool.
func TestRenderedObjectsDecode(t *testing.T) {
	dec := scheme.Codecs.UniversalDeserializer()
	for name, o := range renderAll(t) {
		doc, err := ApplyDocument(o.Deployment)
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := obj.(*appsv1.Deployment)
		tpl := d.Spec.Template
		if d.Labels[LabelManagedBy] != ManagedByEbbflow || tpl.Labels[LabelModel] != d.Name {
			t.Errorf("%s: ownership labels missing: %v / %v", name, d.Labels, tpl.Labels)
		}
		c := tpl.Spec.Containers[0]
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" {
			t.Errorf("%s: readiness probe is not KServe v2 ready: %+v", name, c.ReadinessProbe)
		}
		port := tpl.Annotations["prometheus.io/port"]
		var found bool
		for _, p := range c.Ports {
			if p.ContainerPort == mustAtoi(t, port) {
				found = true
			}
		}
		if tpl.Annotations["prometheus.io/scrape"] != "true" || !found {
			t.Errorf("%s: scrape port %q is not a container port", name, port)
		}
		if o.Deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
			t.Errorf("%s: maxUnavailable must be 0 so the old version serves until the new is Ready", name)
		}
		expr := tpl.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
		if expr.Key != "ebbflow.io/pool" || expr.Values[0] != "online" {
			t.Errorf("%s: not pinned to the online pool: %+v", name, expr)
		}
		for _, v := range tpl.Spec.Volumes {
			if v.Name == "models" && v.EmptyDir == nil {
				t.Errorf("%s: models volume lost its emptyDir", name)
			}
		}
		svcDoc, _ := ApplyDocument(o.Service)
		sobj, _, err := dec.Decode(svcDoc, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := sobj.(*corev1.Service).Spec.Selector[LabelVersion]; ok {
			t.Errorf("%s: the Service must select every version", name)
		}
	}
}

func mustAtoi(t *testing.T, s string) int32 {
	var n int32
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestOVMSConfigMatchesSchema validates every rendered config.json against
// testdata/ovms-config.schema.json, written to match OVMS's own schema,
// and checks the schema is strict enough to catch a mistake.
func TestOVMSConfigMatchesSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	sch, err := c.Compile(filepath.Join("testdata", "ovms-config.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, o := range renderAll(t) {
		if o.ModelConfigName != OVMSConfigFile {
			continue
		}
		n++
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(o.ModelConfig))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s: config.json does not match the OVMS schema: %v", name, err)
		}
		for _, bad := range []string{
			strings.Replace(o.ModelConfig, `"nireq"`, `"num_requests"`, 1),
			strings.Replace(o.ModelConfig, `"base_path"`, `"path"`, 1),
			strings.Replace(o.ModelConfig, `"nireq": 4`, `"nireq": "4"`, 1),
		} {
			inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
			if sch.Validate(inst) == nil && bad != o.ModelConfig {
				t.Errorf("%s: the schema accepted a broken config:\n%s", name, bad)
			}
		}
	}
	if n < 2 {
		t.Fatalf("only %d OVMS specs in testdata", n)
	}
}
