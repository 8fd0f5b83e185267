package window

import "github.com/prometheus/client_golang/prometheus"

// metrics are the processor's own Prometheus metrics.
type metrics struct {
	records        *prometheus.CounterVec
	samples        *prometheus.CounterVec
	lateSamples    prometheus.Counter
	staleSamples   prometheus.Counter
	invalidSamples prometheus.Counter
	invalidWindows prometheus.Counter
	decodeErrors   prometheus.Counter
	deadLetters    *prometheus.CounterVec
	windowsEmitted *prometheus.CounterVec
	transactions   *prometheus.CounterVec
	lag            *prometheus.GaugeVec
	openWindows    *prometheus.GaugeVec
	openSeries     *prometheus.GaugeVec
	watermarkDelay *prometheus.GaugeVec
	emitLatency    prometheus.Histogram
	historyBytes   prometheus.Counter
	historyFiles   prometheus.Counter
	orphansRemoved prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebbflow_window_records_total", Help: "metrics.raw records consumed, by mode (process, rebuild after a restart)."}, []string{"mode"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebbflow_window_samples_total", Help: "Samples read, by outcome."}, []string{"outcome"}),
		lateSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_late_samples_total", Help: "Samples later than the allowed lateness, sent to the dead-letter topic."}),
		staleSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_stale_markers_total", Help: "Prometheus stale markers skipped (not values)."}),
		invalidSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_invalid_samples_total", Help: "Samples with a NaN or infinite value, an empty signal, an unknown kind or a malformed entity, sent to the dead-letter topic."}),
		invalidWindows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_invalid_windows_total", Help: "Windows dropped because an aggregate overflowed to infinity."}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_decode_errors_total", Help: "metrics.raw records that could not be decoded, sent to the dead-letter topic."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebbflow_window_deadletters_total", Help: "Dead-letter records produced, by reason."}, []string{"reason"}),
		windowsEmitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebbflow_window_windows_emitted_total", Help: "Windows produced to metrics.windows, by size and whether a revision."}, []string{"size", "revision"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebbflow_window_transactions_total", Help: "Kafka transactions, by result."}, []string{"result"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ebbflow_window_consumer_lag_records", Help: "High-water mark minus the next offset to process, per partition."}, []string{"partition"}),
		openWindows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ebbflow_window_open_windows", Help: "Windows held in memory (open or revisable), per partition."}, []string{"partition"}),
		openSeries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ebbflow_window_open_series", Help: "Counter series whose previous sample is held, per partition."}, []string{"partition"}),
		watermarkDelay: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ebbflow_window_watermark_delay_seconds", Help: "Wall clock minus the partition's event-time watermark."}, []string{"partition"}),
		emitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ebbflow_window_emit_latency_seconds", Help: "From the arrival of the first record of a transaction that closed windows to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		historyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_history_bytes_total", Help: "Bytes of Parquet history written (final files)."}),
		historyFiles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_history_files_total", Help: "Parquet history files renamed into place."}),
		orphansRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebbflow_window_history_orphans_removed_total", Help: "History files of uncommitted transactions removed at partition assignment."}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.samples, m.lateSamples, m.staleSamples, m.invalidSamples, m.invalidWindows, m.decodeErrors,
			m.deadLetters, m.windowsEmitted, m.transactions, m.lag, m.openWindows, m.openSeries, m.watermarkDelay,
			m.emitLatency, m.historyBytes, m.historyFiles, m.orphansRemoved)
	}
	return m
}
