// Package sim is the simulated cluster `ebbflow dev` runs against: a
// client-go fake clientset holding Nodes, Deployments, ReplicaSets and
// Pods, and simulated inference services whose pods serve real Prometheus
// /metrics endpoints with the metric names real exporters use (cAdvisor,
// DCGM, Triton, kube-state-metrics).
//
// Time is simulated: Step advances the cluster by Config.Step, and every
// sample a pod exposes carries that simulated time as its exposition
// timestamp (as a Prometheus scrape honours), so a scraper polling the
// endpoints at any wall-clock speed sees event time. A Sim is safe for
// concurrent use: Step, the HTTP handlers and the accessors may run at
// the same time.
package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

// Annotations the simulated pods carry so that Prometheus-style
// Kubernetes discovery finds them.
const (
	AnnotationScrape = "prometheus.io/scrape"
	AnnotationPort   = "prometheus.io/port"
	AnnotationPath   = "prometheus.io/path"
	// AnnotationAddress overrides the scrape address (host:port) outright;
	// the fake pods' IP is 127.0.0.1 as well, so either way works.
	AnnotationAddress = "ebbflow.io/scrape-address"
	// AnnotationInterval sets a pod's (wall-clock) scrape interval, so a
	// simulation running 60× faster is scraped 60× more often.
	AnnotationInterval = "ebbflow.io/scrape-interval"
)

// KSMNamespace and KSMName place the simulated kube-state-metrics pod.
const (
	KSMNamespace = "kube-system"
	KSMName      = "kube-state-metrics"
)

// Service describes one simulated inference service (a Deployment running
// Triton with one model on one GPU per pod).
type Service struct {
	// Name is the Deployment name.
	Name string
	// Model is the Triton model name in the metrics' labels.
	Model string
	// CapacityRPS is what one ready replica serves at utilisation 1.
	CapacityRPS float64
	// BaseLatencyMs is the service time without queueing.
	BaseLatencyMs float64
	// ModelMemMiB is the GPU memory the loaded model takes.
	ModelMemMiB float64
	// InitialReplicas is spec.replicas at start; these pods start ready.
	InitialReplicas int32
	// Load is the offered load in requests/s.
	Load LoadFunc
	// Launched services have no Deployment at start: the simulation waits
	// for one to be created through the API (by ebbflow's inference
	// actuator), then runs its pods; until then the service serves nothing
	// and counts nothing. InitialReplicas is ignored.
	Launched bool
}

// Config describes the simulated cluster.
type Config struct {
	// Cluster names the cluster (as in entity keys).
	Cluster string
	// Namespace holds the services.
	Namespace string
	// Start is the simulated time at elapsed zero.
	Start time.Time
	// Step is how much simulated time one Step advances.
	Step time.Duration
	// StartupDelay is how long a scheduled pod takes to become ready.
	StartupDelay time.Duration
	// Nodes and GPUsPerNode size the GPU pool; each pod takes one GPU.
	Nodes, GPUsPerNode int
	// LatencySLOMs is the objective the stats count minutes over.
	LatencySLOMs float64
	// ScrapeInterval, when set, is put on every pod as AnnotationInterval.
	ScrapeInterval time.Duration
	// Services are the simulated workloads.
	Services []Service
	// Mixing, when set, puts the nodes in pools of one node group and
	// runs a stream of training jobs on the offline ones (mixing.go).
	Mixing *Mixing
}

func (c Config) validate() error {
	switch {
	case c.Cluster == "" || c.Namespace == "":
		return errors.New("sim: cluster and namespace must be set")
	case c.Step <= 0:
		return errors.New("sim: step must be positive")
	case c.Nodes < 1 || c.GPUsPerNode < 1:
		return errors.New("sim: nodes and gpus_per_node must be at least 1")
	case len(c.Services) == 0:
		return errors.New("sim: no services")
	}
	for _, s := range c.Services {
		if s.Name == "" || s.CapacityRPS <= 0 || s.BaseLatencyMs <= 0 || s.Load == nil || s.InitialReplicas < 0 {
			return fmt.Errorf("sim: service %q: name, capacity, base latency and load are required", s.Name)
		}
	}
	return nil
}

