// Command kube-apply server-side applies YAML manifests to the dev cluster (deploy/dev), so the
// service scripts need no kubectl. It does the few rewrites kustomize would do for upstream
// manifests that expect an in-cluster Service:
//
//	kube-apply --kubeconfig FILE [--name-prefix P] [--namespace NS]
//	           [--webhook-url https://127.0.0.1:PORT --ca-bundle FILE] [--webhook-groups g1,g2]
//	           [--conversion-crds crd1,crd2] [--wait-established 60s] FILE...
//
// --webhook-url replaces every webhook's (and CRD conversion's) clientConfig.service with
// url: <webhook-url><service.path> and caBundle: the CA in --ca-bundle (there is no kube-proxy).
// --webhook-groups keeps only the admission webhooks whose rules name one of these API groups.
// --conversion-crds sets spec.conversion of these CRDs to a conversion webhook at
// <webhook-url>/convert (what Kueue's kustomize patches webhook_in_*.yaml do).
// --name-prefix prefixes the names of cluster-scoped non-CRD objects and of the subjects/role
// references inside RBAC bindings in the same files (what kustomize's namePrefix does).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

type options struct {
	kubeconfig      string
	namePrefix      string
	namespace       string
	webhookURL      string
	caBundle        []byte
	webhookGroups   []string
	conversionCRDs  []string
	waitEstablished time.Duration
}

func main() {
	var o options
	var caFile, groups, conv string
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (required)")
	flag.StringVar(&o.namePrefix, "name-prefix", "", "prefix for cluster-scoped object names (not CRDs)")
	flag.StringVar(&o.namespace, "namespace", "", "namespace for namespaced objects that name none")
	flag.StringVar(&o.webhookURL, "webhook-url", "", "base URL replacing webhook clientConfig.service")
	flag.StringVar(&caFile, "ca-bundle", "", "PEM CA for --webhook-url")
	flag.StringVar(&groups, "webhook-groups", "", "comma-separated API groups whose admission webhooks are kept (default: all)")
	flag.StringVar(&conv, "conversion-crds", "", "comma-separated CRD names served through the conversion webhook at <webhook-url>/convert")
	flag.DurationVar(&o.waitEstablished, "wait-established", 0, "wait this long for applied CRDs to be Established")
	flag.Parse()
	if o.kubeconfig == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: kube-apply --kubeconfig FILE [flags] FILE...")
		os.Exit(2)
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			fail(fmt.Errorf("reading --ca-bundle: %w", err))
		}
		o.caBundle = b
	}
	if o.webhookURL != "" && o.caBundle == nil {
		fail(errors.New("--webhook-url needs --ca-bundle"))
	}
	if groups != "" {
		o.webhookGroups = strings.Split(groups, ",")
	}
	if conv != "" {
		if o.webhookURL == "" {
			fail(errors.New("--conversion-crds needs --webhook-url"))
		}
		o.conversionCRDs = strings.Split(conv, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+o.waitEstablished)
	defer cancel()
	if err := run(ctx, o, flag.Args()); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kube-apply:", err)
	os.Exit(1)
}

func run(ctx context.Context, o options, files []string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", o.kubeconfig, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		got, err := readObjects(f)
		if err != nil {
			return err
		}
		objs = append(objs, got...)
	}
	var crds []string
	for _, obj := range objs {
		if err := rewrite(obj, o); err != nil {
			return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		if err := apply(ctx, dyn, mapper, obj, o.namespace); err != nil {
			return err
		}
		if obj.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, obj.GetName())
		}
	}
	if o.waitEstablished > 0 {
		return waitEstablished(ctx, dyn, crds, o.waitEstablished)
	}
	return nil
}

