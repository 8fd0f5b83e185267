package kueue

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the refresh loop's Prometheus metrics.
type Metrics struct {
	PriorityUpdates  *prometheus.CounterVec
	GuardProtections *prometheus.CounterVec
	Preemptions      prometheus.Counter
	Waiting          prometheus.Gauge
	Admitted         prometheus.Gauge
	QuotaUpdates     *prometheus.CounterVec
	MixedGPUs        *prometheus.GaugeVec
}

// NewMetrics registers the metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		PriorityUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_training_priority_updates_total",
			Help: "Workload priorities written, by decision action (admit) and quota standing."}, []string{"standing"}),
		GuardProtections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_training_guard_protections_total",
			Help: "Running borrowers given the protected priority, by the guard that protected them (min_runtime, kill_budget)."}, []string{"guard"}),
		Preemptions: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_training_preemptions_total",
			Help: "Kueue pre-emptions of training Workloads seen and charged to the kill budget."}),
		Waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_training_waiting_workloads",
			Help: "Training Workloads waiting for quota at the last refresh."}),
		Admitted: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_training_admitted_workloads",
			Help: "Training Workloads holding quota at the last refresh."}),
		QuotaUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_training_quota_updates_total",
			Help: "ClusterQueue nominal GPU quotas of mixed-pool flavors rewritten to follow the mixed pool, by flavor."}, []string{"flavor"}),
		MixedGPUs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_training_mixed_pool_gpus",
			Help: "GPUs on mixed-pool nodes not in handover at the last quota sync, by flavor (GPU model)."}, []string{"flavor"}),
	}
	if reg != nil {
		reg.MustRegister(m.PriorityUpdates, m.GuardProtections, m.Preemptions, m.Waiting, m.Admitted, m.QuotaUpdates, m.MixedGPUs)
	}
	return m
}
