package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// overlays are the kustomize overlays deploy/ ships.
var overlays = []string{"../kubernetes/overlays/dev", "../kubernetes/overlays/prod"}

// components are ebbflow's long-running components: each must be a
// Deployment ebbflow-<name> with a Service of the same name in every overlay.
var components = []string{"ingest", "window", "forecast", "autoscale", "actuate", "mixing", "servers", "training", "ui"}

// build runs kustomize (the library kubectl -k uses) on dir and returns the objects.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(b); err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		out = append(out, o)
	}
	return out
}

func index(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
	}
	return m
}

// Each overlay builds and is complete: every component runs as a Deployment
// with a Service, under a ServiceAccount the overlay creates, reading a
// ConfigMap the overlay creates; every RBAC file of deploy/rbac is in it.
func TestOverlaysBuildEveryComponent(t *testing.T) {
	rbacFiles, _ := filepath.Glob("../rbac/*.yaml")
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := build(t, dir)
			idx := index(objs)
			var deployments []string
			for _, o := range objs {
				if o.GetKind() == "Deployment" {
					deployments = append(deployments, strings.TrimPrefix(o.GetName(), "ebbflow-"))
				}
			}
			slices.Sort(deployments)
			want := slices.Clone(components)
			slices.Sort(want)
			if !slices.Equal(deployments, want) {
				t.Fatalf("Deployments %v, want %v", deployments, want)
			}
			for _, c := range components {
				d := idx["Deployment/ebbflow/ebbflow-"+c]
				svc := idx["Service/ebbflow/ebbflow-"+c]
				if svc == nil {
					t.Errorf("%s: no Service", c)
					continue
				}
				checkDeployment(t, c, d, svc, idx)
			}
			// Every object of every deploy/rbac file made it into the build.
			for _, f := range rbacFiles {
				if filepath.Base(f) == "kustomization.yaml" {
					continue
				}
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, doc := range strings.Split(string(b), "\n---") {
					var o unstructured.Unstructured
					if err := yaml.Unmarshal([]byte(doc), &o.Object); err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					if o.Object == nil || o.GetKind() == "" {
						continue
					}
					if idx[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] == nil {
						t.Errorf("%s %s/%s of %s is not in the build", o.GetKind(), o.GetNamespace(), o.GetName(), f)
					}
				}
			}
		})
	}
}

func checkDeployment(t *testing.T, c string, d, svc *unstructured.Unstructured, idx map[string]*unstructured.Unstructured) {
	t.Helper()
	spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	sa, _, _ := unstructured.NestedString(spec, "serviceAccountName")
	if sa != "" && idx["ServiceAccount/ebbflow/"+sa] == nil {
		t.Errorf("%s runs as ServiceAccount %s, which the overlay does not create", c, sa)
	}
	vols, _, _ := unstructured.NestedSlice(spec, "volumes")
	for _, v := range vols {
		if cm, ok, _ := unstructured.NestedString(v.(map[string]any), "configMap", "name"); ok && idx["ConfigMap/ebbflow/"+cm] == nil {
			t.Errorf("%s mounts ConfigMap %s, which the overlay does not create", c, cm)
		}
	}
	ctrs, _, _ := unstructured.NestedSlice(spec, "containers")
	if len(ctrs) != 1 {
		t.Fatalf("%s: %d containers", c, len(ctrs))
	}
	ctr := ctrs[0].(map[string]any)
	args, _, _ := unstructured.NestedStringSlice(ctr, "args")
	if len(args) == 0 || args[0] != c && !(c == "servers" && args[0] == "inference") || !slices.Contains(args, "--config") {
		t.Errorf("%s runs %v", c, args)
	}
	if img, _, _ := unstructured.NestedString(ctr, "image"); !strings.HasPrefix(img, "ghcr.io/ebbflow/ebbflow:") || strings.HasSuffix(img, ":latest") {
		t.Errorf("%s: image %q (the overlay must set a tag)", c, img)
	}
	ports := map[string]bool{}
	cps, _, _ := unstructured.NestedSlice(ctr, "ports")
	for _, p := range cps {
		ports[p.(map[string]any)["name"].(string)] = true
	}
	// The Service selects this Deployment's pods and every port it names exists on them.
	sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	podLabels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("Service %s selects %s=%s, pods have %q", svc.GetName(), k, v, podLabels[k])
		}
	}
	sps, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	var hasMetrics bool
	for _, p := range sps {
		tp := p.(map[string]any)["targetPort"]
		if s, ok := tp.(string); !ok || !ports[s] {
			t.Errorf("Service %s targets port %v, which %s's container does not name", svc.GetName(), tp, c)
		}
		hasMetrics = hasMetrics || p.(map[string]any)["name"] == "metrics"
	}
	if !hasMetrics || svc.GetLabels()["app.kubernetes.io/name"] != "ebbflow" {
		t.Errorf("Service %s is not scraped by the ServiceMonitor (port metrics, label app.kubernetes.io/name=ebbflow)", svc.GetName())
	}
}