// readObjects decodes every document of a multi-document YAML file ("-": stdin).
func readObjects(file string) ([]*unstructured.Unstructured, error) {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading manifest: %w", err)
		}
		defer f.Close()
		r = f
	}
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []*unstructured.Unstructured
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", file, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", file, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func rewrite(obj *unstructured.Unstructured, o options) error {
	kind := obj.GetKind()
	switch kind {
	case "CustomResourceDefinition":
		if slices.Contains(o.conversionCRDs, obj.GetName()) {
			conversion := map[string]any{
				"strategy": "Webhook",
				"webhook": map[string]any{
					"clientConfig":             map[string]any{"service": map[string]any{"path": "/convert"}},
					"conversionReviewVersions": []any{"v1"},
				},
			}
			if err := unstructured.SetNestedMap(obj.Object, conversion, "spec", "conversion"); err != nil {
				return err
			}
		}
		if o.webhookURL != "" {
			if cc, ok, _ := unstructured.NestedMap(obj.Object, "spec", "conversion", "webhook", "clientConfig"); ok {
				if err := urlClientConfig(cc, o); err != nil {
					return err
				}
				if err := unstructured.SetNestedMap(obj.Object, cc, "spec", "conversion", "webhook", "clientConfig"); err != nil {
					return err
				}
			}
		}
		return nil
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
		hooks, _, _ := unstructured.NestedSlice(obj.Object, "webhooks")
		var kept []any
		for _, h := range hooks {
			hm, ok := h.(map[string]any)
			if !ok {
				continue
			}
			if !keepWebhook(hm, o.webhookGroups) {
				continue
			}
			if cc, ok := hm["clientConfig"].(map[string]any); ok && o.webhookURL != "" {
				if err := urlClientConfig(cc, o); err != nil {
					return fmt.Errorf("webhook %v: %w", hm["name"], err)
				}
			}
			kept = append(kept, hm)
		}
		if err := unstructured.SetNestedSlice(obj.Object, kept, "webhooks"); err != nil {
			return err
		}
	}
	if o.namePrefix == "" {
		return nil
	}
	if obj.GetNamespace() == "" && !namespacedKind(kind) && kind != "Namespace" {
		obj.SetName(o.namePrefix + obj.GetName())
	}
	if kind == "ClusterRoleBinding" || kind == "RoleBinding" {
		if rr, ok, _ := unstructured.NestedString(obj.Object, "roleRef", "name"); ok && kind == "ClusterRoleBinding" {
			_ = unstructured.SetNestedField(obj.Object, o.namePrefix+rr, "roleRef", "name")
		}
	}
	return nil
}

// namespacedKind: kinds in upstream manifests that live in a namespace even when the manifest
// names none.
func namespacedKind(kind string) bool {
	return slices.Contains([]string{"Role", "RoleBinding", "ServiceAccount", "Service", "Deployment", "Secret", "ConfigMap"}, kind)
}

func keepWebhook(h map[string]any, groups []string) bool {
	if len(groups) == 0 {
		return true
	}
	rules, _ := h["rules"].([]any)
	for _, r := range rules {
		rm, _ := r.(map[string]any)
		gs, _ := rm["apiGroups"].([]any)
		for _, g := range gs {
			if s, _ := g.(string); slices.Contains(groups, s) {
				return true
			}
		}
	}
	return false
}

func urlClientConfig(cc map[string]any, o options) error {
	svc, ok := cc["service"].(map[string]any)
	if !ok {
		return nil
	}
	path, _ := svc["path"].(string)
	if path == "" {
		return errors.New("clientConfig.service has no path")
	}
	delete(cc, "service")
	cc["url"] = strings.TrimRight(o.webhookURL, "/") + path
	cc["caBundle"] = base64.StdEncoding.EncodeToString(o.caBundle)
	return nil
}

func apply(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, obj *unstructured.Unstructured, defaultNS string) error {
	gvk := obj.GroupVersionKind()
	var m *meta.RESTMapping
	var err error
	// A CRD applied a moment ago may not be in discovery yet: retry for a while.
	for i := 0; ; i++ {
		m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil || i >= 30 {
			break
		}
		if rm, ok := mapper.(interface{ Reset() }); ok {
			rm.Reset()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", gvk, obj.GetName(), ctx.Err())
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: no API resource: %w", gvk, obj.GetName(), err)
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = defaultNS
		}
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		obj.SetNamespace(ns)
		ri = dyn.Resource(m.Resource).Namespace(ns)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	force := true
	if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: "ebbflow-dev", Force: &force}); err != nil {
		return fmt.Errorf("applying %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	fmt.Printf("applied %s %s\n", strings.ToLower(gvk.Kind), obj.GetName())
	return nil
}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, names []string, timeout time.Duration) error {
	crd := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	deadline := time.Now().Add(timeout)
	for _, name := range names {
		for {
			u, err := dyn.Resource(crd).Get(ctx, name, metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("reading CRD %s: %w", name, err)
			}
			if err == nil && established(u) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not Established within %s", name, timeout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if cm["type"] == "Established" && cm["status"] == "True" {
			return true
		}
	}
	return false
}