// Sim is a running simulated cluster.
type Sim struct {
	cfg Config
	cs  *fake.Clientset
	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup

	mu       sync.RWMutex
	now      time.Time
	steps    int64
	services []*service
	pods     map[string]*pod // ns/name → pod
	ksm      *pod
	gpusUsed map[string]int
	nodes    []string
	seq      int
	scraped  map[string]int64 // pod key → the step it was last scraped at
	mix      *mixState        // nil without Config.Mixing
}

type service struct {
	spec Service
	// adopted is false while a launched service waits for its Deployment.
	adopted bool
	// template is the launched Deployment's pod spec.
	template *corev1.PodSpec
	hash     string // pod-template-hash
	pods     []*pod
	desired  int32
	load     float64 // offered requests/s at the last step
	latency  float64 // mean latency (ms) at the last step
	stats    ServiceStats
	minute   minuteAcc
	minutes  []Minute
}

type minuteAcc struct {
	start             time.Time
	durMs, successful float64
	readySec, loadSec float64
}

// Minute is one whole simulated minute of a service.
type Minute struct {
	Start time.Time
	// Replicas is the mean number of ready replicas.
	Replicas float64
	// LatencyMs is the mean latency of successful requests (0 when none).
	LatencyMs float64
	// Load is the mean offered load in requests/s.
	Load float64
	// OverSLO says LatencyMs exceeded the SLO.
	OverSLO bool
}

type pod struct {
	svc       *service // nil for kube-state-metrics
	name, ns  string
	node      string
	created   time.Time
	readyAt   time.Time // zero while unscheduled
	dcgmNode  string    // set on a node's DCGM exporter pod (mixing only)
	ready     bool
	handler   http.Handler
	success   float64
	failure   float64
	durUs     float64
	queueUs   float64
	cpuSec    float64
	memBytes  float64
	gpuUtil   float64
	fbUsedMiB float64
}

func (p *pod) key() string { return p.ns + "/" + p.name }

// ServiceStats are the simulation's own figures for one service, the
// ground truth a summary computed from the topics is checked against.
type ServiceStats struct {
	Entity string
	// ReplicaMinutes integrates ready replicas over simulated time.
	ReplicaMinutes float64
	// MinutesOverSLO counts whole simulated minutes whose mean latency
	// (request duration over successful requests) exceeded the SLO.
	MinutesOverSLO int
	// Minutes counts the whole minutes judged.
	Minutes int
	// Requests and Failures count offered and failed requests.
	Requests, Failures float64
	// MinDesired and MaxDesired bound spec.replicas as observed.
	MinDesired, MaxDesired int32
	// ScaleUps and ScaleDowns count changes of spec.replicas observed.
	ScaleUps, ScaleDowns int
	// PeakLoad is the largest offered load seen (requests/s).
	PeakLoad float64
}

// Start builds the cluster, serves the pods' /metrics on 127.0.0.1 (a free
// port) and returns; Close stops it.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sim: listen: %w", err)
	}
	s := &Sim{cfg: cfg, ln: ln, now: cfg.Start, pods: map[string]*pod{}, gpusUsed: map[string]int{}, scraped: map[string]int64{}}
	s.cs = fake.NewClientset()
	installScaleReactors(s.cs)
	if cfg.Mixing != nil {
		s.mix = &mixState{cfg: *cfg.Mixing, view: map[string]nodeView{}, running: map[int]*runningJob{},
			podJob: map[string]int{}, trainOn: map[string]int{}, pendMin: cfg.Start.Truncate(time.Minute)}
		installEvictionReactor(s.cs, s.mix)
	}
	if err := s.seed(ctx); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/pods/{ns}/{name}/metrics", s.servePod)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	return s, nil
}

// Close stops the HTTP server.
func (s *Sim) Close() {
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	s.wg.Wait()
}

// Clientset is the fake Kubernetes API the pipeline's discovery and
// actuators use.
func (s *Sim) Clientset() kubernetes.Interface { return s.cs }

// Addr is the host:port every simulated /metrics endpoint is served on.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// Now is the simulated time.
func (s *Sim) Now() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.now
}

// Entity returns the entity key of a service.
func (s *Sim) Entity(name string) string {
	return "svc/" + s.cfg.Cluster + "/" + s.cfg.Namespace + "/" + name
}

