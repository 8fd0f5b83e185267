package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are ingest's own Prometheus metrics (ebbflow_ingest_*).
type Metrics struct {
	SamplesReceived  *prometheus.CounterVec
	SamplesPublished prometheus.Counter
	SamplesDropped   *prometheus.CounterVec
	RecordsPublished prometheus.Counter
	PublishErrors    prometheus.Counter
	PublishLatency   prometheus.Histogram
	BufferBytes      prometheus.Gauge
	BufferCapacity   prometheus.Gauge
	Requests         *prometheus.CounterVec
	TargetUp         *prometheus.GaugeVec
	ScrapeDuration   *prometheus.GaugeVec
	ScrapeSamples    *prometheus.GaugeVec
	Scrapes          *prometheus.CounterVec
	// ScrapeFailures counts failed scrapes by reason (the Scrape* reason
	// constants); each attempt's detail is logged at debug only.
	ScrapeFailures *prometheus.CounterVec
	Targets        prometheus.Gauge
	// DuplicateRequests counts remote_write requests recognised as resends
	// of a committed request and acknowledged without writing again.
	DuplicateRequests prometheus.Counter
	// DigestsLoaded counts digests of committed requests reloaded from the
	// digests topic at start (publish.persist_digests).
	DigestsLoaded prometheus.Counter
	// CommitsResolved counts transactions whose commit answer was lost,
	// by what the read_committed check found (committed, aborted, unknown).
	CommitsResolved *prometheus.CounterVec
	// RejectedRequests counts remote_write requests refused for good
	// (4xx: retrying cannot help), by reason (Reject* constants).
	RejectedRequests *prometheus.CounterVec
	// TLSHandshakeFailures counts connections to the HTTPS receiver that
	// failed their TLS handshake (untrusted or missing client certificate,
	// a sender that does not trust ingest's certificate, plain HTTP).
	TLSHandshakeFailures prometheus.Counter
	// Metadata counts metric metadata events by result: written to the
	// metadata topic, failed (written again when next declared), dropped
	// (the writer's queue was full).
	Metadata *prometheus.CounterVec
	// Exemplars counts exemplars received in remote_write requests; they
	// are not carried to Kafka.
	Exemplars prometheus.Counter
}

// Reasons of ebbflow_ingest_rejected_requests_total.
const (
	RejectBodyTooLarge   = "body_too_large"   // over remote_write.max_request_bytes
	RejectBufferTooLarge = "buffer_too_large" // encoded batch over publish.max_buffer_bytes
	RejectRecordTooLarge = "record_too_large" // one sample's record over publish.max_message_bytes
	RejectBrokerTooLarge = "broker_too_large" // the broker refused a record or batch as too large
)

// NewMetrics creates ingest's metrics and registers them on reg (which may
// be nil for tests that do not look at them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SamplesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_samples_received_total",
			Help: "Samples received, by source (remote_write or scrape)."}, []string{"source"}),
		SamplesPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_ingest_samples_published_total",
			Help: "Samples acknowledged by Kafka on metrics.raw."}),
		SamplesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_samples_dropped_total",
			Help: "Samples not published, by reason (unmatched, entity_incomplete, native_histogram, backpressure, publish_failed, scrape_parse_error, repeated)."}, []string{"reason"}),
		RecordsPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_ingest_records_published_total",
			Help: "Kafka records (one Arrow IPC stream per entity) acknowledged."}),
		PublishErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_ingest_publish_errors_total",
			Help: "Kafka records the producer failed to write after its retries."}),
		PublishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ebbflow_ingest_publish_latency_seconds",
			Help:    "Time from handing a batch to the producer until Kafka acknowledged all its records.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		BufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_ingest_buffer_bytes",
			Help: "Encoded bytes handed to the producer and not yet acknowledged."}),
		BufferCapacity: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_ingest_buffer_capacity_bytes",
			Help: "Capacity of the publish buffer; receivers push back when it is full."}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_remote_write_requests_total",
			Help: "remote_write requests answered, by HTTP status code."}, []string{"code"}),
		TargetUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_ingest_target_up",
			Help: "1 if the target's last scrape succeeded, else 0 (Prometheus' up)."}, []string{"target"}),
		ScrapeDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_ingest_target_scrape_duration_seconds",
			Help: "Duration of the target's last scrape (Prometheus' scrape_duration_seconds)."}, []string{"target"}),
		ScrapeSamples: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_ingest_target_scrape_samples",
			Help: "Samples the target exposed in its last scrape."}, []string{"target"}),
		Scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_scrapes_total",
			Help: "Scrapes, by result (ok, error)."}, []string{"result"}),
		ScrapeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_scrape_failures_total",
			Help: "Failed scrapes, by reason (timeout, connection, http_status, body_too_large, read_body, parse)."}, []string{"reason"}),
		Targets: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_ingest_targets",
			Help: "Scrape targets currently active (static and discovered)."}),
		DuplicateRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_ingest_duplicate_requests_total",
			Help: "remote_write requests recognised as resends of a request already committed to Kafka, acknowledged without writing again."}),
		DigestsLoaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_ingest_digests_loaded_total",
			Help: "Digests of committed requests reloaded from the digests topic at start; their resends are acknowledged without writing."}),
		CommitsResolved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_commits_resolved_total",
			Help: "Transactions whose commit outcome was lost (Kafka cut during EndTxn), by the outcome a read_committed fetch found: committed, aborted, unknown (given up at shutdown)."}, []string{"outcome"}),
		RejectedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_rejected_requests_total",
			Help: "remote_write requests answered 413 because they can never be written as sent, by reason: body_too_large, buffer_too_large, record_too_large, broker_too_large."}, []string{"reason"}),
		TLSHandshakeFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_ingest_tls_handshake_failures_total",
			Help: "Connections to the HTTPS remote_write receiver whose TLS handshake failed (certificate not trusted by either side, no client certificate, plain HTTP)."}),
		Metadata: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ingest_metadata_total",
			Help: "Metric metadata (TYPE/HELP/UNIT) events for the metrics.metadata topic, by result: written, failed, dropped (queue full)."}, []string{"result"}),
		Exemplars: prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_ingest_exemplars_received_total",
			Help: "Exemplars received in remote_write requests; counted only, not written to Kafka."}),
	}
	if reg != nil {
		reg.MustRegister(m.SamplesReceived, m.SamplesPublished, m.SamplesDropped, m.RecordsPublished, m.PublishErrors,
			m.PublishLatency, m.BufferBytes, m.BufferCapacity, m.Requests, m.TargetUp, m.ScrapeDuration,
			m.ScrapeSamples, m.Scrapes, m.ScrapeFailures, m.Targets, m.DuplicateRequests, m.DigestsLoaded, m.CommitsResolved, m.RejectedRequests,
			m.TLSHandshakeFailures, m.Metadata, m.Exemplars)
	}
	return m
}

func (m *Metrics) dropped(d map[string]int) {
	for r, n := range d {
		m.SamplesDropped.WithLabelValues(r).Add(float64(n))
	}
}
