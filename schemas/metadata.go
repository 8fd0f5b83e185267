package schemas

import (
	"fmt"
	"time"
)

// TopicMetricsMetadata is the base name of the compacted topic of metric
// metadata (MetricMetadata), keyed by metric family name.
const TopicMetricsMetadata = "metrics.metadata"

// Metric types of MetricMetadata.Type, as remote_write and OpenMetrics
// name them.
var MetricTypes = []string{"unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"}

// Sources of MetricMetadata.Source.
const (
	MetadataSourceRW1    = "rw1"
	MetadataSourceRW2    = "rw2"
	MetadataSourceScrape = "scrape"
)

// MetricMetadata is the TYPE, HELP and UNIT of one metric family, as a
// sender declared them. metrics.raw carries samples only; ingest writes
// this event to <prefix>.metrics.metadata.v1 (compacted, key Metric) when
// a family's metadata is new or changed. JSON per
// json/metricmetadata.schema.json.
type MetricMetadata struct {
	Metric string `json:"metric"`
	Type   string `json:"type"`
	Unit   string `json:"unit,omitempty"`
	Help   string `json:"help,omitempty"`
	// Source: rw1 (remote_write 1.0 metadata), rw2 (2.0 per-series
	// metadata) or scrape.
	Source string `json:"source"`
	// FirstSeenMs is when the writing ingest process first saw metadata
	// for Metric; LastSeenMs when it last saw this metadata (unix ms).
	FirstSeenMs int64 `json:"first_seen_ms"`
	LastSeenMs  int64 `json:"last_seen_ms"`
}

// EventType implements Event.
func (m MetricMetadata) EventType() string { return "io.ebbflow.metric_metadata.v1" }

// EventID implements Event: the metric and when it was last seen.
func (m MetricMetadata) EventID() string { return fmt.Sprintf("%s@%d", m.Metric, m.LastSeenMs) }

// EventTime implements Event.
func (m MetricMetadata) EventTime() time.Time { return time.UnixMilli(m.LastSeenMs).UTC() }

// EventKey implements Event: the metric family name (the compaction key).
func (m MetricMetadata) EventKey() string { return m.Metric }

// Validate checks m against metricmetadata.schema.json (see SelfValidator).
func (m MetricMetadata) Validate() error {
	t := m.EventType()
	switch {
	case m.Metric == "":
		return fieldErr(t, "/metric", "minLength: got 0, want 1")
	case !isMetricType(m.Type):
		return fieldErr(t, "/type", fmt.Sprintf("value must be one of %q, got %q", MetricTypes, m.Type))
	case m.Source != MetadataSourceRW1 && m.Source != MetadataSourceRW2 && m.Source != MetadataSourceScrape:
		return fieldErr(t, "/source", fmt.Sprintf("value must be one of \"rw1\", \"rw2\", \"scrape\", got %q", m.Source))
	case m.FirstSeenMs < 0:
		return fieldErr(t, "/first_seen_ms", fmt.Sprintf("minimum: got %d, want 0", m.FirstSeenMs))
	case m.LastSeenMs < 0:
		return fieldErr(t, "/last_seen_ms", fmt.Sprintf("minimum: got %d, want 0", m.LastSeenMs))
	}
	return nil
}

func isMetricType(s string) bool {
	for _, t := range MetricTypes {
		if s == t {
			return true
		}
	}
	return false
}