func (s *Sim) seed(ctx context.Context) error {
	for i := range s.cfg.Nodes {
		name := fmt.Sprintf("gpu-node-%02d", i+1)
		s.nodes = append(s.nodes, name)
		gpus := resource.MustParse(strconv.Itoa(s.cfg.GPUsPerNode))
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"nvidia.com/gpu.present": "true", "kubernetes.io/hostname": name}},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{"nvidia.com/gpu": gpus, corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("512Gi")},
				Allocatable: corev1.ResourceList{"nvidia.com/gpu": gpus, corev1.ResourceCPU: resource.MustParse("63"), corev1.ResourceMemory: resource.MustParse("500Gi")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
			},
		}
		if s.mix != nil {
			maps.Copy(n.Labels, s.mix.poolLabels(i))
			s.mix.view[name] = nodeView{pool: n.Labels[LabelPool]}
		}
		if _, err := s.cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("sim: create node %s: %w", name, err)
		}
	}
	if s.mix != nil {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: TrainingNamespace}}
		if _, err := s.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("sim: create namespace %s: %w", TrainingNamespace, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.Namespace}}
	if _, err := s.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("sim: create namespace %s: %w", s.cfg.Namespace, err)
	}
	for i, spec := range s.cfg.Services {
		sv := &service{spec: spec, hash: podHash(spec.Name, 10), desired: spec.InitialReplicas, adopted: !spec.Launched}
		sv.stats = ServiceStats{Entity: s.Entity(spec.Name), MinDesired: spec.InitialReplicas, MaxDesired: spec.InitialReplicas}
		sv.minute.start = s.now.Truncate(time.Minute)
		if spec.Launched {
			sv.desired, sv.stats.MinDesired, sv.stats.MaxDesired = 0, 0, 0
			s.services = append(s.services, sv)
			continue
		}
		if err := s.createWorkload(ctx, sv, i); err != nil {
			return err
		}
		s.services = append(s.services, sv)
		for range spec.InitialReplicas {
			p := s.newPod(sv)
			if p.node != "" {
				p.readyAt, p.ready = s.now, true
			}
			if err := s.createPod(ctx, p); err != nil {
				return err
			}
		}
		if err := s.updateStatus(ctx, sv); err != nil {
			return err
		}
	}
	// kube-state-metrics: one always-ready pod describing every workload.
	s.ksm = &pod{name: KSMName + "-" + podHash(KSMName, 10) + "-" + podHash("ksm-pod", 5), ns: KSMNamespace, created: s.now, ready: true, readyAt: s.now, node: s.nodes[0]}
	s.ksm.handler = s.podHandler(s.ksm)
	s.pods[s.ksm.key()] = s.ksm
	if s.mix != nil {
		// A DCGM exporter per node reports the GPUs no inference pod
		// holds (the pods report their own), so a node's mean gpu_util
		// counts its idle GPUs.
		for _, n := range s.nodes {
			p := &pod{name: "dcgm-exporter-" + podHash(n, 5), ns: KSMNamespace, created: s.now, ready: true, readyAt: s.now, node: n, dcgmNode: n}
			p.handler = s.podHandler(p)
			s.pods[p.key()] = p
			if err := s.createPod(ctx, p); err != nil {
				return err
			}
		}
	}
	return s.createPod(ctx, s.ksm)
}

func (s *Sim) createWorkload(ctx context.Context, sv *service, i int) error {
	labels := map[string]string{"app": sv.spec.Name}
	repl := sv.spec.InitialReplicas
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: sv.spec.Name, Namespace: s.cfg.Namespace, Labels: labels, Generation: 1,
			Annotations: map[string]string{"ebbflow.io/model": sv.spec.Model}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &repl,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(sv.spec)},
		},
	}
	if _, err := s.cs.AppsV1().Deployments(s.cfg.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("sim: create deployment %s/%s: %w", s.cfg.Namespace, sv.spec.Name, err)
	}
	return s.createReplicaSet(ctx, sv, repl)
}

