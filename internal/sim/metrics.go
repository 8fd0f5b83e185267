package sim

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Descriptors of the metrics the simulated exporters serve, with the names
// and labels the real exporters use. Triton's carry only model and
// version (the scrape target adds namespace and pod, as in Prometheus);
// cAdvisor's and DCGM's carry the pod they are about.
var (
	descCPU = prometheus.NewDesc("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.",
		[]string{"container", "cpu", "image", "namespace", "pod"}, nil)
	descMem = prometheus.NewDesc("container_memory_working_set_bytes", "Current working set in bytes.",
		[]string{"container", "image", "namespace", "pod"}, nil)
	descGPUUtil = prometheus.NewDesc("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).",
		[]string{"gpu", "UUID", "device", "modelName", "Hostname", "container", "namespace", "pod"}, nil)
	descFB = prometheus.NewDesc("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).",
		[]string{"gpu", "UUID", "device", "modelName", "Hostname", "container", "namespace", "pod"}, nil)
	descSuccess = prometheus.NewDesc("nv_inference_request_success", "Number of successful inference requests, all batch sizes",
		[]string{"model", "version"}, nil)
	descFailure = prometheus.NewDesc("nv_inference_request_failure", "Number of failed inference requests, all batch sizes",
		[]string{"model", "reason", "version"}, nil)
	descDuration = prometheus.NewDesc("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes cached requests)",
		[]string{"model", "version"}, nil)
	descQueue = prometheus.NewDesc("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds (includes cached requests)",
		[]string{"model", "version"}, nil)

	descKSMAvailable = prometheus.NewDesc("kube_deployment_status_replicas_available", "The number of available replicas per deployment.",
		[]string{"namespace", "deployment"}, nil)
	descKSMSpec = prometheus.NewDesc("kube_deployment_spec_replicas", "Number of desired pods for a deployment.",
		[]string{"namespace", "deployment"}, nil)
	descKSMReplicas = prometheus.NewDesc("kube_deployment_status_replicas", "The number of replicas per deployment.",
		[]string{"namespace", "deployment"}, nil)
	descKSMPhase = prometheus.NewDesc("kube_pod_status_phase", "The pods current phase.",
		[]string{"namespace", "pod", "uid", "phase"}, nil)
)

const gpuModel = "NVIDIA A100-SXM4-80GB"

// podCollector exposes one pod's state at the current simulated time, each
// sample stamped with it.
type podCollector struct {
	s *Sim
	p *pod
}

func (c podCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.p.dcgmNode != "" {
		ch <- descGPUUtil
		ch <- descFB
		return
	}
	if c.p.svc == nil {
		for _, d := range []*prometheus.Desc{descKSMAvailable, descKSMSpec, descKSMReplicas, descKSMPhase} {
			ch <- d
		}
		return
	}
	for _, d := range []*prometheus.Desc{descCPU, descMem, descGPUUtil, descFB, descSuccess, descFailure, descDuration, descQueue} {
		ch <- d
	}
}

func (c podCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.RLock()
	defer c.s.mu.RUnlock()
	now := c.s.now
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.NewMetricWithTimestamp(now, prometheus.MustNewConstMetric(d, t, v, labels...))
	}
	if c.p.dcgmNode != "" {
		c.s.collectIdleGPUs(c.p.dcgmNode, emit)
		return
	}
	if c.p.svc == nil {
		c.s.collectKSM(emit)
		return
	}
	p := c.p
	const image = "nvcr.io/nvidia/tritonserver:24.08-py3"
	emit(descCPU, prometheus.CounterValue, p.cpuSec, "triton", "total", image, p.ns, p.name)
	// The pod-level cgroup (container="") repeats the total, as cAdvisor's does.
	emit(descCPU, prometheus.CounterValue, p.cpuSec, "", "total", "", p.ns, p.name)
	emit(descMem, prometheus.GaugeValue, p.memBytes, "triton", image, p.ns, p.name)
	uuid := "GPU-" + podHash(p.name, 8) + "-" + podHash(p.name+"/gpu", 4)
	emit(descGPUUtil, prometheus.GaugeValue, p.gpuUtil, "0", uuid, "nvidia0", gpuModel, p.node, "triton", p.ns, p.name)
	emit(descFB, prometheus.GaugeValue, p.fbUsedMiB, "0", uuid, "nvidia0", gpuModel, p.node, "triton", p.ns, p.name)
	m := p.svc.spec.Model
	emit(descSuccess, prometheus.CounterValue, p.success, m, "1")
	emit(descFailure, prometheus.CounterValue, p.failure, m, "OTHER", "1")
	emit(descDuration, prometheus.CounterValue, p.durUs, m, "1")
	emit(descQueue, prometheus.CounterValue, p.queueUs, m, "1")
}

