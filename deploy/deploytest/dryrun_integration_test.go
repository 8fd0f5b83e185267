//go:build integration

package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/internal/cluster"
)

// PrometheusOperator is the module whose zip carries the monitoring.coreos.com
// CRDs (example/prometheus-operator-crd) the prod overlay's ServiceMonitor and
// PrometheusRule need.
const PrometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Each overlay, as kustomize builds it, is accepted by the real
// kube-apiserver: a server-side apply with dryRun=All and strict field
// validation, object by object (admission, defaulting, schema validation
// of the CRDs included; nothing is stored). The namespaces the overlays
// create are created for real first (a dry-run namespace does not exist
// for the objects in it); other tests use them too, so they are kept.
func TestOverlaysServerSideDryRun(t *testing.T) {
	env := cluster.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	installMonitoringCRDs(ctx, t, env.Dynamic)
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	// Established CRDs reach discovery a moment later.
	for deadline := time.Now().Add(time.Minute); ; {
		rl, err := dc.ServerResourcesForGroupVersion("monitoring.coreos.com/v1")
		n := 0
		if err == nil {
			for _, r := range rl.APIResources {
				if r.Name == "servicemonitors" || r.Name == "prometheusrules" {
					n++
				}
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitoring.coreos.com/v1 servicemonitors and prometheusrules not in discovery after a minute: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := build(t, dir)
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					if _, err := env.Kube.CoreV1().Namespaces().Get(ctx, o.GetName(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
						if _, err := env.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
							t.Fatalf("create namespace %s: %v", o.GetName(), err)
						}
					}
				}
			}
			kinds := map[string]int{}
			for _, o := range objs {
				if err := dryRunApply(ctx, env.Dynamic, mapper, o); err != nil {
					t.Errorf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
				kinds[o.GetKind()]++
			}
			t.Logf("%s: %d objects accepted by the kube-apiserver (dry run): %v", dir, len(objs), kinds)
		})
	}

	// The dry run judges: objects the apiserver must refuse are refused.
	bad := map[string]string{
		"Deployment with negative replicas": `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"ebbflow-bad","namespace":"ebbflow"},
			"spec":{"replicas":-1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`,
		"Deployment with an unknown field": `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"ebbflow-bad","namespace":"ebbflow"},
			"spec":{"replicaz":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`,
		"ServiceMonitor whose endpoints is not a list": `{"apiVersion":"monitoring.coreos.com/v1","kind":"ServiceMonitor","metadata":{"name":"ebbflow-bad","namespace":"ebbflow"},
			"spec":{"selector":{},"endpoints":{"port":"metrics"}}}`,
		"PrometheusRule without expr": `{"apiVersion":"monitoring.coreos.com/v1","kind":"PrometheusRule","metadata":{"name":"ebbflow-bad","namespace":"ebbflow"},
			"spec":{"groups":[{"name":"g","rules":[{"alert":"A"}]}]}}`,
	}
	for what, doc := range bad {
		var o unstructured.Unstructured
		if err := json.Unmarshal([]byte(doc), &o.Object); err != nil {
			t.Fatal(err)
		}
		if err := dryRunApply(ctx, env.Dynamic, mapper, &o); err == nil {
			t.Errorf("%s: accepted by the dry run", what)
		} else {
			t.Logf("%s: refused as it must be: %v", what, err)
		}
	}
}

func dryRunApply(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("the apiserver does not serve %s: %w", gvk, err)
	}
	body, err := json.Marshal(o.Object)
	if err != nil {
		return err
	}
	var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		r = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	force := true
	_, err = r.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		FieldManager: "ebbflow-deploytest", DryRun: []string{metav1.DryRunAll}, Force: &force, FieldValidation: "Strict"})
	return err
}

// installMonitoringCRDs installs the ServiceMonitor and PrometheusRule CRDs
// from the prometheus-operator module (downloaded through the Go module
// proxy into the module cache, as deploy/dev/kueue.sh does for Kueue's) and
// waits until they are established.
func installMonitoringCRDs(ctx context.Context, t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", PrometheusOperator)
	cmd.Dir = t.TempDir() // outside ebbflow's module: its go.mod and go.sum stay as they are
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s%s", PrometheusOperator, err, out, stderr.String())
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", PrometheusOperator, out, err)
	}
	for _, res := range []string{"servicemonitors", "prometheusrules"} {
		f := filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+res+".yaml")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("CRD of %s: %v", res, err)
		}
		var crd unstructured.Unstructured
		if err := yaml.Unmarshal(b, &crd.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		body, err := json.Marshal(crd.Object)
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := dyn.Resource(crdGVR).Patch(ctx, crd.GetName(), types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "ebbflow-deploytest", Force: &force}); err != nil {
			t.Fatalf("install CRD %s: %v", crd.GetName(), err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			got, err := dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err == nil && established(got) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established within a minute: %v", crd.GetName(), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