// createReplicaSet adds the Deployment's ReplicaSet, which owns the pods
// (pod discovery derives the workload from it).
func (s *Sim) createReplicaSet(ctx context.Context, sv *service, repl int32) error {
	rsLabels := map[string]string{"app": sv.spec.Name, "pod-template-hash": sv.hash}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: sv.spec.Name + "-" + sv.hash, Namespace: s.cfg.Namespace, Labels: rsLabels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: sv.spec.Name}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &repl, Selector: &metav1.LabelSelector{MatchLabels: rsLabels}},
	}
	if _, err := s.cs.AppsV1().ReplicaSets(s.cfg.Namespace).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("sim: create replicaset %s/%s: %w", s.cfg.Namespace, rs.Name, err)
	}
	return nil
}

func podSpec(sv Service) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{
		Name:  "triton",
		Image: "nvcr.io/nvidia/tritonserver:24.08-py3",
		Args:  []string{"tritonserver", "--model-repository=/models", "--model-control-mode=explicit", "--load-model=" + sv.Model},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1"), corev1.ResourceCPU: resource.MustParse("4")},
			Limits:   corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
		},
	}}}
}

// podHash returns a Kubernetes-style random-looking suffix (the alphabet
// Kubernetes uses for generated names) derived from a string, so names are
// reproducible.
func podHash(from string, n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[int(unit(0, from, int64(i))*float64(len(alphabet)))]
	}
	return string(out)
}

// newPod creates the in-memory pod and schedules it if a GPU is free.
func (s *Sim) newPod(sv *service) *pod {
	s.seq++
	p := &pod{svc: sv, ns: s.cfg.Namespace, created: s.now,
		name: sv.spec.Name + "-" + sv.hash + "-" + podHash(fmt.Sprintf("%s/%d", sv.spec.Name, s.seq), 5)}
	p.handler = s.podHandler(p)
	s.schedule(p)
	sv.pods = append(sv.pods, p)
	s.pods[p.key()] = p
	return p
}

// schedule places the pod on the node with the most free GPUs.
func (s *Sim) schedule(p *pod) {
	best, free := "", 0
	for _, n := range s.nodes {
		if !s.canServe(n) {
			continue
		}
		if f := s.cfg.GPUsPerNode - s.gpusUsed[n]; f > free {
			best, free = n, f
		}
	}
	if best == "" {
		return
	}
	p.node = best
	s.gpusUsed[best]++
	p.readyAt = s.now.Add(s.cfg.StartupDelay)
}

func (s *Sim) podObject(p *pod) *corev1.Pod {
	port := strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port)
	labels := map[string]string{}
	var owner []metav1.OwnerReference
	if p.svc != nil {
		labels["app"] = p.svc.spec.Name
		labels["pod-template-hash"] = p.svc.hash
		owner = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: p.svc.spec.Name + "-" + p.svc.hash}}
	} else {
		labels["app.kubernetes.io/name"] = KSMName
	}
	o := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.ns, Labels: labels, OwnerReferences: owner,
			CreationTimestamp: metav1.NewTime(p.created),
			Annotations: map[string]string{
				AnnotationScrape:  "true",
				AnnotationPort:    port,
				AnnotationPath:    "/pods/" + p.ns + "/" + p.name + "/metrics",
				AnnotationAddress: s.Addr(),
			}},
		Spec:   corev1.PodSpec{NodeName: p.node},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	if p.svc != nil {
		o.Spec = podSpec(p.svc.spec)
		if p.svc.template != nil {
			o.Spec = *p.svc.template.DeepCopy()
		}
		o.Spec.NodeName = p.node
		if s.mix != nil {
			o.Labels[LabelWorkload] = "inference"
			o.Spec.NodeSelector = map[string]string{LabelNodeGroup: s.mix.cfg.Group}
		}
	}
	if s.cfg.ScrapeInterval > 0 {
		o.Annotations[AnnotationInterval] = s.cfg.ScrapeInterval.String()
	}
	if p.node == "" && p.svc != nil && s.mix != nil {
		o.Status.Conditions = append(o.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable})
	}
	if p.node != "" {
		o.Status.HostIP = "127.0.0.1"
		o.Status.PodIP = "127.0.0.1"
		o.Status.Conditions = append(o.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	}
	if p.ready {
		o.Status.Phase = corev1.PodRunning
		o.Status.StartTime = &metav1.Time{Time: p.readyAt}
		o.Status.Conditions = append(o.Status.Conditions,
			corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(p.readyAt)},
			corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue})
	}
	return o
}

