package schemas

import (
	"encoding/json"
	"errors"
	"testing"
)

// MetricMetadata.Validate agrees with its JSON Schema on a valid event and
// on each one-field mutation the schema refuses, naming the same field.
func TestMetricMetadataValidateMatchesSchema(t *testing.T) {
	good := MetricMetadata{Metric: "up", Type: "gauge", Source: MetadataSourceScrape, FirstSeenMs: 1, LastSeenMs: 2}
	cases := map[string]func(*MetricMetadata){
		"":               func(*MetricMetadata) {},
		"/metric":        func(m *MetricMetadata) { m.Metric = "" },
		"/type":          func(m *MetricMetadata) { m.Type = "Counter" },
		"/source":        func(m *MetricMetadata) { m.Source = "otlp" },
		"/first_seen_ms": func(m *MetricMetadata) { m.FirstSeenMs = -1 },
		"/last_seen_ms":  func(m *MetricMetadata) { m.LastSeenMs = -5 },
	}
	for field, mut := range cases {
		m := good
		mut(&m)
		doc, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		schemaErr, typedErr := Validate(m.EventType(), doc), m.Validate()
		if (schemaErr == nil) != (field == "") || (typedErr == nil) != (field == "") {
			t.Fatalf("mutation %q: JSON Schema %v, typed %v", field, schemaErr, typedErr)
		}
		if field == "" {
			continue
		}
		var se, te *ValidationError
		if !errors.As(schemaErr, &se) || !errors.As(typedErr, &te) || se.Field != field || te.Field != field {
			t.Errorf("mutation %q: JSON Schema names %v, typed names %v", field, schemaErr, typedErr)
		}
		if _, err := Marshal(m); err == nil {
			t.Errorf("mutation %q: Marshal accepted it", field)
		}
	}
}
