package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Pod annotations discovery reads.
const (
	AnnotationScrape   = "prometheus.io/scrape"
	AnnotationPort     = "prometheus.io/port"
	AnnotationPath     = "prometheus.io/path"
	AnnotationScheme   = "prometheus.io/scheme"
	AnnotationAddress  = "ebbflow.io/scrape-address"  // host:port overriding pod IP and port
	AnnotationInterval = "ebbflow.io/scrape-interval" // per-pod interval, e.g. 5s
	AnnotationTimeout  = "ebbflow.io/scrape-timeout"  // per-pod timeout
)

// Discovery watches pods through client-go informers and turns the ones
// annotated prometheus.io/scrape: "true" into scrape targets. It works
// with any kubernetes.Interface, including client-go's fake clientset.
type Discovery struct {
	client kubernetes.Interface
	cfg    KubeDiscoveryConfig
	log    *slog.Logger
	update func([]Target)
}

// NewDiscovery returns a discovery that calls update with the full target
// list whenever it changes.
func NewDiscovery(client kubernetes.Interface, cfg KubeDiscoveryConfig, log *slog.Logger, update func([]Target)) *Discovery {
	return &Discovery{client: client, cfg: cfg, log: log, update: update}
}

// Run watches until ctx ends.
func (d *Discovery) Run(ctx context.Context) error {
	namespaces := d.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	sel := labels.Everything()
	if d.cfg.LabelSelector != "" {
		var err error
		if sel, err = labels.Parse(d.cfg.LabelSelector); err != nil {
			return fmt.Errorf("ingest: scrape.kubernetes.label_selector %q: %w", d.cfg.LabelSelector, err)
		}
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	var stores []cache.Store
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(d.client, d.cfg.Resync,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
		inf := f.Core().V1().Pods().Informer()
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("ingest: pod informer for namespace %q: %w", ns, err)
		}
		stores = append(stores, inf.GetStore())
		f.Start(ctx.Done())
		defer f.Shutdown()
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return ctx.Err()
		}
	}
	notify()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		var ts []Target
		for _, st := range stores {
			for _, o := range st.List() {
				if p, ok := o.(*corev1.Pod); ok {
					if t, ok := PodTarget(p); ok {
						ts = append(ts, t)
					}
				}
			}
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i].URL < ts[j].URL })
		d.log.Debug("kubernetes discovery", "targets", len(ts))
		d.update(ts)
		// Coalesce bursts of pod events into one update.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PodTarget returns the scrape target of an annotated pod. Pods that are
// not annotated, have finished, or have no address are not targets.
func PodTarget(p *corev1.Pod) (Target, bool) {
	a := p.Annotations
	if a[AnnotationScrape] != "true" || p.DeletionTimestamp != nil {
		return Target{}, false
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return Target{}, false
	}
	addr := a[AnnotationAddress]
	if addr == "" {
		if p.Status.PodIP == "" || a[AnnotationPort] == "" {
			return Target{}, false
		}
		addr = net.JoinHostPort(p.Status.PodIP, a[AnnotationPort])
	}
	scheme := a[AnnotationScheme]
	if scheme != "https" {
		scheme = "http"
	}
	path := a[AnnotationPath]
	if path == "" {
		path = "/metrics"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	t := Target{
		URL: scheme + "://" + addr + path,
		Labels: map[string]string{
			"job": "kubernetes-pods", "instance": addr,
			"namespace": p.Namespace, "pod": p.Name,
		},
	}
	if p.Spec.NodeName != "" {
		t.Labels["node"] = p.Spec.NodeName
	}
	for _, o := range p.OwnerReferences {
		switch o.Kind {
		case "ReplicaSet":
			dep := o.Name
			if h := p.Labels["pod-template-hash"]; h != "" {
				dep = strings.TrimSuffix(dep, "-"+h)
			} else if i := strings.LastIndexByte(dep, '-'); i > 0 {
				dep = dep[:i]
			}
			t.Labels["workload"] = dep
		case "StatefulSet", "DaemonSet", "Job":
			t.Labels["workload"] = o.Name
		}
	}
	if d, err := time.ParseDuration(a[AnnotationInterval]); err == nil && d > 0 {
		t.Interval = d
	}
	if d, err := time.ParseDuration(a[AnnotationTimeout]); err == nil && d > 0 {
		t.Timeout = d
		if t.Interval > 0 && d > t.Interval {
			t.Timeout = t.Interval
		}
	}
	return t, true
}