func (s *Sim) createPod(ctx context.Context, p *pod) error {
	if _, err := s.cs.CoreV1().Pods(p.ns).Create(ctx, s.podObject(p), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("sim: create pod %s: %w", p.key(), err)
	}
	return nil
}

func (s *Sim) updatePod(ctx context.Context, p *pod) error {
	if _, err := s.cs.CoreV1().Pods(p.ns).Update(ctx, s.podObject(p), metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("sim: update pod %s: %w", p.key(), err)
	}
	return nil
}

func (s *Sim) updateStatus(ctx context.Context, sv *service) error {
	d, err := s.cs.AppsV1().Deployments(s.cfg.Namespace).Get(ctx, sv.spec.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("sim: get deployment %s/%s: %w", s.cfg.Namespace, sv.spec.Name, err)
	}
	ready := int32(sv.readyCount())
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           int32(len(sv.pods)),
		UpdatedReplicas:    int32(len(sv.pods)),
		ReadyReplicas:      ready,
		AvailableReplicas:  ready,
		UnavailableReplicas: max(0,
			int32(len(sv.pods))-ready),
	}
	if _, err := s.cs.AppsV1().Deployments(s.cfg.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("sim: update status of deployment %s/%s: %w", s.cfg.Namespace, sv.spec.Name, err)
	}
	return nil
}

func (sv *service) readyCount() int {
	n := 0
	for _, p := range sv.pods {
		if p.ready {
			n++
		}
	}
	return n
}