// The overlays differ where they should: dev runs one replica of each at the
// :dev image with its own configuration; prod pins the image, replicates the
// partitioned components, and ships the ServiceMonitor, the PrometheusRule
// and the dashboard.
func TestOverlayDifferences(t *testing.T) {
	dev, prod := index(build(t, overlays[0])), index(build(t, overlays[1]))
	replicas := func(idx map[string]*unstructured.Unstructured, c string) int64 {
		n, _, _ := unstructured.NestedInt64(idx["Deployment/ebbflow/ebbflow-"+c].Object, "spec", "replicas")
		return n
	}
	for _, c := range components {
		if n := replicas(dev, c); n != 1 {
			t.Errorf("dev: %s has %d replicas", c, n)
		}
	}
	for _, c := range []string{"ingest", "window", "forecast", "actuate"} {
		if n := replicas(prod, c); n < 2 {
			t.Errorf("prod: %s has %d replicas", c, n)
		}
		if prod["PodDisruptionBudget/ebbflow/ebbflow-"+c] == nil {
			t.Errorf("prod: no PodDisruptionBudget for %s", c)
		}
	}
	for _, c := range []string{"mixing", "servers", "training", "ui"} {
		if n := replicas(prod, c); n != 1 {
			t.Errorf("prod: %s (one decider per cluster) has %d replicas", c, n)
		}
	}
	for _, k := range []string{"ServiceMonitor/ebbflow/ebbflow", "PrometheusRule/ebbflow/ebbflow", "ConfigMap/ebbflow/ebbflow-grafana-dashboard"} {
		if prod[k] == nil {
			t.Errorf("prod has no %s", k)
		}
		if dev[k] != nil {
			t.Errorf("dev has %s (it needs the Prometheus Operator)", k)
		}
	}
	// The ServiceMonitor scrapes every component: its selector matches each
	// Service and the port it names is on each.
	if sm := prod["ServiceMonitor/ebbflow/ebbflow"]; sm != nil {
		sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(sel) == 0 || len(eps) != 1 {
			t.Fatalf("ServiceMonitor selector %v endpoints %v", sel, eps)
		}
		port, _ := eps[0].(map[string]any)["port"].(string)
		for _, c := range components {
			svc := prod["Service/ebbflow/ebbflow-"+c]
			for k, v := range sel {
				if svc.GetLabels()[k] != v {
					t.Errorf("ServiceMonitor does not select Service ebbflow-%s (%s=%q)", c, k, svc.GetLabels()[k])
				}
			}
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			found := false
			for _, p := range ports {
				found = found || p.(map[string]any)["name"] == port
			}
			if !found {
				t.Errorf("Service ebbflow-%s has no port %q the ServiceMonitor scrapes", c, port)
			}
		}
	}
	if cm := prod["ConfigMap/ebbflow/ebbflow-grafana-dashboard"]; cm != nil {
		b, _ := os.ReadFile(dashboardFile)
		if got, _, _ := unstructured.NestedString(cm.Object, "data", "ebbflow.json"); got != string(b) {
			t.Error("the dashboard ConfigMap does not carry deploy/monitoring/grafana/ebbflow.json as it is")
		}
	}
	// dev's configuration replaces the base's, under the name the Deployments mount.
	for name, idx := range map[string]map[string]*unstructured.Unstructured{"dev": dev, "prod": prod} {
		cm := idx["ConfigMap/ebbflow/ebbflow-config"]
		if cm == nil {
			t.Fatalf("%s has no ConfigMap ebbflow-config", name)
		}
		cfg, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
		if got, want := strings.Contains(cfg, "replication_factor: 1\n"), name == "dev"; got != want {
			t.Errorf("%s: configuration with replication_factor 1 = %v, want %v:\n%s", name, got, want, cfg)
		}
	}
}
