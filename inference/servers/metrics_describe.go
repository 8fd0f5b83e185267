package servers

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics registers the metrics this component registers at start
// on reg, with nothing behind them; for tools and tests that list ebbflow's
// metric names (deploy/deploytest checks the Grafana dashboard and the
// alerts against them).
func RegisterMetrics(reg prometheus.Registerer) error {
	_, err := newLoopMetrics(reg)
	return err
}