// Step advances the simulated time by one step: it follows each
// Deployment's spec.replicas (creating or deleting pods), makes pods
// whose start-up delay has passed ready, and serves the offered load over
// the step, updating every pod's counters and gauges.
func (s *Sim) Step(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dt := s.cfg.Step.Seconds()
	mid := s.now.Add(s.cfg.Step / 2).Sub(s.cfg.Start)
	s.now = s.now.Add(s.cfg.Step)
	s.steps++
	var errs []error
	if s.mix != nil {
		if err := s.refreshMixing(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, sv := range s.services {
		if !sv.adopted {
			ok, err := s.adopt(ctx, sv)
			if err != nil {
				errs = append(errs, err)
			}
			if !ok {
				continue
			}
		}
		if err := s.reconcile(ctx, sv); err != nil {
			errs = append(errs, err)
		}
		if !sv.adopted {
			continue // retired during reconcile
		}
		s.serve(sv, sv.spec.Load(mid), dt)
		if err := s.updateStatus(ctx, sv); err != nil {
			errs = append(errs, err)
		}
	}
	if s.mix != nil {
		if err := s.stepTraining(ctx); err != nil {
			errs = append(errs, err)
		}
		s.judgePending()
	}
	return errors.Join(errs...)
}

// adopt starts simulating a launched service once its Deployment exists.
func (s *Sim) adopt(ctx context.Context, sv *service) (bool, error) {
	d, err := s.cs.AppsV1().Deployments(s.cfg.Namespace).Get(ctx, sv.spec.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sim: get deployment %s/%s: %w", s.cfg.Namespace, sv.spec.Name, err)
	}
	if err := s.createReplicaSet(ctx, sv, 0); err != nil {
		return false, err
	}
	sv.template = d.Spec.Template.Spec.DeepCopy()
	sv.adopted = true
	sv.desired = 1
	if d.Spec.Replicas != nil {
		sv.desired = *d.Spec.Replicas
	}
	sv.stats.MinDesired, sv.stats.MaxDesired = sv.desired, sv.desired
	sv.minute = minuteAcc{start: s.now.Truncate(time.Minute)}
	return true, nil
}

// reconcile does what the Deployment and ReplicaSet controllers and the
// kubelet would: match the pods to spec.replicas and mark started pods ready.
func (s *Sim) reconcile(ctx context.Context, sv *service) error {
	d, err := s.cs.AppsV1().Deployments(s.cfg.Namespace).Get(ctx, sv.spec.Name, metav1.GetOptions{})
	if sv.spec.Launched && apierrors.IsNotFound(err) {
		return s.retire(ctx, sv)
	}
	if err != nil {
		return fmt.Errorf("sim: get deployment %s/%s: %w", s.cfg.Namespace, sv.spec.Name, err)
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if want > sv.desired {
		sv.stats.ScaleUps++
	} else if want < sv.desired {
		sv.stats.ScaleDowns++
	}
	sv.desired = want
	sv.stats.MinDesired = min(sv.stats.MinDesired, want)
	sv.stats.MaxDesired = max(sv.stats.MaxDesired, want)
	for int32(len(sv.pods)) < want {
		if err := s.createPod(ctx, s.newPod(sv)); err != nil {
			return err
		}
	}
	if int32(len(sv.pods)) > want {
		// Like the ReplicaSet controller: unscheduled, then not ready, then newest first.
		sort.SliceStable(sv.pods, func(i, j int) bool {
			a, b := sv.pods[i], sv.pods[j]
			if (a.node == "") != (b.node == "") {
				return a.node != ""
			}
			if a.ready != b.ready {
				return a.ready
			}
			return a.created.Before(b.created)
		})
		for _, p := range sv.pods[want:] {
			if err := s.cs.CoreV1().Pods(p.ns).Delete(ctx, p.name, metav1.DeleteOptions{}); err != nil {
				return fmt.Errorf("sim: delete pod %s: %w", p.key(), err)
			}
			if p.node != "" {
				s.gpusUsed[p.node]--
			}
			delete(s.pods, p.key())
			delete(s.scraped, p.key())
		}
		sv.pods = sv.pods[:want]
	}
	for _, p := range sv.pods {
		changed := false
		if p.node == "" {
			s.schedule(p)
			changed = p.node != ""
		}
		if !p.ready && p.node != "" && !s.now.Before(p.readyAt) {
			p.ready, changed = true, true
		}
		if changed {
			if err := s.updatePod(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// retire does what the garbage collector would once a launched
// service's Deployment is deleted: its ReplicaSet and pods go, and the
// service waits to be launched again.
func (s *Sim) retire(ctx context.Context, sv *service) error {
	for _, p := range sv.pods {
		if err := s.cs.CoreV1().Pods(p.ns).Delete(ctx, p.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("sim: delete pod %s: %w", p.key(), err)
		}
		if p.node != "" {
			s.gpusUsed[p.node]--
		}
		delete(s.pods, p.key())
		delete(s.scraped, p.key())
	}
	sv.pods, sv.adopted, sv.desired, sv.template = nil, false, 0, nil
	rs := sv.spec.Name + "-" + sv.hash
	if err := s.cs.AppsV1().ReplicaSets(s.cfg.Namespace).Delete(ctx, rs, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("sim: delete replicaset %s/%s: %w", s.cfg.Namespace, rs, err)
	}
	return nil
}

// serve spreads load (requests/s) over the ready pods for dt seconds.
// Latency follows an M/M/1-like curve: base/(1−ρ); above ρ = 0.95 a pod
// serves at 0.95 of its capacity and fails the rest.
func (s *Sim) serve(sv *service, load, dt float64) {
	const rhoMax = 0.95
	// The step ending now is stamped now; like the window processor,
	// count it in the minute that holds its timestamp.
	s.closeMinutes(sv)
	sv.load = load
	sv.stats.Requests += load * dt
	sv.stats.PeakLoad = max(sv.stats.PeakLoad, load)
	n := sv.readyCount()
	sv.stats.ReplicaMinutes += float64(n) * dt / 60
	sv.minute.readySec += float64(n) * dt
	sv.minute.loadSec += load * dt
	if n == 0 {
		sv.stats.Failures += load * dt
		sv.latency = 0
		return
	}
	per := load / float64(n)
	rho := per / sv.spec.CapacityRPS
	served, failed := per, 0.0
	if rho > rhoMax {
		served = rhoMax * sv.spec.CapacityRPS
		failed = per - served
	}
	// A small base error rate, as real services have.
	baseErr := served * 0.001
	served -= baseErr
	failed += baseErr
	r := math.Min(rho, rhoMax)
	latMs := sv.spec.BaseLatencyMs / (1 - r)
	sv.latency = latMs
	util := math.Min(1, rho)
	for _, p := range sv.pods {
		if !p.ready {
			continue
		}
		p.success += served * dt
		p.failure += failed * dt
		p.durUs += served * dt * latMs * 1000
		p.queueUs += served * dt * (latMs - sv.spec.BaseLatencyMs) * 1000
		p.cpuSec += (0.3 + 3*util) * dt
		p.memBytes = 2.5e9 + 1.5e9*util
		p.gpuUtil = math.Min(100, 3+95*util)
		p.fbUsedMiB = sv.spec.ModelMemMiB + 2048*util
	}
	sv.stats.Failures += failed * float64(n) * dt
	sv.minute.durMs += served * float64(n) * dt * latMs
	sv.minute.successful += served * float64(n) * dt
}

// closeMinutes judges each minute that ended by now: the minute
// [m, m+1m) holds the steps stamped m … m+1m−step, as a one-minute window
// holds the samples stamped in it.
func (s *Sim) closeMinutes(sv *service) {
	for !s.now.Before(sv.minute.start.Add(time.Minute)) {
		m := Minute{Start: sv.minute.start, Replicas: sv.minute.readySec / 60, Load: sv.minute.loadSec / 60}
		if sv.minute.readySec == 0 && sv.minute.loadSec == 0 && sv.minute.start.Equal(s.cfg.Start.Truncate(time.Minute)) {
			// The first minute has no step stamped at its start.
			sv.minute = minuteAcc{start: sv.minute.start.Add(time.Minute)}
			continue
		}
		if sv.minute.successful > 0 {
			m.LatencyMs = sv.minute.durMs / sv.minute.successful
			m.OverSLO = m.LatencyMs > s.cfg.LatencySLOMs
			sv.stats.Minutes++
			if m.OverSLO {
				sv.stats.MinutesOverSLO++
			}
		}
		sv.minutes = append(sv.minutes, m)
		sv.minute = minuteAcc{start: sv.minute.start.Add(time.Minute)}
	}
}

// Stats returns each service's figures so far, in configuration order.
func (s *Sim) Stats() []ServiceStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]ServiceStats, len(s.services))
	for i, sv := range s.services {
		out[i] = sv.stats
	}
	return out
}

// Minutes returns a service's whole minutes so far, oldest first.
func (s *Sim) Minutes(entity string) []Minute {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sv := range s.services {
		if sv.stats.Entity == entity {
			return append([]Minute(nil), sv.minutes...)
		}
	}
	return nil
}

// Load returns a service's offered load (requests/s) at a simulated time;
// it is the ground truth forecasts can be judged against.
func (s *Sim) Load(entity string, at time.Time) float64 {
	for _, sv := range s.services {
		if sv.stats.Entity == entity {
			return sv.spec.Load(at.Sub(s.cfg.Start))
		}
	}
	return 0
}

// ServiceState is a service's state at the current step, for the live view.
type ServiceState struct {
	Entity string
	// Load is the offered load in requests/s.
	Load float64
	// Ready, Pods and Desired count ready pods, all pods and spec.replicas.
	Ready, Pods int
	Desired     int32
	// LatencyMs is the mean latency of the last step.
	LatencyMs float64
}

// State returns every service's current state, in configuration order.
func (s *Sim) State() []ServiceState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]ServiceState, len(s.services))
	for i, sv := range s.services {
		out[i] = ServiceState{Entity: sv.stats.Entity, Load: sv.load, Ready: sv.readyCount(), Pods: len(sv.pods), Desired: sv.desired, LatencyMs: sv.latency}
	}
	return out
}

// ScrapedAll reports whether every ready pod (and kube-state-metrics)
// has been scraped since the last Step: what `--speed max` waits for so
// that no simulated state goes unobserved.
func (s *Sim) ScrapedAll() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, p := range s.pods {
		if !p.ready {
			continue
		}
		if s.scraped[k] != s.steps {
			return false
		}
	}
	return true
}

// Scrapes returns how many distinct endpoints were scraped at the current step.
func (s *Sim) Scrapes() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, st := range s.scraped {
		if st == s.steps {
			n++
		}
	}
	return n
}

func (s *Sim) servePod(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	s.mu.Lock()
	p, ok := s.pods[key]
	ready := ok && p.ready
	if ready {
		s.scraped[key] = s.steps
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "no such pod "+key, http.StatusNotFound)
		return
	}
	if !ready {
		// A pod that is unscheduled or still starting serves nothing yet.
		http.Error(w, "pod "+key+" is not ready", http.StatusServiceUnavailable)
		return
	}
	p.handler.ServeHTTP(w, r)
}
