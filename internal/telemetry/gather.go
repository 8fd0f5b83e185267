package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// CounterValue sums the counter family name in g over the series whose
// labels include every name=value pair of labels (given as name, value,
// name, value…): one series' value, or a total with fewer pairs. A family
// that does not exist (yet) is 0. For tests, benchmarks and load tools that
// wait on what a component counted.
func CounterValue(g prometheus.Gatherer, name string, labels ...string) (float64, error) {
	if len(labels)%2 != 0 {
		return 0, fmt.Errorf("telemetry: counter %s: labels must be name, value pairs, got %d strings", name, len(labels))
	}
	mfs, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("telemetry: gather %s: %w", name, err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
						break
					}
				}
				if !found {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum, nil
}