// collectKSM describes every workload and pod like kube-state-metrics.
// The caller holds s.mu.
func (s *Sim) collectKSM(emit func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	for _, sv := range s.services {
		ns, name := s.cfg.Namespace, sv.spec.Name
		emit(descKSMAvailable, prometheus.GaugeValue, float64(sv.readyCount()), ns, name)
		emit(descKSMSpec, prometheus.GaugeValue, float64(sv.desired), ns, name)
		emit(descKSMReplicas, prometheus.GaugeValue, float64(len(sv.pods)), ns, name)
		for _, p := range sv.pods {
			phase := "Pending"
			if p.ready {
				phase = "Running"
			}
			for _, ph := range []string{"Pending", "Running", "Succeeded", "Failed", "Unknown"} {
				v := 0.0
				if ph == phase {
					v = 1
				}
				emit(descKSMPhase, prometheus.GaugeValue, v, p.ns, p.name, podHash(p.key(), 8)+"-uid", ph)
			}
		}
	}
}

// podHandler serves a pod's /metrics from its own registry.
func (s *Sim) podHandler(p *pod) http.Handler {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(podCollector{s: s, p: p})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

// MetricsURL returns the /metrics URL of a pod.
func (s *Sim) MetricsURL(namespace, pod string) string {
	return fmt.Sprintf("http://%s/pods/%s/%s/metrics", s.Addr(), namespace, pod)
}

// PodNames returns the names of a service's pods (ready or not).
func (s *Sim) PodNames(service string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sv := range s.services {
		if sv.spec.Name == service {
			out := make([]string, len(sv.pods))
			for i, p := range sv.pods {
				out[i] = p.name
			}
			return out
		}
	}
	return nil
}

// KSMURL returns the simulated kube-state-metrics /metrics URL.
func (s *Sim) KSMURL() string { return s.MetricsURL(s.ksm.ns, s.ksm.name) }

// Steps returns how many steps have run.
func (s *Sim) Steps() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.steps
}

// collectIdleGPUs reports the GPUs of a node that no inference pod holds,
// as the node's DCGM exporter does: 0 % when idle; while a training job
// holds the node, 100 % with no pod, or — a job with a family — the job's
// utilisation and framebuffer per GPU, attributed to its pod on the node
// (namespace, pod, container, as the exporter does when it maps GPUs to
// pods). The caller holds s.mu.
func (s *Sim) collectIdleGPUs(node string, emit func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	v := 0.0
	var ns, pod, ctr string
	var fb float64
	if id, ok := s.mix.trainOn[node]; ok {
		v = 100
		if r := s.mix.running[id]; r != nil && r.job.Family != "" {
			for i, n := range r.nodes {
				if n == node && i < len(r.pods) {
					pod = r.pods[i]
				}
			}
			v, fb, ns, ctr = 100*r.job.GPUUtil, r.job.GPUMemMiB, TrainingNamespace, "train"
		}
	}
	for g := s.gpusUsed[node]; g < s.cfg.GPUsPerNode; g++ {
		uuid := "GPU-" + podHash(node, 8) + "-" + podHash(fmt.Sprintf("%s/%d", node, g), 4)
		emit(descGPUUtil, prometheus.GaugeValue, v, fmt.Sprint(g), uuid, fmt.Sprintf("nvidia%d", g), gpuModel, node, ctr, ns, pod)
		if pod != "" {
			emit(descFB, prometheus.GaugeValue, fb, fmt.Sprint(g), uuid, fmt.Sprintf("nvidia%d", g), gpuModel, node, ctr, ns, pod)
		}
	}
}
